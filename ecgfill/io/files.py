"""Why a path cannot be read as a regular file, in words a user can act on."""

from __future__ import annotations

import errno
import stat
from pathlib import Path


def file_problem(path: Path) -> str | None:
    """None when ``path`` is a regular file (after symlinks); else the problem, phrased to follow
    the file's name: "does not exist", "is a broken symbolic link", "is a directory" ...

    Never opens the file, so FIFOs and devices cannot block the caller.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else "does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None
