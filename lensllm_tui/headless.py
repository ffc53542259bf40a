"""Headless front end: rich progress and tables over the engine's event stream.

Everything shown comes from ``core.run.runner.run_events``; this module holds no
engine state. On a terminal it shows live progress bars (overall and one per
model, with ETA); when stdout is not a terminal (CI logs, ``| tee``) the bars
are left out and the same information is printed as plain lines.

Exit codes: 0 success; 1 the run finished but at least one model failed (a
one-line summary names which and why); 2 bad input (configuration or data);
130 cancelled with Ctrl-C (finished points are kept in the store).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from core.config import ConfigError, RunConfig
from core.events import (
    Event,
    LawFitted,
    ModelEliminated,
    ModelFailed,
    NTKComputed,
    PhaseDetected,
    PointFailed,
    PointFinished,
    PointProgress,
    PointStarted,
    PolicyStopped,
    RankEntry,
    RunCancelled,
    RunFinished,
    RunStarted,
)
from core.paths import CURVES_NAME, RESULTS_NAME

EXIT_OK = 0
EXIT_MODEL_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def run_headless(config: RunConfig, console: Console | None = None) -> int:
    """Run ``config`` without the dashboard; returns the process exit code."""
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(width=120)  # logs: no terminal width, so do not wrap at 80
    err = Console(stderr=True)
    cancel = threading.Event()
    try:
        from core.run.runner import run_events

        events = run_events(config, cancel)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT
    with _ctrl_c_sets(cancel, err):
        view = _View(console)
        try:
            return view.consume(events)
        except Exception as exc:
            if not _is_input_error(exc):
                raise
            view.close()
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            return EXIT_BAD_INPUT
        finally:
            view.close()


def _is_input_error(exc: Exception) -> bool:
    """Run-level input problems (config, dataset, store) that end the run with one line."""
    from core.run.store import StoreError
    from core.training.data import DataError

    return isinstance(exc, ConfigError | DataError | StoreError)


class _ctrl_c_sets:
    """First Ctrl-C sets the cancel event (clean stop); a second one interrupts at once."""

    def __init__(self, cancel: threading.Event, err: Console) -> None:
        self.cancel = cancel
        self.err = err
        self.previous: object = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()
        self.err.print(
            "[yellow]cancelling: finishing clean-up, finished points are kept "
            "(Ctrl-C again to abort at once)[/]"
        )

    def __enter__(self) -> _ctrl_c_sets:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)  # type: ignore[arg-type]


class _View:
    """Turns events into progress bars, lines and the final tables."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
            transient=False,
        )
        self.overall: TaskID | None = None
        self.per_model: dict[str, TaskID] = {}
        self.done: dict[str, int] = {}
        self.ntk: dict[str, NTKComputed] = {}
        self.laws: dict[str, LawFitted] = {}
        self.phases: dict[str, PhaseDetected] = {}
        self.points: dict[str, list[int]] = {}
        self.losses: dict[tuple[str, int], float] = {}
        self.sizes: tuple[int, ...] = ()
        self.started = time.monotonic()
        self.total = 0
        self.finished_points = 0
        self.saved = 0.0
        """Compute the adaptive policy's eliminations have saved so far (FLOPs)."""
        self.eliminated: dict[str, str] = {}
        self.stopped: PolicyStopped | None = None

    def close(self) -> None:
        self.progress.stop()

    def consume(self, events: Iterator[Event]) -> int:
        self.progress.start()
        for ev in events:
            code = self.on(ev)
            if code is not None:
                return code
        return EXIT_OK

    def line(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, soft_wrap=True)
        if not self.live:
            self.console.file.flush()  # CI logs show each line as it happens

    def on(self, ev: Event) -> int | None:
        if isinstance(ev, RunStarted):
            self.total = ev.total_points
            self.sizes = ev.sizes
            per_model = ev.total_points // max(len(ev.models), 1)
            self.line(
                f"run: {len(ev.models)} models x sizes 0,{','.join(map(str, ev.sizes))} "
                f"-> target {ev.target} on {escape(repr(ev.dataset))}; "
                f"results in {escape(ev.out_dir)}"
            )
            for w in ev.warnings:
                self.line(f"[yellow]warning:[/] {escape(w)}")
            self.overall = self.progress.add_task("all points", total=ev.total_points)
            for m in ev.models:
                self.per_model[m] = self.progress.add_task(f"  {escape(m)}", total=per_model)
                self.done[m] = 0
                self.points[m] = []
        elif isinstance(ev, PointStarted):
            self.progress.update(self.per_model[ev.model], completed=self.done[ev.model])
        elif isinstance(ev, PointProgress):
            if ev.total_steps > 0:
                frac = min(ev.step / ev.total_steps, 1.0)
                self.progress.update(self.per_model[ev.model], completed=self.done[ev.model] + frac)
        elif isinstance(ev, PointFinished):
            self._advance(ev.model, 1)
            self.points[ev.model].append(ev.size)
            self.losses[(ev.model, ev.size)] = ev.loss
            how = "reused" if ev.reused else f"{ev.seconds:6.1f}s"
            self.line(
                f"[{self.finished_points}/{self.total}] {escape(f'{ev.model:<16}')} size {ev.size:>6}  "
                f"loss {ev.loss:.4f}  {ev.flops:.2e} FLOPs  {how}"
            )
        elif isinstance(ev, PointFailed):
            self.line(
                f"[red]point failed[/] {escape(ev.model)} size {ev.size}: {escape(ev.reason)}"
            )
        elif isinstance(ev, ModelFailed):
            task = self.per_model.get(ev.model)
            if task is not None:
                self._drop_remaining(ev.model)
                self.progress.update(task, description=f"  {escape(ev.model)} [red](failed)[/]")
            self.line(f"[red]model failed[/] {escape(ev.model)}: {escape(ev.reason)}")
        elif isinstance(ev, ModelEliminated):
            self.saved += ev.compute_saved
            self.eliminated[ev.model] = ev.reason
            task = self.per_model.get(ev.model)
            if task is not None:
                self._drop_remaining(ev.model)
                self.progress.update(
                    task, description=f"  {escape(ev.model)} [yellow](eliminated)[/]"
                )
            self.line(
                f"[yellow]eliminated[/] {escape(ev.model)}: {escape(ev.reason)}; "
                f"saves {ev.compute_saved:.2e} "
                f"FLOPs ({self.saved:.2e} saved so far)"
            )
        elif isinstance(ev, PolicyStopped):
            self.stopped = ev
            self.total = self.finished_points  # points the policy skipped will not come
            if self.overall is not None:
                self.progress.update(self.overall, total=self.total)
            self.line(f"[bold]adaptive policy stopped:[/] {escape(ev.summary())}")
        elif isinstance(ev, NTKComputed):
            self.ntk[ev.model] = ev
            if ev.ok:
                self.line(
                    f"ntk {escape(ev.model)}: trace {ev.trace:.3g}, top "
                    f"{', '.join(f'{x:.3g}' for x in ev.top_eigenvalues[:3])}, "
                    f"effective rank {ev.effective_rank:.2f} ({ev.seconds:.1f}s)"
                )
            else:
                self.line(
                    f"[yellow]ntk {escape(ev.model)} failed:[/] {escape(ev.reason)} (law uses F free)"
                )
        elif isinstance(ev, LawFitted):
            self.laws[ev.model] = ev
        elif isinstance(ev, PhaseDetected):
            self.phases[ev.model] = ev
        elif isinstance(ev, RunCancelled):
            self.progress.stop()
            self.line(
                f"[yellow]cancelled:[/] {ev.kept} finished points kept in {escape(ev.out_dir)}; "
                "rerun with the same --out to resume"
            )
            return EXIT_CANCELLED
        elif isinstance(ev, RunFinished):
            self.progress.stop()
            self._summary(ev)
            if ev.failed:
                names = escape("; ".join(f"{m} ({r})" for m, r in ev.failed))
                self.console.print(
                    f"[bold red]{len(ev.failed)} model(s) failed:[/] {names}", highlight=False
                )
                return EXIT_MODEL_FAILED
            return EXIT_OK
        return None

    def _drop_remaining(self, model: str) -> None:
        """A model that gets no more points: its unrun points leave the totals.

        The [k/N] counter then keeps counting points actually run (N shrinks) rather
        than jumping over the points that will never come.
        """
        task = self.per_model.get(model)
        if task is None:
            return
        remaining = int((self.progress.tasks[task].total or 0) - self.done.get(model, 0))
        if remaining <= 0:
            return
        self.total -= remaining
        self.progress.update(task, total=self.done.get(model, 0))
        if self.overall is not None:
            self.progress.update(self.overall, total=self.total)

    def _advance(self, model: str, n: int) -> None:
        self.done[model] = self.done.get(model, 0) + n
        self.finished_points += n
        if model in self.per_model:
            self.progress.update(self.per_model[model], completed=self.done[model])
        if self.overall is not None:
            self.progress.update(self.overall, completed=self.finished_points)

    def _summary(self, ev: RunFinished) -> None:
        c = self.console
        c.print()
        c.print(ranking_table(ev.ranking, self.phases, self.points, self.laws, self.eliminated))
        if (note := self._early_leader_note(ev.ranking)) is not None:
            c.print(escape(note), highlight=False)
        if self.ntk:
            c.print(ntk_table(self.ntk))
        c.print(
            f"{ev.computed} points computed, {ev.reused} reused, {ev.seconds:.1f}s",
            highlight=False,
        )
        if self.stopped is not None:
            c.print(f"adaptive policy: {escape(self.stopped.summary())}", highlight=False)
            for model, reason in self.stopped.eliminated:
                c.print(f"  eliminated {escape(model)}: {escape(reason)}", highlight=False)
        elif self.saved > 0:
            c.print(
                f"adaptive policy: eliminations saved {self.saved:.2e} FLOPs of ladder compute",
                highlight=False,
            )
        out = Path(ev.out_dir)
        c.print(f"results: {escape(str(out / RESULTS_NAME))}", highlight=False)
        c.print(f"curves:  {escape(str(out / CURVES_NAME))}", highlight=False)

    def _early_leader_note(self, ranking: tuple[RankEntry, ...]) -> str | None:
        """Who leads at the smallest ladder size against who is predicted to win."""
        if not ranking or not self.sizes:
            return None
        first = self.sizes[0]
        measured = {e.model: self.losses.get((e.model, first)) for e in ranking}
        measured = {m: v for m, v in measured.items() if v is not None}
        if len(measured) < 2:
            return None
        leader = min(measured, key=lambda m: measured[m])
        best = ranking[0].model
        if leader == best:
            return f"best at {first} samples and predicted best at the target: {best}"
        return (
            f"best at {first} samples: {leader} ({measured[leader]:.4f}); "
            f"predicted best at the target: {best}"
        )


