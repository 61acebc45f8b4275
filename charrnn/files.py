"""Writing files safely: temporary names beside their final ones, and one clear line when the
file system refuses (a full disk, a read-only folder, a name that is too long)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from charrnn.errors import CharrnnError

NAME_MAX = 255  # bytes in one file name, on every common file system

_REASONS = {
    errno.ENOSPC: ("no space left on device", "free some space, or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space, or write elsewhere"),
    errno.EROFS: ("read-only file system", "write elsewhere"),
    errno.EACCES: ("permission denied", "check the folder's permissions, or write elsewhere"),
    errno.EPERM: ("operation not permitted", "check the folder's permissions, or write elsewhere"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter name"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.EISDIR: ("is a directory", "give a file name"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.EIO: ("input/output error", "check the disk"),
}


def io_error(where: str | Path, error: OSError) -> CharrnnError:
    """The one-line error for a failed read or write at `where`."""
    what, fix = _REASONS.get(error.errno, (error.strerror or str(error), "check the path"))
    return CharrnnError(str(where), what, fix)


def write_failure(where: str | Path, error: BaseException) -> CharrnnError:
    """The one-line error for a write that failed inside a library (torch.save reports a full
    disk as a RuntimeError with no errno): an OSError by its errno, else the file system's
    free space says whether it filled up."""
    if isinstance(error, OSError) and error.errno is not None:
        return io_error(where, error)
    try:
        full = os.statvfs(Path(where).parent).f_bavail == 0
    except OSError:
        full = False
    if full:
        return io_error(where, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    detail = " ".join(str(error).split())[:120]
    return CharrnnError(str(where), f"could not be written ({detail})", "check the disk")


def temp_sibling(path: Path, tag: str) -> Path:
    """A hidden temporary name beside `path` (the same file system, so it can be renamed over
    it), `.NAME.TAG`, shortened so that it stays a legal name for any legal NAME."""
    name = path.name
    room = NAME_MAX - len(f"..{tag}".encode())
    while len(name.encode()) > room:
        name = name[:-1]
    return path.with_name(f".{name}.{tag}")
