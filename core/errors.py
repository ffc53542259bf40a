"""Every error the engine raises on purpose, under one base, with one way to say it in a line.

Front ends and the runner decide what to do with a failure by ``isinstance``
on these classes (bad input exits 2, a failed model is recorded and the run
goes on), never by matching type names; and every message a user sees goes
through ``one_line`` so a multi-line library error cannot break a log line or
a table cell. A leaf module: no numpy, no torch.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

MAX_LINE = 300
"""Longest message shown for one failure; library errors can run to pages."""


class LensError(Exception):
    """Base of the engine's own errors: the message is already written for the user."""

    exit_code: int = 2
    """What a command exits with when this error ends it: 2 means bad input."""

    def one_line(self) -> str:
        return one_line(self)


class ConfigError(LensError, ValueError):
    """A configuration value is invalid."""


class DataError(LensError, ValueError):
    """The task data cannot be used."""


class ModelError(LensError, ValueError):
    """A model cannot be resolved, loaded, or used as a candidate."""


class CurveTableError(LensError, ValueError):
    """A curve table is missing or malformed."""


class BenchError(LensError, ValueError):
    """The benchmark cannot run as asked."""


class AdaptiveError(LensError, ValueError):
    """The budget-aware policy cannot run on this input."""


class ReportError(LensError, ValueError):
    """A run cannot be reported or exported (no results.json, matplotlib or tensorboard missing)."""


class StoreError(LensError, RuntimeError):
    """The run's store cannot be opened or used."""


class RunDirError(LensError):
    """The run directory cannot be used: a file in the way, read-only, in use, disk full."""


class DiskError(RunDirError):
    """A write met a full or read-only disk (run directory, cache, a worker's files): the run stops."""


class PointError(LensError, RuntimeError):
    """A point could not be measured (NaN loss, out of memory): that model fails, the run goes on."""

    exit_code = 1


class OutOfMemory(PointError):
    """The device ran out of memory training a point; a retry may use smaller micro-batches."""

    def __init__(self, message: str, micro_batch_size: int = 0) -> None:
        super().__init__(message)
        self.micro_batch_size = micro_batch_size
        """The micro-batch that did not fit (0: unknown)."""

    def __reduce__(self) -> tuple[object, ...]:
        # keeps micro_batch_size when the error crosses a process boundary (pickle)
        return (type(self), (str(self), self.micro_batch_size))


class NTKError(LensError, RuntimeError):
    """The NTK could not be computed; the law falls back to a free F."""

    exit_code = 1


class Cancelled(Exception):
    """The run's cancel event was set; raised between optimizer steps."""


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""errno values that mean "no room to write": a full disk, a quota, a file-size limit."""

_OS_REASONS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (a file-size limit was reached)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EEXIST: "a file is in the way",
}


def os_error_line(exc: OSError, path: str | Path | None = None) -> str:
    """What went wrong with a file, in words: the path, then the reason (no errno codes)."""
    where = path if path is not None else exc.filename
    reason = _OS_REASONS.get(exc.errno or 0) or exc.strerror or one_line(exc)
    return f"{where}: {reason}" if where is not None else reason


UNWRITABLE = DISK_FULL | {errno.EROFS}
"""errno values that are the machine's problem, not a model's: no room, or a read-only file system."""


def unwritable(exc: BaseException) -> OSError | None:
    """The OSError in ``exc`` or its causes saying the disk takes no write, if any.

    A full disk or a read-only file system met while a model loads, trains or is
    stored stops the run (exit 2) rather than failing that model and then the
    next; libraries wrap such errors, so the whole chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in UNWRITABLE:
            return current
        if not isinstance(current, OSError) and (found := _RUST_IO.search(str(current))):
            code = int(found.group(1))  # safetensors and tokenizers (Rust) say it in words
            if code in UNWRITABLE:
                return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


_RUST_IO = re.compile(r"\(os error (\d+)\)")
"""How a Rust io::Error ends its message (safetensors' and tokenizers' save errors)."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line: ours as written, anything else prefixed by its type."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, LensError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = text or type(exc).__name__
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def run_script(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status; a LensError (bad input) exits with its code after its
    one line on stderr, so a script given a missing or malformed file says which and how,
    not a traceback."""
    try:
        code = main()
    except LensError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        code = exc.exit_code
    raise SystemExit(code)