def _fmt(x: float, spec: str = ".4f") -> str:
    return format(x, spec) if math.isfinite(x) else "-"


def ranking_table(
    ranking: tuple[RankEntry, ...],
    phases: dict[str, PhaseDetected],
    points: dict[str, list[int]],
    laws: dict[str, LawFitted],
    eliminated: dict[str, str] | None = None,
) -> Table:
    """The final ranking: best first, with interval, transition and measured points."""
    t = Table(title="Ranking (predicted test loss at the target)", title_justify="left")
    t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("model", no_wrap=True)
    t.add_column("predicted", justify="right", no_wrap=True)
    t.add_column("interval", justify="right", no_wrap=True)
    t.add_column("transition", justify="right", no_wrap=True)
    t.add_column("points", justify="right", no_wrap=True)
    t.add_column("note")
    for e in ranking:
        ph = phases.get(e.model)
        tr = "-" if ph is None or ph.transition_size is None else str(ph.transition_size)
        interval = (
            f"{_fmt(e.low, '.3f')} - {_fmt(e.high, '.3f')}"
            if math.isfinite(e.low) and math.isfinite(e.high)
            else "-"
        )
        law = laws.get(e.model)
        note = "" if law is None or law.ok else (law.reason or "fit failed")
        if eliminated and e.model in eliminated:
            note = "eliminated" + (f"; {note}" if note else "")
        t.add_row(
            str(e.rank),
            escape(e.model),
            _fmt(e.predicted_target),
            interval,
            tr,
            str(len(points.get(e.model, []))),
            escape(note),
        )
    return t


def ntk_table(ntk: dict[str, NTKComputed]) -> Table:
    """The per-model NTK summary (trace, top eigenvalues, effective rank)."""
    t = Table(title="NTK on the probe set", title_justify="left")
    t.add_column("model")
    t.add_column("n", justify="right")
    t.add_column("trace", justify="right")
    t.add_column("top eigenvalues", justify="right")
    t.add_column("effective rank", justify="right")
    for m, ev in ntk.items():
        if ev.ok:
            top = ", ".join(f"{x:.3g}" for x in ev.top_eigenvalues[:3])
            t.add_row(escape(m), str(ev.n), f"{ev.trace:.3g}", top, f"{ev.effective_rank:.2f}")
        else:
            t.add_row(escape(m), str(ev.n), "-", f"failed: {escape(ev.reason)}", "-")
    return t
