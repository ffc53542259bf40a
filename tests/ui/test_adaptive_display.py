"""Front ends show an adaptive run's eliminations, their reasons and the policy's account."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from textual.widgets import Static

from core.config import RunConfig
from core.events import (
    Event,
    ModelEliminated,
    PointFinished,
    PointMeasurements,
    PolicyStopped,
    RankEntry,
    RunFinished,
    RunStarted,
)
from lensllm_tui.app import make_app
from lensllm_tui.headless import ConsoleView
from lensllm_tui.view import RunView
from lensllm_tui.widgets import EventLog
from lensllm_tui.widgets.event_log import describe
from tests.ui.app_helpers import dashboard, settle_dashboard

STREAM = [
    RunStarted(("a", "b", "c"), (200, 400), 1600, "/tmp/run", "builtin", 9),
    PointFinished("a", 0, PointMeasurements(3.0, 0.0, 0.1)),
    PointFinished("b", 0, PointMeasurements(3.5, 0.0, 0.1)),
    PointFinished("c", 0, PointMeasurements(4.0, 0.0, 0.1)),
    ModelEliminated("c", "90% interval [2.1, ...] lies above a's [..., 1.9]", 2.5e12),
    ModelEliminated("b", "90% interval [2.0, ...] lies above a's [..., 1.9]", 1.5e12),
    PolicyStopped(
        "one model left: a",
        cost=1.0e12,
        full_cost=1.0e13,
        cost_fraction=0.1,
        compute_saved=4.0e12,
        ladder_cost=4.7e12,
        budget=0.2,
        eliminated=(("c", "90% interval [2.1, ...]"), ("b", "90% interval [2.0, ...]")),
    ),
    RunFinished("/tmp/run", (RankEntry(1, "a", 1.8, 1.7, 1.9, 1.8),), seconds=1.0),
]
ACCOUNT = (
    "one model left: a; spent 1.00e+12 FLOPs = 0.100 of full fine-tuning (budget 0.2); "
    "the full ladder would cost 0.470; eliminations saved 4.00e+12 FLOPs"
)


def test_headless_lists_eliminations_and_compute_saved() -> None:
    buf = io.StringIO()
    view = ConsoleView(Console(file=buf, width=200, force_terminal=False))
    assert view.consume(iter(STREAM)) == 0
    out = buf.getvalue()
    assert "eliminated c: 90% interval [2.1, ...] lies above a's" in out
    assert "saves 2.50e+12 FLOPs (2.50e+12 saved so far)" in out
    assert "saves 1.50e+12 FLOPs (4.00e+12 saved so far)" in out
    assert f"adaptive policy stopped: {ACCOUNT}" in out  # as it happens
    assert f"adaptive policy: {ACCOUNT}" in out  # and in the summary
    assert "  eliminated b: 90% interval [2.0, ...]" in out


def test_headless_counter_counts_points_run_not_points_skipped() -> None:
    """After an elimination the [k/N] counter shrinks N instead of jumping over k."""
    stream = [
        *STREAM[:4],
        PointFinished("a", 200, PointMeasurements(2.5, 1.0, 0.1)),
        STREAM[4],  # c out: its 200 and 400 will never come (9 -> 7)
        PointFinished("b", 200, PointMeasurements(2.9, 1.0, 0.1)),
        *STREAM[5:],
    ]
    buf = io.StringIO()
    view = ConsoleView(Console(file=buf, width=200, force_terminal=False))
    assert view.consume(iter(stream)) == 0
    out = buf.getvalue()
    assert "[4/9] a" in out and "[5/7] b" in out
    assert view.view.total_points == view.view.settled_points == 5


def test_tui_state_keeps_reason_and_compute_saved() -> None:
    st = RunView()
    for e in STREAM[:-1]:
        st.apply(e)
    c = st.model("c")
    assert c.status == "eliminated" and c.eliminated.startswith("90% interval")
    assert c.compute_saved == 2.5e12
    assert st.policy == ACCOUNT
    assert st.total_points == 3  # the points the policy skipped are not waited for
    assert describe(STREAM[-2]) == ("bold", f"adaptive policy stopped: {ACCOUNT}")
    assert describe(STREAM[4]) == (
        "yellow",
        "c eliminated: 90% interval [2.1, ...] lies above a's [..., 1.9] (saves 2.50e+12 FLOPs)",
    )


def test_dashboard_shows_eliminations_and_the_policy_account(tmp_path: Path) -> None:
    """The real app on the stream above: log lines and the status panel carry the account."""

    def source(
        config: RunConfig, cancel: threading.Event | None = None, *, pause=None
    ) -> Iterator[Event]:
        return iter(STREAM)

    cfg = RunConfig(models=["a", "b", "c"], sizes=[200, 400], target=1600, out_dir=str(tmp_path))

    async def go() -> None:
        app = make_app(cfg, event_source=source, hub_models=lambda: [], autostart=True)
        async with app.run_test(size=(160, 40)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.phase == "finished")
            screen = dashboard(pilot)
            log = screen.query_one(EventLog).lines_text
            assert f"adaptive policy stopped: {ACCOUNT}" in log
            assert any(line.startswith("c eliminated: 90% interval") for line in log)
            panel = str(screen.query_one("#failures", Static).render())
            assert "⊘ c: 90% interval [2.1, ...]" in panel
            assert "adaptive policy: one model left: a" in panel

    asyncio.run(go())
