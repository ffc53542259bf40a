"""Exclusive locks on files that die with the process holding them.

``fcntl.flock`` locks belong to an open file description, so the kernel drops
them when the holder exits for any reason, ``kill -9`` included: there is never
a stale lock to clean up by hand, and no PID file to guess about. The holder
writes its PID into the file so that whoever is refused can say who holds it.
A leaf module (standard library only) so both the run directory and the model
zoo can lock.

The ``filelock`` package would do the locking, but it truncates the file when
it opens it, which would erase the holder's PID that a refused run reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path


class FileLock:
    """An exclusive, non-blocking (or blocking) flock on ``path``; a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False (at once) if another process holds it."""
        return self._take(blocking=False)

    def acquire(self) -> None:
        """Take the lock, waiting for the current holder to release it or exit."""
        self._take(blocking=True)

    def _take(self, *, blocking: bool) -> bool:
        if self._fd is not None:
            return True
        # O_CLOEXEC (Python's default): a child process never inherits the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # a PID left behind would name a process that is gone
        os.close(fd)  # closing the descriptor drops the flock

    def holder(self, wait: float = 0.5) -> int | None:
        """The PID written by the process that holds the lock, if it has written it yet."""
        deadline = time.monotonic() + wait
        while True:
            try:
                text = self.path.read_text(encoding="ascii", errors="replace").strip()
            except OSError:
                text = ""
            if text.isdigit():
                return int(text)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)  # the holder locks first, then writes its PID

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
