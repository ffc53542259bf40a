"""Ctrl-C and SIGTERM: the first asks the run to stop cleanly, a second exits at once.

Schedulers and ``docker stop`` send SIGTERM, people press Ctrl-C (SIGINT); both
mean "stop", so both set the run's cancel event: the current point stops at its
next step, results.json says "cancelled" and the directory resumes. A second
signal exits at once with ``os._exit``: raising KeyboardInterrupt instead
would unwind through torch while its threads are mid-load, which can end in
"terminate called without an active exception" (SIGABRT) rather than exit
130. Nothing is lost by exiting at once: every finished point is already
committed to the store and results.json is only ever replaced whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
EXIT_CANCELLED = 130
"""What a run stopped by a signal exits with (the shell's code for Ctrl-C)."""


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def abort_now(say: Callable[[str], None] | None = None) -> None:
    """Exit 130 without unwinding (see the module docstring); flush what was printed."""
    if say is not None:
        say("aborted: finished points are kept; rerun with the same --out to resume")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to flush to
            stream.flush()
    os._exit(EXIT_CANCELLED)


_COMMAND = False
"""True in the ``lensllm-tui`` command itself (set by ``exit_quietly_on_signals``)."""


def exit_now(code: int) -> None:
    """End the command with ``code`` now that everything is written, skipping the teardown.

    Python's finalisation puts the default signal dispositions back while torch
    tears down (seconds), so a Ctrl-C or SIGTERM there would kill the process
    (-2, -15) instead of exiting 130. Only the command exits here: an in-process
    caller (a test) gets the code back, except for 130, which always ends at once.
    """
    if _COMMAND or code == EXIT_CANCELLED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def exit_quietly_on_signals() -> None:
    """From now on SIGINT and SIGTERM exit 130 at once, without a traceback.

    The command's first act (lensllm_tui.entry), before its heavy imports. A run
    replaces these with ``stop_on_signals`` while it runs and puts them back when
    it ends, so a signal while the last tables print, or while the interpreter
    tears torch down, also exits 130 (everything is written by then). A signal
    ignored by whoever started us (nohup, a background job) stays ignored.
    """

    global _COMMAND
    _COMMAND = True

    def quit_now(signum: int, frame: FrameType | None) -> None:
        abort_now()

    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, quit_now)


class stop_on_signals:
    """While active (main thread only): the first SIGINT/SIGTERM sets ``cancel``, a second exits.

    ``say`` prints one line for each; the previous handlers come back on exit.
    ``ended`` tells whether the run has already finished (its results written):
    a signal then only says so, and ``signalled`` makes the command exit 130
    with results.json still "finished".
    """

    def __init__(
        self,
        cancel: threading.Event,
        say: Callable[[str], None],
        ended: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cancel = cancel
        self.say = say
        self.ended = ended
        self.signalled: int | None = None
        """The first stop signal received, if any."""
        self.previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_set():
            abort_now(self.say)
        self.cancel.set()
        self.signalled = signum
        if self.ended():
            self.say(
                f"{signal_name(signum)}: the run had finished and everything is written;"
                f" exiting {EXIT_CANCELLED}"
            )
            return
        self.say(
            f"cancelling ({signal_name(signum)}): the current point stops at its next step, "
            "finished points are kept (Ctrl-C again to abort at once)"
        )

    def __enter__(self) -> stop_on_signals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored by whoever started us (nohup, a background job): keep it so
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        # The previous handlers come back (an in-process caller, a test, keeps its own);
        # the caller closes the engine inside this block, so a late second signal finds
        # no engine clean-up left to interrupt, only the command's exit (130).
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.previous.clear()


def on_stop_signals(callback: Callable[[int], None]) -> Callable[[], None]:
    """Call ``callback(signum)`` on the running asyncio loop for SIGINT/SIGTERM; returns the undo.

    For the dashboard, whose event loop owns the main thread: the callback runs
    between the loop's tasks, never inside one. Off the main thread (or where
    the loop cannot take signal handlers) nothing is installed.
    """
    import asyncio

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, object] = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # ignored by whoever started us: keep it so
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, callback, int(sig))
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed[sig] = previous

    def undo() -> None:
        # asyncio resets a removed handler to the default (SIGTERM then kills with -15):
        # the handler from before comes back instead (the command's quiet exit 130).
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)  # type: ignore[arg-type]

    return undo
