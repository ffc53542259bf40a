"""Headless front end: rich progress and tables over the engine's event stream.

Everything shown comes from ``core.run.runner.run_events``, folded by
``lensllm_tui.view.RunView`` exactly as the dashboard folds it; this module only
renders that view. On a terminal it shows live progress bars (overall and one per
model, with ETA); when stdout is not a terminal (CI logs, ``| tee``) the bars
are left out and the same information is printed as plain lines.

Exit codes: 0 success; 1 the run finished but at least one model failed (a
one-line summary names which and why); 2 bad input (configuration or data);
130 stopped by Ctrl-C or SIGTERM, whenever it comes (finished points are kept in
the store; a run that had already finished keeps results.json "finished").
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
from core.errors import LensError
from core.events import (
    Event,
    ModelEliminated,
    ModelFailed,
    NTKComputed,
    PointFailed,
    PointFinished,
    PointRetried,
    PolicyStopped,
    RunCancelled,
    RunFinished,
    RunStarted,
    WorkersUpdated,
)
from core.paths import CURVES_NAME, RESULTS_NAME
from lensllm_tui.signals import stop_on_signals
from lensllm_tui.view import ModelView, RunView

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
    view = ConsoleView(console)
    stop = stop_on_signals(
        cancel, lambda text: err.print(f"[yellow]{text}[/]"), lambda: view.view.finished is not None
    )
    # Signals are ours before the engine's imports (seconds of torch): a Ctrl-C then
    # cancels the run before it starts instead of unwinding through an import.
    with stop:
        code = _consume(config, cancel, view, err)
    if stop.signalled is not None and code in (EXIT_OK, EXIT_MODEL_FAILED):
        return EXIT_CANCELLED  # stopped by a signal, even one that came as the run ended
    return code


def _consume(config: RunConfig, cancel: threading.Event, view: ConsoleView, err: Console) -> int:
    """Run the engine into ``view``; the exit code (a run-level error is one line)."""
    try:
        from core.run.runner import run_events

        events = run_events(config, cancel)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT
    try:
        return view.consume(events)
    except LensError as exc:  # run-level: config, data, store, run directory, disk full
        view.close()
        err.print(f"[bold red]error:[/] {escape(exc.one_line())}", highlight=False)
        return exc.exit_code
    finally:
        # The engine's own clean-up (closing the store) runs here, under the handlers,
        # so a late second Ctrl-C finds nothing of the engine's left to interrupt.
        view.close()
        events.close()


class ConsoleView:
    """Renders a RunView as progress bars, one line per event worth a line, and tables.

    Every event is folded into ``self.view`` first (the same fold the dashboard
    draws from); what is printed is read back from it, so the [k/N] counter, the
    compute saved and the ranking are the dashboard's numbers.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.view = RunView()
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
        self._told_workers = False

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
        """Fold ``ev``, print what it says, redraw the bars; an exit code once the run ends."""
        self.view.apply(ev)
        render = _RENDERS.get(type(ev))
        code = render(self, ev) if render is not None else None
        self._bars()
        return code

    def _started(self, ev: RunStarted) -> None:
        self.line(
            f"run: {len(ev.models)} models x sizes 0,{','.join(map(str, ev.sizes))} "
            f"-> target {ev.target} on {escape(repr(ev.dataset))}; "
            f"results in {escape(ev.out_dir)}"
        )
        for w in ev.warnings:
            self.line(f"[yellow]warning:[/] {escape(w)}")
        self.overall = self.progress.add_task("all points", total=ev.total_points)
        for m in ev.models:
            task = self.progress.add_task(f"  {escape(m)}", total=self.view.model(m).planned)
            self.per_model[m] = task

    def _finished_point(self, ev: PointFinished) -> None:
        v = self.view
        how = "reused" if ev.reused else f"{ev.seconds:6.1f}s"
        where = f"  on {escape(ev.worker)}" if ev.worker else ""
        self.line(
            f"[{v.settled_points}/{v.total_points}] {escape(f'{ev.model:<16}')} size {ev.size:>6}  "
            f"loss {ev.loss:.4f}  {ev.flops:.2e} FLOPs  {how}{where}"
        )

    def _workers(self, ev: WorkersUpdated) -> None:
        if self._told_workers or len(ev.workers) < 2:
            return  # said once; a one-worker run needs no line
        self._told_workers = True
        where = ", ".join(f"{w.name} {w.device}" for w in ev.workers)
        self.line(f"executor {escape(ev.executor)}: {len(ev.workers)} workers ({escape(where)})")

    def _retried_point(self, ev: PointRetried) -> None:
        batch = f", micro-batch {ev.micro_batch_size}" if ev.micro_batch_size else ""
        self.line(
            f"[yellow]retry[/] {escape(ev.model)} size {ev.size} (attempt {ev.attempt}{batch}): "
            f"{escape(ev.reason)}"
        )

    def _failed_point(self, ev: PointFailed) -> None:
        self.line(f"[red]point failed[/] {escape(ev.model)} size {ev.size}: {escape(ev.reason)}")

    def _failed_model(self, ev: ModelFailed) -> None:
        self._mark(ev.model, "[red](failed)[/]")
        self.line(f"[red]model failed[/] {escape(ev.model)}: {escape(ev.reason)}")

    def _eliminated(self, ev: ModelEliminated) -> None:
        self._mark(ev.model, "[yellow](eliminated)[/]")
        self.line(
            f"[yellow]eliminated[/] {escape(ev.model)}: {escape(ev.reason)}; "
            f"saves {ev.compute_saved:.2e} "
            f"FLOPs ({self.view.compute_saved:.2e} saved so far)"
        )

    def _policy(self, ev: PolicyStopped) -> None:
        self.line(f"[bold]adaptive policy stopped:[/] {escape(ev.summary())}")

    def _ntk(self, ev: NTKComputed) -> None:
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

    def _cancelled(self, ev: RunCancelled) -> int:
        self.progress.stop()
        self.line(
            f"[yellow]cancelled:[/] {ev.kept} finished points kept in {escape(ev.out_dir)}; "
            "rerun with the same --out to resume"
        )
        return EXIT_CANCELLED

    def _run_finished(self, ev: RunFinished) -> int:
        self._bars()
        self.progress.stop()
        self._summary(ev)
        if ev.failed:
            names = escape("; ".join(f"{m} ({r})" for m, r in ev.failed))
            self.console.print(
                f"[bold red]{len(ev.failed)} model(s) failed:[/] {names}", highlight=False
            )
            return EXIT_MODEL_FAILED
        return EXIT_OK

    def _mark(self, model: str, note: str) -> None:
        task = self.per_model.get(model)
        if task is not None:
            self.progress.update(task, description=f"  {escape(model)} {note}")

    def _bars(self) -> None:
        """The bars as the view counts: settled of total, the current point's steps in it."""
        v = self.view
        if self.overall is not None:
            self.progress.update(self.overall, total=v.total_points, completed=v.settled_points)
        for name, task in self.per_model.items():
            m = v.model(name)
            self.progress.update(task, total=m.planned, completed=m.settled + self._training(m))

    def _training(self, m: ModelView) -> float:
        """How far ``m``'s point in training has got (0 to 1); 0 when none is."""
        v = self.view
        if v.current is None or v.current[0] != m.name or v.total_steps <= 0:
            return 0.0
        if v.current[1] in m.points or m.planned <= m.settled:
            return 0.0
        return min(v.step / v.total_steps, 1.0)

    def _summary(self, ev: RunFinished) -> None:
        c, v = self.console, self.view
        c.print()
        c.print(ranking_table(v))
        if (note := self._early_leader_note()) is not None:
            c.print(escape(note), highlight=False)
        if ntk := {m.name: m.ntk for m in v.models.values() if m.ntk is not None}:
            c.print(ntk_table(ntk))
        c.print(
            f"{ev.computed} points computed, {ev.reused} reused, {ev.seconds:.1f}s",
            highlight=False,
        )
        if v.stopped is not None:
            c.print(f"adaptive policy: {escape(v.policy)}", highlight=False)
            for model, reason in v.stopped.eliminated:
                c.print(f"  eliminated {escape(model)}: {escape(reason)}", highlight=False)
        elif v.compute_saved > 0:
            c.print(
                f"adaptive policy: eliminations saved {v.compute_saved:.2e} FLOPs of ladder compute",
                highlight=False,
            )
        out = Path(ev.out_dir)
        c.print(f"results: {escape(str(out / RESULTS_NAME))}", highlight=False)
        c.print(f"curves:  {escape(str(out / CURVES_NAME))}", highlight=False)
        if not self.live:
            c.file.flush()  # a log or a pipe (| tee) gets the tables now, not at exit

    def _early_leader_note(self) -> str | None:
        """Who leads at the smallest ladder size against who is predicted to win."""
        v = self.view
        if not v.ranking or not v.sizes:
            return None
        first = v.sizes[0]
        measured = {e.model: v.model(e.model).points.get(first) for e in v.ranking}
        measured = {m: x for m, x in measured.items() if x is not None}
        if len(measured) < 2:
            return None
        leader = min(measured, key=lambda m: measured[m])
        best = v.ranking[0].model
        if leader == best:
            return f"best at {first} samples and predicted best at the target: {best}"
        return (
            f"best at {first} samples: {leader} ({measured[leader]:.4f}); "
            f"predicted best at the target: {best}"
        )


