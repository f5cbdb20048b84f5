"""What the page may show of a path on the server: a run's place in the runs folder, never the server's own folders."""

import pathlib
import re


def shown_path(path, runs_root):
    """`runs/2026-12-03_101500` for a path in the runs folder (the folder's own name first), else its last part only.

    Anyone on the classroom's network can read the page's answers; the server's folders (a teacher's home folder,
    their user name, where the data lies) are none of their business, and a run's name is all the page needs to say
    which run answers. The terminal that started the server says the whole path.
    """
    if path is None:
        return None
    path, root = pathlib.Path(path), pathlib.Path(runs_root)
    try:
        root = root.resolve()
        inside = path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return path.name
    return pathlib.PurePosixPath(root.name, *inside.parts).as_posix()


def shown_text(text, *paths, runs_root):
    """`text` with each of `paths` (as written in it) replaced by what the page may show of it."""
    for path in paths:
        if path is not None:
            text = text.replace(str(path), shown_path(path, runs_root))
    return text


# A path from the root of a disk: /home/ana/mnist.npz, C:\Users\ana\mnist.npz. Not a web address's path (after a
# scheme's "//" or a host name), not a relative path such as runs/2026-12-03_101500.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?[/\\](?:[^\s/\\'\"()<>,;:]+[/\\])*([^\s/\\'\"()<>,;:]*)")


def without_folders(text):
    """`text` with each absolute path in it cut to its last part: `/home/ana/data/mnist.npz` becomes `mnist.npz`.

    For the words the training process writes (the data it read, an error from a file): they go to every viewer.
    """
    return ABSOLUTE_PATH.sub(lambda match: match.group(1) or re.split(r"[/\\]", match.group(0).rstrip("/\\"))[-1], text)
