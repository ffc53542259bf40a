"""The live dashboard: one thread worker runs the engine; the UI folds its events.

The worker only iterates the engine's generator and posts messages; widgets
are touched on the UI thread alone. Step progress is coalesced to the latest
value, and redraws are batched and throttled (about 4 a second), so a fast
engine cannot flood the UI and keys stay responsive during training.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Protocol

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from core import events as ev
from core.config import RunConfig
from lensllm_tui.messages import EngineEvent, ProgressTick
from lensllm_tui.signals import EXIT_CANCELLED
from lensllm_tui.view import RunView
from lensllm_tui.widgets import EventLog, LossChart, RankingTable
from lensllm_tui.widgets.event_log import describe
from lensllm_tui.widgets.workers import WorkersPanel


class EventSource(Protocol):
    """What drives the dashboard: core.run.runner.run_events, or a replayed stream in tests.

    While ``pause`` is set the source holds its work (the engine: training stops at
    its next step); ``cancel`` ends it.
    """

    def __call__(
        self, config: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None
    ) -> Iterable[ev.Event]: ...


REDRAW_SECONDS = 0.25
WIDE = 120
"""From this many columns the chart and the table sit side by side."""

TERMINAL = (ev.RunFinished, ev.RunCancelled)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class ConfirmQuit(ModalScreen[bool]):
    """Asked before quitting while a run is active."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit"),
        Binding("n,escape", "answer(False)", "Stay"),
    ]

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label("A run is in progress. Quit now?")
            yield Label(
                f"The current point stops; finished points are already saved in "
                f"{escape(self.out_dir)}."
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Quit (y)", id="yes", variant="error")
                yield Button("Stay (n)", id="no", variant="primary")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class DashboardScreen(Screen):
    """Chart, ranking, progress and log of one run, updated live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "cancel", "Cancel run"),
        Binding("s", "screenshot", "Screenshot"),
        Binding("escape", "unhighlight", "All curves", show=False),
        Binding("n", "setup", "New run"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, config: RunConfig, source: EventSource) -> None:
        super().__init__()
        self.config = config
        self.source = source
        self.state = RunView()
        self.state.sizes = tuple(config.sizes)
        self.state.target = config.target
        self.state.out_dir = config.out_dir or ""
        for name in config.models:
            self.state.model(name)
        self.worker: Worker | None = None
        self.events_seen: list[ev.Event] = []
        self._resume = threading.Event()
        self._resume.set()
        self._pause = threading.Event()
        """Set while paused: handed to the engine, whose training holds at its next step."""
        self._lock = threading.Lock()
        self._latest: ev.PointProgress | None = None
        self._tick_pending = False
        self._dirty = True
        self._highlight: str | None = None
        self._terminal_seen = False
        self._exit_when_stopped = False

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="run-status")
        with Horizontal(id="progress-row", classes="bar-row"):
            yield Label("overall", classes="bar-label")
            yield ProgressBar(id="overall", show_eta=False)
            yield Static(id="eta")
        with Horizontal(id="point-row", classes="bar-row"):
            yield Label("point", classes="bar-label")
            yield ProgressBar(id="steps", show_eta=False)
            yield Static(id="point-label")
        with Container(id="body"):
            with Container(id="top"):
                yield LossChart(id="chart")
                yield EventLog(id="log")
            yield RankingTable(id="ranking")
            yield Static(id="failures")
            yield WorkersPanel(id="workers")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RankingTable).focus()
        self.set_interval(REDRAW_SECONDS, self._flush)
        self._flush()
        self.worker = self.run_engine()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "wide")
        self._dirty = True

    # ----------------------------------------------------------------- worker
    @work(thread=True, exclusive=True, exit_on_error=False, group="engine", name="engine")
    def run_engine(self) -> int:
        """Iterate the engine in this thread; everything leaves as a message."""
        worker = get_current_worker()
        cancel = worker.cancelled_event
        events = iter(self.source(self.config, cancel, pause=self._pause))
        count = 0
        try:
            for event in events:
                count += 1
                # The engine holds training on self._pause; holding the generator
                # here as well keeps the events already made until resume.
                while not self._resume.wait(0.1):
                    if cancel.is_set():
                        break
                if isinstance(event, ev.PointProgress):
                    with self._lock:
                        self._latest = event
                        if self._tick_pending:
                            continue
                        self._tick_pending = True
                    self.post_message(ProgressTick())
                else:
                    self.post_message(EngineEvent(event))
                if isinstance(event, TERMINAL):
                    break
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        return count

    @on(Worker.StateChanged)
    def _worker_changed(self, message: Worker.StateChanged) -> None:
        """The one place worker outcomes are handled: errors show, the app lives on."""
        if message.worker is not self.worker:
            return
        if self._exit_when_stopped and message.state in (WorkerState.ERROR, WorkerState.SUCCESS):
            self.app.exit(return_code=EXIT_CANCELLED)
        log = self.query_one(EventLog)
        if message.state == WorkerState.ERROR:
            error = message.worker.error
            text = f"{type(error).__name__}: {error}" if error else "unknown error"
            self.state.phase = "error"
            self.state.message = text
            log.add(f"engine error: {text}", "bold red", self._at())
            self.notify(escape(text), title="engine error", severity="error", timeout=10)
            self._dirty = True
            self._flush()
        elif message.state == WorkerState.SUCCESS and not self._terminal_seen:
            self.state.phase = "error"
            self.state.message = "the engine stopped without finishing the run"
            log.add(self.state.message, "bold red", self._at())
            self._dirty = True
            self._flush()

    def _at(self) -> float | None:
        return self.state.elapsed if self.state.started_at is not None else None

    # --------------------------------------------------------------- messages
    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self.events_seen.append(event)
        if isinstance(event, ev.RankingUpdated):
            order = [e.model for e in event.entries]
            if order != [e.model for e in self.state.ranking]:
                self.query_one(EventLog).add(f"ranking: {', '.join(order)}", "bold", self._at())
        paused = self.state.phase == "paused"
        cancelling = self.state.phase == "cancelling"
        self.state.apply(event)
        if paused and self.state.phase == "running":
            self.state.phase = "paused"
        if cancelling and self.state.phase == "running":
            self.state.phase = "cancelling"
        line = describe(event) if self._worth_logging(event) else None
        if line is not None:
            self.query_one(EventLog).add(line[1], line[0], self._at())
        for warning in getattr(event, "warnings", ()) or ():
            self.query_one(EventLog).add(f"warning: {warning}", "yellow", self._at())
        self._dirty = True
        if isinstance(event, TERMINAL):
            self._terminal_seen = True
            self._flush()
            if self._exit_when_stopped:
                self.app.exit(return_code=EXIT_CANCELLED)

    def _worth_logging(self, event: ev.Event) -> bool:
        """Fits and phase calls repeat after every round; log them when they change."""
        if isinstance(event, ev.PhaseDetected):
            m = self.state.models.get(event.model)
            return m is None or not m.phase_known or m.transition != event.transition_size
        if isinstance(event, ev.LawFitted):
            m = self.state.models.get(event.model)
            return not event.ok and (m is None or m.fit_reason != event.reason)
        return True

    @on(ProgressTick)
    def _progress_tick(self, _: ProgressTick) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
            self._tick_pending = False
        if latest is not None:
            self.state.apply(latest)
            self._dirty = True

    @on(DataTable.RowSelected)
    def _row_selected(self, message: DataTable.RowSelected) -> None:
        model = message.row_key.value
        self._highlight = None if model == self._highlight else model
        self.query_one(LossChart).show(self.state, self._highlight)

    # ---------------------------------------------------------------- drawing
    def _flush(self) -> None:
        """Redraw everything from the state, at most once per REDRAW_SECONDS."""
        if not self._dirty:
            return
        self._dirty = False
        st = self.state
        with self.app.batch_update():
            self.query_one(LossChart).show(st, self._highlight)
            self.query_one(RankingTable).show(st)
            self.query_one("#run-status", Static).update(self._status_text())
            overall = self.query_one("#overall", ProgressBar)
            overall.update(total=max(1, st.total_points or len(st.models) * len(st.sizes)))
            overall.update(progress=st.settled_points)
            self.query_one("#eta", Static).update(self._eta_text())
            steps = self.query_one("#steps", ProgressBar)
            steps.update(total=max(1, st.total_steps), progress=st.step)
            self.query_one("#point-label", Static).update(self._point_text())
            failures = self.query_one("#failures", Static)
            gone = [m for m in st.models.values() if m.eliminated]
            lines = [f"✗ {m.name}: {m.failed}" for m in st.models.values() if m.failed] + [
                f"⊘ {m.name}: {m.eliminated} (saves {m.compute_saved:.2e} FLOPs)" for m in gone
            ]
            if st.policy:
                lines.append(f"adaptive policy: {st.policy}")
            elif gone:
                lines.append(f"compute saved so far: {st.compute_saved:.2e} FLOPs")
            failures.update("\n".join(escape(line) for line in lines))  # names, reasons: user text
            failures.display = bool(lines)
            self.query_one(WorkersPanel).show(st)

    def _status_text(self) -> str:
        st = self.state
        head = {
            "waiting": "[b]◌ STARTING[/]",
            "running": "[b $text-success]● RUNNING[/]",
            "paused": "[b $text-warning]❚❚ PAUSED[/] (p resumes)",
            "cancelling": "[b $text-warning]■ CANCELLING[/] (stopping at the next step)",
            "finished": "[b $text-success]✔ FINISHED[/]",
            "cancelled": "[b $text-warning]■ CANCELLED[/]",
            "error": "[b $text-error]✗ ERROR[/]",
        }[st.phase]
        if st.phase == "finished":
            best = st.ordered()[0] if st.ranking else None
            tail = f" in {_duration(st.elapsed)}"
            if best is not None:
                tail += f" · best [b]{escape(best.name)}[/] (pred. {best.predicted:.3f})"
            return f"{head}{tail} · results in {escape(st.out_dir)}"
        if st.phase == "cancelled":
            kept = st.kept if st.kept is not None else st.done_points
            return (
                f"{head} · {kept} finished points kept in {escape(st.out_dir)}; "
                "the rest was not trained"
            )
        if st.phase == "error":
            return f"{head} {escape(st.message)} · n: back to setup"
        ladder = f"{st.sizes[0]}–{st.sizes[-1]}" if st.sizes else "—"
        return (
            f"{head} · {len(st.models)} models · ladder {ladder} → target {st.target}"
            f" · {escape(st.dataset or self.config.data.source)}"
        )

    def _eta_text(self) -> str:
        st = self.state
        total = st.total_points or len(st.models) * len(st.sizes)
        text = f"{st.settled_points}/{total} pts · {_duration(st.elapsed)}"
        if st.active:
            text += f" · ETA {_duration(st.eta())}"
        return text

    def _point_text(self) -> str:
        st = self.state
        if st.current is None:
            return "—"
        model, size = st.current
        text = f"{model} @ {size}"
        if st.total_steps:
            text += f" · step {st.step}/{st.total_steps}"
        if math.isfinite(st.train_loss):
            text += f" · train {st.train_loss:.3f}"
        return text

    # ---------------------------------------------------------------- actions
    def action_pause(self) -> None:
        st = self.state
        if st.phase == "running":
            self._pause.set()
            self._resume.clear()
            st.phase = "paused"
            self.query_one(EventLog).add("paused: training holds at its next step", "", self._at())
        elif st.phase == "paused":
            self._pause.clear()
            self._resume.set()
            st.phase = "running"
            self.query_one(EventLog).add("resumed", "", self._at())
        self._dirty = True
        self._flush()

    def stop_and_exit(self, why: str) -> bool:
        """Cancel the active run and exit the app once it has stopped; False if none is active."""
        if not self.state.active or self.worker is None:
            return False
        self._exit_when_stopped = True
        self.query_one(EventLog).add(f"{why}: stopping the run, then exiting", "yellow", self._at())
        self.action_cancel()
        return True

    def action_cancel(self) -> None:
        st = self.state
        if not st.active or self.worker is None:
            self.notify("no run in progress", timeout=3)
            return
        self.worker.cancel()
        self._pause.clear()
        self._resume.set()
        st.phase = "cancelling"
        self.query_one(EventLog).add(
            "cancelling: the current point stops at its next step; finished points are kept",
            "yellow",
            self._at(),
        )
        self._dirty = True
        self._flush()

    def action_screenshot(self) -> None:
        folder = Path(self.state.out_dir or ".")
        if not folder.is_dir():
            folder = Path(".")
        path = self.app.save_screenshot(path=str(folder))
        self.query_one(EventLog).add(f"screenshot saved: {path}", "", self._at())

    def action_unhighlight(self) -> None:
        self._highlight = None
        self.query_one(LossChart).show(self.state, None)

    def action_setup(self) -> None:
        if self.state.active:
            self.notify("a run is in progress: cancel it first (c)", timeout=4)
            return
        self.app.call_later(self.app.open_setup)  # type: ignore[attr-defined]

    def action_quit(self) -> None:
        if not self.state.active:
            self.app.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                if self.worker is not None:
                    self.worker.cancel()
                self._pause.clear()
                self._resume.set()
                self.app.exit()

        self.app.push_screen(ConfirmQuit(self.state.out_dir or "the run directory"), answered)