_RENDERS: dict[type, Callable[[ConsoleView, Any], int | None]] = {
    RunStarted: ConsoleView._started,
    PointFinished: ConsoleView._finished_point,
    PointFailed: ConsoleView._failed_point,
    PointRetried: ConsoleView._retried_point,
    WorkersUpdated: ConsoleView._workers,
    ModelFailed: ConsoleView._failed_model,
    ModelEliminated: ConsoleView._eliminated,
    PolicyStopped: ConsoleView._policy,
    NTKComputed: ConsoleView._ntk,
    RunCancelled: ConsoleView._cancelled,
    RunFinished: ConsoleView._run_finished,
}
"""The events that print something; the others only move the bars."""


def _fmt(x: float, spec: str = ".4f") -> str:
    return format(x, spec) if math.isfinite(x) else "-"


def ranking_table(view: RunView) -> Table:
    """The final ranking: best first, with interval, transition and measured points."""
    t = Table(title="Ranking (predicted test loss at the target)", title_justify="left")
    t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("model", no_wrap=True)
    t.add_column("predicted", justify="right", no_wrap=True)
    t.add_column("interval", justify="right", no_wrap=True)
    t.add_column("transition", justify="right", no_wrap=True)
    t.add_column("points", justify="right", no_wrap=True)
    t.add_column("note")
    for e in view.ranking:
        m = view.model(e.model)
        tr = "-" if not m.phase_known or m.transition is None else str(m.transition)
        interval = (
            f"{_fmt(e.low, '.3f')} - {_fmt(e.high, '.3f')}"
            if math.isfinite(e.low) and math.isfinite(e.high)
            else "-"
        )
        note = "" if not m.law or m.fit_ok else (m.fit_reason or "fit failed")
        if m.eliminated:
            note = "eliminated" + (f"; {note}" if note else "")
        t.add_row(
            str(e.rank),
            escape(e.model),
            _fmt(e.predicted_target),
            interval,
            tr,
            str(len(m.points)),
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
