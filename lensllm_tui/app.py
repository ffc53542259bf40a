"""The Textual app and its one factory, shared by the CLI, the tests and the screenshots.

``make_app(config)`` opens the setup screen (or, with ``autostart``, the
dashboard at once). What drives the dashboard is injectable: by default the
real engine, ``core.run.runner.run_events``; tests and snapshots replay a
deterministic stream through the same signature.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from textual.app import App

from core import events as ev
from core.config import RunConfig
from lensllm_tui.recent import RecentRun, recent_runs, run_roots
from lensllm_tui.screens.dashboard import DashboardScreen, EventSource
from lensllm_tui.screens.setup import SetupScreen
from lensllm_tui.signals import EXIT_CANCELLED, abort_now, on_stop_signals, signal_name


def engine_events(
    config: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None
) -> Iterable[ev.Event]:
    """The real engine (imported on use: torch and transformers load with it)."""
    from core.run.runner import run_events

    return run_events(config, cancel, pause=pause)


def cached_hub_models() -> list[str]:
    """Models in the local Hugging Face cache (core.training.models); called off the UI thread."""
    from core.training.models import cached_hub_models as scan

    return list(scan())


def recent_run_dirs(config: RunConfig) -> list[RecentRun]:
    """Run directories under ./runs/ and beside the configured out dir, newest first."""
    return recent_runs(run_roots(config.out_dir))


class LensApp(App[None]):
    """lensllm-tui: set a run up, then watch it."""

    CSS_PATH = "app.tcss"
    TITLE = "lensllm-tui"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        config: RunConfig,
        *,
        event_source: EventSource = engine_events,
        hub_models: Callable[[], Sequence[str]] = cached_hub_models,
        autostart: bool = False,
        recent: Callable[[RunConfig], Sequence[RecentRun]] = recent_run_dirs,
    ) -> None:
        super().__init__()
        self.config = config
        self.event_source = event_source
        self.hub_models = hub_models
        self.autostart = autostart
        self.recent = recent
        self._stopping = False
        self._undo_signals: Callable[[], None] = lambda: None

    def on_mount(self) -> None:
        self._undo_signals = on_stop_signals(self.stop_signal)
        if self.autostart:
            self.start_run(self.config)
        else:
            self.open_setup()

    def on_unmount(self) -> None:
        self._undo_signals()

    def stop_signal(self, signum: int) -> None:
        """SIGTERM or SIGINT from outside: cancel the run as ``c`` does, then exit 130.

        The app exits once the engine has stopped and recorded the run as
        cancelled (resumable); a second signal exits at once.
        """
        if self._stopping:
            abort_now()
        self._stopping = True
        screen = self.screen
        if isinstance(screen, DashboardScreen) and screen.stop_and_exit(signal_name(signum)):
            return
        self.exit(return_code=EXIT_CANCELLED)

    def open_setup(self) -> None:
        """Show the setup screen for the current config (replacing a finished dashboard)."""
        screen = SetupScreen(self.config, self.hub_models, self.recent)
        if isinstance(self.screen, DashboardScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def start_run(self, config: RunConfig) -> DashboardScreen:
        """Open a dashboard that runs ``config`` at once."""
        self.config = config
        screen = DashboardScreen(config, self.event_source)
        if isinstance(self.screen, SetupScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        return screen


def make_app(
    config: RunConfig | None = None,
    *,
    event_source: EventSource | None = None,
    hub_models: Callable[[], Sequence[str]] | None = None,
    autostart: bool = False,
    recent: Callable[[RunConfig], Sequence[RecentRun]] | None = None,
) -> LensApp:
    """Build the app: the CLI passes only ``config``; tests also inject the event source."""
    return LensApp(
        config or RunConfig(),
        event_source=event_source or engine_events,
        hub_models=hub_models or cached_hub_models,
        autostart=autostart,
        recent=recent or recent_run_dirs,
    )
