"""One job (a point's training, an NTK probe) in a helper thread, polled by the runner.

``train_point`` reports progress through a callback and a generator cannot
yield from inside a callback, so the job runs in a thread while the runner's
generator polls it and yields what it reported. The training loop already
throttles its reports (core.training.loop.PROGRESS_SECONDS, because each one
syncs the device); the poll forwards each new report once, so there is one
throttle, not one per layer.

Stopping: ``cancel`` is the user's; ``stop`` is what the job watches, set on
cancel and whenever the generator is closed early, so training never outlives
its consumer. ``pause`` is handed to the job as is: the training loop holds at
its next step while it is set, and no new job starts meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.events import PointProgress

T = TypeVar("T")

ProgressFn = Callable[[int, int, float], None]
"""(step, total_steps, train_loss), as core.training.loop reports it."""

POLL_SECONDS = 0.05
"""How often the runner looks at the job (progress, cancel) while it runs."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a job left: its result, or the exception it raised (never lost)."""

    result: T | None = None
    error: BaseException | None = None


@dataclass
class Controls:
    """The events a run's jobs obey."""

    cancel: threading.Event
    """Set by the user: the run stops."""
    pause: threading.Event
    """Set while the run should hold: training waits at its next step."""
    stop: threading.Event
    """What jobs watch: set on cancel or when the consumer goes away."""

    @classmethod
    def of(cls, cancel: threading.Event | None, pause: threading.Event | None) -> Controls:
        return cls(cancel or threading.Event(), pause or threading.Event(), threading.Event())


def polled(
    job: Callable[[ProgressFn], T],
    controls: Controls,
    *,
    name: str,
    progress: tuple[str, int] | None = None,
) -> Generator[PointProgress, None, Outcome[T]]:
    """Run ``job`` in a thread, yield its progress as PointProgress, return its Outcome.

    ``progress`` is the (model, size) its reports belong to; None for work
    that is not a point (the NTK probe), whose reports are not forwarded. Used
    as ``outcome = yield from polled(...)``.
    """
    while controls.pause.is_set() and not controls.cancel.wait(POLL_SECONDS):
        pass  # paused between jobs: start nothing new
    latest: list[tuple[int, int, float]] = []
    box: dict[str, Outcome[T]] = {}

    def on_progress(step: int, total_steps: int, train_loss: float) -> None:
        latest[:] = [(int(step), int(total_steps), float(train_loss))]

    def target() -> None:
        try:
            box["outcome"] = Outcome(result=job(on_progress))
        except BaseException as exc:  # reported by the runner, never lost
            box["outcome"] = Outcome(error=exc)

    controls.stop.clear()
    thread = threading.Thread(target=target, name=f"job {name}", daemon=True)
    thread.start()
    sent: tuple[int, int, float] | None = None
    try:
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if controls.cancel.is_set():
                controls.stop.set()
            if progress is not None and latest and latest[0] != sent:
                sent = latest[0]
                yield PointProgress(progress[0], progress[1], *sent)
    finally:
        # Closed early (consumer gone) or done: make sure the job stops before we return.
        if thread.is_alive():
            controls.stop.set()
            thread.join()
    return box["outcome"]
