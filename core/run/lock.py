"""One run per directory: an exclusive lock held by the run for its whole life.

Two runs writing one directory would both train everything and the last
writer's results.json would win. The lock is an ``fcntl.flock`` on a file in
the run directory (core/flock.py), so it is released by the kernel whenever
the run's process ends, even by ``kill -9``; a second run on the same
directory is refused with one line naming the holder's PID.

Taking the lock is also where a run directory is first written, so the
problems of an unusable ``--out`` (a file in the way, a read-only file
system, no permission) surface here as one ``RunDirError`` line. Once the lock
is held no other writer can exist, so temporary files left in the directory
by a killed run are orphans and are removed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from core.errors import RunDirError, os_error_line
from core.flock import FileLock
from core.paths import LOCK_NAME
from core.run.records import remove_orphan_temps


def lock_run_dir(out_dir: str | Path) -> FileLock:
    """Create ``out_dir`` if needed and lock it for this process; ``RunDirError`` if not.

    The caller releases the returned lock when the run ends (the kernel does it
    anyway when the process exits).
    """
    out = Path(out_dir)
    make_run_dir(out)
    lock = FileLock(out / LOCK_NAME)
    try:
        got = lock.try_acquire()
    except OSError as exc:
        raise RunDirError(f"cannot write the run directory {os_error_line(exc, out)}") from None
    if not got:
        pid = lock.holder()
        who = f"PID {pid}" if pid is not None else "another process"
        raise RunDirError(
            f"{out} is in use by another lensllm-tui run ({who}); wait for it to end "
            "or choose another --out"
        )
    with contextlib.suppress(OSError):  # a leftover temp file is untidy, not a reason to stop
        remove_orphan_temps(out)
    return lock


def make_run_dir(out: Path) -> None:
    """``mkdir -p`` with one line for each way it fails (a file in the way, read-only)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = _first_file(out)
        raise RunDirError(
            f"cannot use {out} as the run directory: {blocker} is a file, not a directory"
        ) from None
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {os_error_line(exc, out)}") from None
    if not out.is_dir():  # e.g. a dangling link mkdir accepted
        raise RunDirError(f"cannot use {out} as the run directory: not a directory")


def _first_file(path: Path) -> Path:
    """The first component of ``path`` that exists and is not a directory."""
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            return part
    return path
