"""The workers panel: which model and size each worker trains, where, how far, with what memory.

Shown only when the run has more than one worker (``--executor pool`` or
``ray``); the in-process executor's single worker is the "point" bar already.
"""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from core.events import WorkerStatus
from lensllm_tui.view import RunView

GIB = 2**30


def worker_line(w: WorkerStatus) -> str:
    """One worker: name, device, job and step progress, CUDA memory when on a GPU."""
    job = escape(w.job) if w.job else "[dim]idle[/]"
    steps = f"  {w.step}/{w.total_steps}" if w.job and w.total_steps else ""
    memory = ""
    if w.memory_used is not None and w.memory_total:
        memory = f"  mem {w.memory_used / GIB:.1f}/{w.memory_total / GIB:.1f} GiB"
    state = "" if w.alive else "  [red]lost[/]"
    return f"{escape(w.name):<4} {escape(w.device):<24} {job}{steps}{memory}{state}"


class WorkersPanel(Static):
    """One line per worker, redrawn from the RunView with the rest of the dashboard."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.display = False

    def show(self, view: RunView) -> None:
        workers = view.workers
        self.display = len(workers) > 1
        if not self.display:
            return
        title = f"[b]workers[/] ({escape(view.executor)})"
        self.update("\n".join([title, *(worker_line(w) for w in workers)]))
