"""Unpacked copies of compressed MNIST files in firstnet's cache folder, so later runs start faster."""

import hashlib
import os

import numpy as np

from firstnet import files
from firstnet.data.arrays import MNIST_ARRAYS, validated


def kept_unpacked(path, source, read, variant=""):
    """`read()`'s `Dataset`, or the unpacked copy kept by an earlier call, for as long as the file at `path` is unchanged.

    `read` returns the `Dataset` and whether a copy is worth keeping (an uncompressed .npz reads as fast as its copy).
    """
    copy, stamp = _unpacked_copy(path, variant)
    if copy is not None:
        data = _read_unpacked_copy(copy, stamp, source=source)
        if data is not None:
            return data
    data, worth_keeping = read()
    if copy is not None and worth_keeping:
        _write_unpacked_copy(copy, stamp, data)
    return data


def _unpacked_copy(path, variant=""):
    """Where the unpacked copy of `path` belongs, and the stamp that says which version of `path` it holds.

    `variant` tells apart copies of different data made from the same file. (None, None) when caching is off,
    the cache folder cannot be used safely, or `path` is not a file.
    """
    folder = files.cache_folder("mnist")
    try:
        status = path.stat()
        resolved = path.resolve()
    except OSError:
        return None, None
    if folder is None or not files.private_writable_folder(folder):
        return None, None
    name = hashlib.sha256(f"{resolved}|{variant}".encode("utf-8")).hexdigest()[:20]
    return folder / f"{name}.npz", _stamp(resolved, variant, status)


def _stamp(resolved, variant, status):
    """What an unpacked copy records of its file: the path, the variant, the size and the modification time."""
    return f"{resolved}|{variant}|{status.st_size}|{status.st_mtime_ns}"


def _stamped_path(stamp):
    """The file that a `_stamp` names (its last three fields are the variant, size and time, none with a "|")."""
    return stamp.rsplit("|", 3)[0]


def _read_unpacked_copy(copy, stamp, source):
    """The `Dataset` kept in `copy` if it holds the version of the file that `stamp` names, else None."""
    try:
        with np.load(copy, allow_pickle=False) as archive:
            if str(archive["stamp"]) != stamp:
                return None
            arrays = [archive[key] for key in MNIST_ARRAYS]
        return validated(*arrays, source=source)
    except Exception:  # Missing, outdated, cut short or damaged: the file itself is read, and the copy rewritten.
        return None


def _write_unpacked_copy(copy, stamp, data):
    try:
        with files.atomic_path(copy, sync=False) as temporary:
            np.savez(temporary, stamp=np.array(stamp),
                     **{key: getattr(data, key) for key in MNIST_ARRAYS})
    except OSError:
        return  # A cache that cannot be written (a full disk, say) only means no copy.
    _remove_orphan_copies(copy.parent, keep=copy)


def _remove_orphan_copies(folder, keep):
    """Delete the unpacked copies of files that are gone: each holds 55 MB that nothing will read again.

    A copy that cannot be read is left for its own file's next load to rewrite.
    """
    for copy in folder.glob("*.npz"):
        if copy == keep or len(copy.stem) != 20 or any(character not in "0123456789abcdef" for character in copy.stem):
            continue  # Not one of ours (a temporary file being written, say).
        try:
            with np.load(copy, allow_pickle=False) as archive:
                source = _stamped_path(str(archive["stamp"]))
            if not os.path.exists(source):
                copy.unlink()
        except Exception:
            continue
