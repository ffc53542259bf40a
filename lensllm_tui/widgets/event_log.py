"""The run's log panel: one line per notable event, warnings and errors in colour.

Lines carry the time since the run started, taken from the events, so a
replayed stream logs identically (and snapshots stay stable).
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import RichLog

from core import events as ev


def describe(event: ev.Event) -> tuple[str, str] | None:
    """(style, text) for an event worth a log line; None for noise (progress)."""
    match event:
        case ev.RunStarted():
            return (
                "bold",
                f"run started: {len(event.models)} models × {len(event.sizes)} sizes "
                f"on {event.dataset} → {event.out_dir}",
            )
        case ev.PointFinished():
            reused = " (reused from store)" if event.reused else ""
            return ("", f"{event.model} @ {event.size}: test loss {event.loss:.4f}{reused}")
        case ev.PointFailed():
            return ("yellow", f"{event.model} @ {event.size} failed: {event.reason}")
        case ev.ModelFailed():
            return ("bold red", f"{event.model} failed: {event.reason}")
        case ev.NTKComputed():
            if not event.ok:
                return ("yellow", f"{event.model}: NTK not computed ({event.reason})")
            return ("dim", f"{event.model}: NTK n={event.n}, eff. rank {event.effective_rank:.1f}")
        case ev.LawFitted():
            if not event.ok:
                return ("dim", f"{event.model}: no law fit yet ({event.reason})")
            if math.isfinite(event.predicted_target):
                return ("dim", f"{event.model}: {event.law} fit → {event.predicted_target:.3f}")
            return None
        case ev.PhaseDetected():
            if event.transition_size is None:
                return None
            return (
                "cyan",
                f"{event.model}: power phase from {event.transition_size} "
                f"(confidence {event.confidence:.2f})",
            )
        case ev.ModelEliminated():
            return (
                "yellow",
                f"{event.model} eliminated: {event.reason} (saves {event.compute_saved:.2e} FLOPs)",
            )
        case ev.PolicyStopped():
            return ("bold", f"adaptive policy stopped: {event.summary()}")
        case ev.RunFinished():
            best = event.ranking[0].model if event.ranking else "none"
            counts = ""
            if getattr(event, "computed", 0) or getattr(event, "reused", 0):
                counts = f" ({event.computed} points trained, {event.reused} reused)"
            return ("bold green", f"run finished: best {best}{counts}; results in {event.out_dir}")
        case ev.RunCancelled():
            kept = getattr(event, "kept", None)
            what = f"{kept} finished points are" if kept else "finished points are"
            return (
                "bold yellow",
                f"run cancelled ({event.reason}); {what} kept in {event.out_dir}",
            )
    return None


class EventLog(RichLog):
    """Scrolling log of the run; each line starts with mm:ss since the run started."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id, max_lines=1000, min_width=20, wrap=True, markup=False, highlight=False
        )
        self.lines_text: list[str] = []

    def add(self, text: str, style: str = "", at: float | None = None) -> None:
        if at is None:
            stamp = "--:-- "
        else:
            whole = int(at)
            stamp = f"{whole // 60:02d}:{whole % 60:02d} "
        line = Text(stamp, style="dim")
        line.append(text, style=style)
        self.lines_text.append(text)
        self.write(line)
