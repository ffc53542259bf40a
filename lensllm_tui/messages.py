"""Messages the run worker posts to the dashboard (from its thread, thread-safely)."""

from __future__ import annotations

from textual.message import Message

from core.events import Event


class EngineEvent(Message, bubble=False):
    """One engine event, carried unchanged to the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ProgressTick(Message, bubble=False):
    """New step progress is waiting; the handler reads the latest value.

    At most one tick is queued at a time, so a fast engine replaces progress
    values instead of queueing one message per step.
    """
