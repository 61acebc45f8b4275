"""A run directory belongs to one training process at a time.

`charrnn train` (new or resumed) holds an exclusive lock on RUN_DIR/.lock for its whole life,
so a second training on the same directory (another terminal, a scheduler's retry) stops at
once with a line naming the holder, instead of interleaving its log and replacing the other's
checkpoints. The lock is the kernel's (flock): it goes with the process however the process
ends, `kill -9` included, so a stale lock cannot outlive its holder; the PID written in the
file is only there to name the holder. Readers (`sample`, `eval`, `info`) take no lock:
checkpoints are replaced atomically, so they always read a whole one.
"""

from __future__ import annotations

import os
from pathlib import Path

from charrnn.errors import CharrnnError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLock:
    """The exclusive lock on a run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the process that holds it."""
        if fcntl is None:
            return
        path = self.run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CharrnnError(
                str(self.run_dir), f"cannot lock it ({e.strerror})", "check the folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise CharrnnError(
                str(self.run_dir),
                f"in use by another charrnn train (pid {holder})",
                "wait for it to end (or stop it), or train into another -o",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Let the directory go (closing the file releases the kernel's lock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
