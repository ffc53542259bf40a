"""The events a run's jobs obey: the user's cancel and pause, and the driver's stop.

Stopping: ``cancel`` is the user's; ``stop`` is what the run's own machinery
watches, set on cancel and whenever the event generator is closed early, so
training never outlives its consumer. ``pause`` holds training at its next step
(the executors pass it to their workers) and no new point starts meanwhile.
Jobs themselves run on an executor (core/run/executors), whose local backend is
the helper thread the runner used to poll here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


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
