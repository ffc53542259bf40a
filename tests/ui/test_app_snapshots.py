"""Snapshot tests (pytest-textual-snapshot): the screens must render exactly as accepted.

Textual is pinned in pyproject.toml so renders stay comparable. The dashboard
is fed the deterministic synthetic stream (fixed event times, so elapsed
times and ETAs are the same every run). After an intended UI change, review
the new renders and accept them with ``pytest tests/ui/test_app_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from functools import partial

from core.config import RunConfig
from lensllm_tui.app import make_app
from lensllm_tui.synthetic import synthetic_events
from tests.ui.app_helpers import settle_dashboard, wait_for

CONFIG = RunConfig(out_dir="runs/snapshot")


def _no_cache() -> list[str]:
    return []


def _no_runs(config: RunConfig) -> list:
    return []


def test_setup_screen(snap_compare) -> None:
    app = make_app(CONFIG, hub_models=_no_cache, recent=_no_runs)

    async def ready(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.screen.query("#models"), what="setup form")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_dashboard_mid_run(snap_compare) -> None:
    source = partial(synthetic_events, hold_after=10)
    app = make_app(CONFIG, event_source=source, hub_models=_no_cache, autostart=True)

    async def mid_run(pilot) -> None:
        await settle_dashboard(pilot, lambda s: s.state.done_points == 10 and s.state.step == 2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=mid_run)


def test_dashboard_finished_wide(snap_compare) -> None:
    app = make_app(CONFIG, event_source=synthetic_events, hub_models=_no_cache, autostart=True)

    async def finished(pilot) -> None:
        await settle_dashboard(pilot, lambda s: s.state.phase == "finished")

    assert snap_compare(app, terminal_size=(120, 36), run_before=finished)
