"""Files that appear whole or not at all, and the folders firstnet keeps between runs (caches, private and writable)."""

import contextlib
import errno
import json
import os
import pathlib
import tempfile

from firstnet.errors import UserError

# Where runs are saved unless told otherwise (`--root`); the class collection's default folder sits beside it.
DEFAULT_RUNS_ROOT = "runs"


@contextlib.contextmanager
def atomic_path(path, sync=True):
    """Yield a temporary path beside `path`; when the block succeeds, move it over `path` in one rename.

    The temporary file lives in the same folder so the rename never crosses file systems, and it keeps the
    suffix of the target because some writers (Keras, matplotlib) choose the format by suffix. `sync=False`
    skips writing it through to the disk first: for caches, whose readers check what they read.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(descriptor)
    try:
        yield pathlib.Path(temporary)
        if sync:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); a run's files should be readable like any file the user saves.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        # A full disk is the user's to fix, and the file before is still whole: one line, not a traceback.
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{path}: the disk is full (no space left to write it); the previous file, if any, is "
                            "untouched: free some space and try again") from error
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask():
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(path, data, sync=True):
    with atomic_path(path, sync=sync) as temporary:
        temporary.write_bytes(data)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_model(model, path):
    """Keras writes its zip in place, so a crash mid-save would break the old model; write beside it, then rename."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def files_inside(folder, recursive=False):
    """(files, links) under `folder`: its regular files, and every link found, which is never followed.

    A link may point anywhere on the computer (`unzip` of a crafted archive recreates links to /etc/passwd), so
    a folder's readers skip them all, files and folders alike, and name them in one note (`links_note`).
    """
    found, links = [], []
    for parent, folders, names in os.walk(folder, followlinks=False) if recursive else [_one_level(folder)]:
        for name in sorted(folders):
            if os.path.islink(os.path.join(parent, name)):
                links.append(pathlib.Path(parent, name))
        for name in sorted(names):
            path = pathlib.Path(parent, name)
            if path.is_symlink():
                links.append(path)
            elif path.is_file():
                found.append(path)
    return found, links


def _one_level(folder):
    entries = list(os.scandir(folder))
    return (str(folder), [entry.name for entry in entries if entry.is_dir(follow_symlinks=False) or entry.is_symlink()
                          and entry.is_dir()], [entry.name for entry in entries if not entry.is_dir()
                                                or entry.is_symlink() and not entry.is_dir()])


def links_note(links, shown=3):
    """One line naming the links a reader skipped, or None when there were none."""
    if not links:
        return None
    from firstnet.names import shown as safe

    listed = ", ".join(safe(link) for link in links[:shown]) + (f" and {len(links) - shown} more" if len(links) > shown else "")
    return (f"skipped {len(links)} link{'s' if len(links) != 1 else ''} ({listed}): firstnet reads only the files "
            "inside a folder, never where a link leads")


def remove_leftovers(folder):
    """Delete the temporary files of writes a kill cut short (`atomic_path`'s `.<name>.<random>.tmp<suffix>`).

    Such a file never replaced the real one, so it holds nothing anyone needs; left alone it would only take space.
    Called whenever a folder is written again (a resumed run, a collection).
    """
    for leftover in pathlib.Path(folder).glob(".*.tmp*"):
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)


def cache_folder(kind):
    """Where firstnet keeps `kind` between runs ("jax": compiled programs, "mnist": unpacked data), or None.

    $FIRSTNET_CACHE_DIR/<kind>, else the user's cache folder: ~/.cache/firstnet/<kind> (or under $XDG_CACHE_HOME).
    FIRSTNET_CACHE_DIR=off (or 0, or an empty value) turns caching off.
    """
    chosen = os.environ.get("FIRSTNET_CACHE_DIR")
    if chosen is not None:
        if chosen.strip().lower() in ("", "0", "off", "no", "false"):
            return None
        return pathlib.Path(chosen).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "firstnet" / kind


def private_writable_folder(folder):
    """Create `folder` for this user only; True if it can be written and no other user can write to it.

    What firstnet reads back from its caches (compiled programs JAX runs, digits it trains on) must be what it
    wrote there itself, so a cache folder that others can write to is refused.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
        if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
            return False
        with open(folder / f".probe-{os.getpid()}", "wb") as probe:
            probe.write(b"ok")
        os.unlink(probe.name)
        return True
    except OSError:
        return False
