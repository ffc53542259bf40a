"""End to end: the dashboard drives the REAL engine (core.run.runner.run_events).

Two tiny zoo models (real transformers, from_pretrained), a 3-size ladder and
a few optimizer steps: the setup screen starts the run, the thread worker
iterates the engine, and the test checks what a user would read (ranking
table, status, log) against the engine's own RunFinished and files.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from core import events as ev
from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig
from lensllm_tui.app import make_app
from lensllm_tui.messages import EngineEvent
from lensllm_tui.screens.setup import SetupScreen
from lensllm_tui.widgets import EventLog, RankingTable
from tests.ui.app_helpers import dashboard, settle_dashboard, wait_for

MODELS = ["tiny:gpt2-s", "tiny:llama-s"]


@pytest.fixture
def tiny_run(zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunConfig:
    monkeypatch.setenv("LENSLLM_TUI_CACHE", str(zoo_cache))
    return RunConfig(
        models=list(MODELS),
        sizes=[25, 50, 100],
        target=400,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2, epochs=1.0),
        ntk=NTKConfig(enabled=True, probe_size=4, max_ladder_fraction=1.0),
        out_dir=str(tmp_path / "run"),
        device="cpu",
    )


def _cell(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) else "—"


def test_setup_start_finish_on_the_real_engine(tiny_run: RunConfig) -> None:
    messages: list[object] = []

    async def go() -> None:
        app = make_app(tiny_run, hub_models=lambda: [])  # default source: the real engine
        async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            await pilot.press("ctrl+r")
            await settle_dashboard(
                pilot, lambda s: not s.state.active and s.state.phase != "waiting"
            )
            screen = dashboard(pilot)
            assert screen.state.phase == "finished", screen.state.message
            finished = screen.events_seen[-1]
            assert isinstance(finished, ev.RunFinished)
            rows = screen.query_one(RankingTable).rows_as_text()
            ranked = {e.model: e for e in finished.ranking}
            assert {r[1] for r in rows} == set(MODELS)
            # The table says what the engine said: order, ranks and predictions.
            assert [r[1] for r in rows[: len(ranked)]] == [e.model for e in finished.ranking]
            for row in rows:
                entry = ranked.get(row[1])
                if entry is not None:
                    assert row[0] == str(entry.rank)
                    assert row[2] == _cell(entry.predicted_target)
                assert row[5] == "3/3" and row[7] == "done"
            log = screen.query_one(EventLog).lines_text
            assert log[0].startswith("run started") and log[-1].startswith("run finished")
            assert app.is_running

    asyncio.run(go())
    engine = [m.event for m in messages if isinstance(m, EngineEvent)]
    assert isinstance(engine[0], ev.RunStarted) and isinstance(engine[-1], ev.RunFinished)
    finished = [e for e in engine if isinstance(e, ev.PointFinished)]
    assert {(e.model, e.size) for e in finished} >= {(m, s) for m in MODELS for s in (25, 50, 100)}
    assert all(math.isfinite(e.loss) and e.loss > 0 for e in finished)
    # Laws fitted on this short ladder (if any) arrive sampled out to the target.
    for fit in (e for e in engine if isinstance(e, ev.LawFitted) and e.ok):
        assert fit.curve and fit.curve[-1][0] == pytest.approx(400)
    # A run started from the dashboard writes the same files as headless mode.
    out = Path(tiny_run.out_dir or "")
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "finished"
    assert {m["model"] for m in results["models"]} == set(MODELS)
    assert (out / "curves.csv").is_file()


def test_engine_samples_fitted_laws_for_the_chart() -> None:
    """LawFitted.curve: the fit evaluated from the smallest trained size to the target."""
    import numpy as np

    from core.run.refit import sample_law as _sample_law
    from core.science.laws import fit_law

    sizes = np.array([50.0, 100, 200, 400, 800])
    losses = 30.0 / sizes**0.5 + 2.0
    fit = fit_law("vanilla", sizes, losses)
    assert fit.ok
    curve = _sample_law(fit, [0, 50, 100, 200, 400, 800], 6400)
    xs = np.array([x for x, _ in curve])
    assert xs[0] == pytest.approx(50) and xs[-1] == pytest.approx(6400) and len(curve) == 48
    assert np.allclose([y for _, y in curve], 30.0 / xs**0.5 + 2.0, rtol=1e-3)
    assert _sample_law(None, [50, 100], 6400) == ()
