"""Files that are complete or absent: a temporary file beside the target, flushed, renamed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["atomic_text", "atomic_write", "fsync_dir", "fsync_file"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's file-creation mask, read once at import
_UMASK = _umask()


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be
    opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush a file's contents to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write(
    path: str | Path, write: Callable[[str], object], *, suffix: str = ".tmp", fsync: bool = True
) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, flush it (``fsync``) and
    rename it over ``path``: readers see the old file or the new one, never half of one.
    ``suffix`` ends the temporary name (image writers read the format from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_text(
    path: str | Path, write: Callable[[TextIO], object], newline: str | None = None
) -> Path:
    """:func:`atomic_write` of a UTF-8 text file: ``write(file)`` gets the open file; the path."""

    def through_file(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            write(f)

    atomic_write(path, through_file)
    return Path(path)
