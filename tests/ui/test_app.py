"""Pilot tests of the dashboard on a deterministic synthetic event stream.

These drive the real Textual app (setup screen, thread worker, messages,
widgets); only the event source is the replayed stream from
lensllm_tui.synthetic, so they are fast and need no torch. The end-to-end
test on the real engine lives in test_app_engine.py.
"""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from pathlib import Path

from textual.widgets import Input, OptionList, SelectionList, Static

from core import events as ev
from core.config import RunConfig
from lensllm_tui.app import make_app
from lensllm_tui.messages import EngineEvent, ProgressTick
from lensllm_tui.screens.setup import SetupScreen
from lensllm_tui.synthetic import loss_at, synthetic_events
from lensllm_tui.widgets import EventLog, LossChart, RankingTable
from tests.ui.app_helpers import dashboard, settle_dashboard, wait_for

MODELS = ["tiny:gpt2-s", "tiny:gpt2-l", "tiny:llama-s"]


def _config(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(
        models=MODELS, sizes=[100, 200, 400], target=3200, out_dir=str(tmp_path / "run"), **kw
    )


def _status(screen) -> str:
    return str(screen.query_one("#run-status", Static).render())


def test_setup_to_start_to_finish_on_replayed_stream(tmp_path: Path) -> None:
    messages = []

    async def go() -> None:
        app = make_app(_config(tmp_path), event_source=synthetic_events, hub_models=lambda: [])
        async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            await pilot.press("ctrl+r")
            await settle_dashboard(pilot, lambda s: s.state.phase == "finished")
            screen = dashboard(pilot)
            rows = screen.query_one(RankingTable).rows_as_text()
            # The synthetic law puts the last model first at the target.
            assert [r[1] for r in rows] == ["tiny:llama-s", "tiny:gpt2-l", "tiny:gpt2-s"]
            assert [r[0] for r in rows] == ["1", "2", "3"]
            best = rows[0]
            assert float(best[2]) == round(loss_at(2, 3200), 3)
            assert best[5] == "3/3" and best[7] == "done"
            lo, hi = (float(v) for v in best[3].split("–"))
            assert lo < float(best[2]) < hi
            assert "FINISHED" in _status(screen) and "tiny:llama-s" in _status(screen)
            log = screen.query_one(EventLog).lines_text
            assert log[0].startswith("run started") and log[-1].startswith("run finished")

    asyncio.run(go())
    engine = [m.event for m in messages if isinstance(m, EngineEvent)]
    kinds = [type(e).__name__ for e in engine]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("PointFinished") == 9
    assert "RankingUpdated" in kinds and "LawFitted" in kinds and "PhaseDetected" in kinds
    # Progress never travels as EngineEvent; it is coalesced into ticks.
    assert "PointProgress" not in kinds
    assert 1 <= sum(isinstance(m, ProgressTick) for m in messages) <= 9 * 4


def test_chart_plots_log10_values_with_real_ticks(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app(
            _config(tmp_path), event_source=synthetic_events, hub_models=lambda: [], autostart=True
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.phase == "finished")
            chart = dashboard(pilot).query_one(LossChart)
            text = str(chart.render())
            for label in ("100", "400", "3.2k"):  # ladder ends and target, real values
                assert label in text
            assert "X" in text and "*" in text  # transition and target markers

    asyncio.run(go())


def test_worker_error_shows_and_app_survives(tmp_path: Path) -> None:
    def failing(config: RunConfig, cancel: threading.Event, *, pause=None):
        for i, event in enumerate(synthetic_events(config, cancel)):
            if i == 5:
                raise RuntimeError("CUDA out of memory (simulated)")
            yield event

    async def go() -> None:
        app = make_app(_config(tmp_path), event_source=failing, hub_models=lambda: [])
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+r")
            await settle_dashboard(pilot, lambda s: s.state.phase == "error")
            screen = dashboard(pilot)
            assert "CUDA out of memory (simulated)" in _status(screen)
            assert any("engine error" in line for line in screen.query_one(EventLog).lines_text)
            assert app.is_running
            # The app lives on: back to setup, and a good run goes through.
            app.event_source = synthetic_events
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            await pilot.press("ctrl+r")
            await settle_dashboard(pilot, lambda s: s.state.phase == "finished")

    asyncio.run(go())


def test_cancel_keeps_finished_points_and_says_so(tmp_path: Path) -> None:
    async def go() -> None:
        source = partial(synthetic_events, hold_after=4)
        app = make_app(
            _config(tmp_path), event_source=source, hub_models=lambda: [], autostart=True
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.done_points == 4 and s.state.current)
            screen = dashboard(pilot)
            assert screen.state.phase == "running"
            await pilot.press("p")
            assert screen.state.phase == "paused"
            await pilot.press("p", "c")
            await settle_dashboard(pilot, lambda s: s.state.phase == "cancelled")
            assert "4 finished points kept" in _status(screen)
            assert isinstance(screen.events_seen[-1], ev.RunCancelled)
            assert app.is_running

    asyncio.run(go())


def test_pause_key_hands_the_engine_its_pause_event(tmp_path: Path) -> None:
    """``p`` sets the pause event the engine was given (training holds on it); ``p`` clears it."""
    handed: list[threading.Event | None] = []

    def source(config: RunConfig, cancel: threading.Event, *, pause=None):
        handed.append(pause)
        return synthetic_events(config, cancel, pause=pause, hold_after=4)

    async def go() -> None:
        app = make_app(
            _config(tmp_path), event_source=source, hub_models=lambda: [], autostart=True
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.done_points == 4 and s.state.current)
            (pause,) = handed
            assert pause is not None and not pause.is_set()
            await pilot.press("p")
            assert pause.is_set()
            await pilot.press("p")
            assert not pause.is_set()
            await pilot.press("c")
            await settle_dashboard(pilot, lambda s: s.state.phase == "cancelled")

    asyncio.run(go())


def test_typed_model_ids_are_checked_inline(tmp_path: Path) -> None:
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (tmp_path / "not-a-model").mkdir()

    async def go() -> None:
        app = make_app(_config(tmp_path), hub_models=lambda: ["cached-org/cached-model"])
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            picker = screen.query_one("#models", SelectionList)
            # The cache is scanned in a thread worker; its models join the picker.
            await wait_for(pilot, lambda: "cached-org/cached-model" in screen.hub_models)
            await pilot.pause()
            box = screen.query_one("#model-input", Input)
            check = screen.query_one("#model-check", Static)

            async def typed(text: str) -> str:
                box.value = text
                await pilot.pause()
                return str(check.render())

            assert "✗" in await typed("tiny:nonesuch") and "unknown tiny model" in str(
                check.render()
            )
            assert "no config.json" in await typed(str(tmp_path / "not-a-model"))
            assert "no such path" in await typed("./definitely/missing/model")
            assert "neither a local path nor a valid hub id" in await typed("bad id with spaces")
            assert "HF cache" in str(picker.get_option("cached-org/cached-model").prompt)
            assert "Hugging Face cache" in await typed("cached-org/cached-model")
            assert "downloaded when the run starts" in await typed("Qwen/Qwen2.5-0.5B")
            assert "local model directory" in await typed(str(model_dir))
            # Enter adds a valid one, selected; an invalid one is not added.
            box.focus()
            await pilot.press("enter")
            selected = screen.query_one("#models", SelectionList).selected
            assert str(model_dir) in selected
            box.value = "tiny:nonesuch"
            await pilot.press("enter")
            assert "tiny:nonesuch" not in screen.query_one("#models", SelectionList).selected

    asyncio.run(go())


def test_toml_save_and_load_from_setup(tmp_path: Path) -> None:
    path = tmp_path / "picked.toml"

    async def go() -> None:
        app = make_app(_config(tmp_path), hub_models=lambda: [])
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            screen.query_one("#config-path", Input).value = str(path)
            screen.query_one("#sizes", Input).value = "50, 100,150"
            screen.query_one("#target", Input).value = "999"
            screen.query_one("#lr", Input).value = "0.002"
            screen.query_one("#models", SelectionList).deselect("tiny:gpt2-s")
            await pilot.press("ctrl+s")
            assert "saved" in str(screen.query_one("#setup-message", Static).render())
            saved = RunConfig.load_toml(path)
            assert saved.sizes == [50, 100, 150] and saved.target == 999
            assert saved.train.learning_rate == 0.002
            assert saved.models == ["tiny:gpt2-l", "tiny:llama-s"]
            # Change the form, then load the file back over it.
            screen.query_one("#sizes", Input).value = "7"
            await pilot.press("ctrl+o")
            assert "loaded" in str(screen.query_one("#setup-message", Static).render())
            assert screen.query_one("#sizes", Input).value == "50,100,150"
            assert list(screen.query_one("#models", SelectionList).selected) == saved.models
            # A bad form is refused with one line, and nothing is written.
            screen.query_one("#target", Input).value = "120"
            path.unlink()
            await pilot.press("ctrl+s")
            msg = str(screen.query_one("#setup-message", Static).render())
            assert "not saved" in msg and "target" in msg and not path.exists()

    asyncio.run(go())


def test_recent_runs_list_reopens_a_run_directory(tmp_path: Path) -> None:
    """A run directory under the out dir's parent is listed; selecting it loads its config."""
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    RunConfig(models=["tiny:llama-s"], sizes=[30, 60], target=700, out_dir="elsewhere").save_toml(
        old / "config.toml"
    )
    (old / "results.json").write_text('{"status": "finished", "ranking": [{"rank": 1}]}')
    (tmp_path / "runs" / "not-a-run").mkdir()
    config = RunConfig(models=MODELS, out_dir=str(tmp_path / "runs" / "new"))

    async def go() -> None:
        app = make_app(config, hub_models=lambda: [])
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            listing = screen.query_one("#recent", OptionList)
            assert listing.display and listing.option_count == 1
            assert "finished" in str(listing.get_option_at_index(0).prompt)
            listing.focus()
            listing.highlighted = 0
            await pilot.press("enter")
            await pilot.pause()
            assert screen.query_one("#sizes", Input).value == "30,60"
            assert screen.query_one("#target", Input).value == "700"
            assert screen.query_one("#out", Input).value == str(old)
            assert list(screen.query_one("#models", SelectionList).selected) == ["tiny:llama-s"]
            assert "reopened" in str(screen.query_one("#setup-message", Static).render())
            assert screen.gather().out_dir == str(old)

    asyncio.run(go())


def test_cli_run_opens_the_dashboard_app(monkeypatch, tmp_path: Path) -> None:
    """`lensllm-tui run` (no --no-ui) builds the app with make_app and runs it."""
    from typer.testing import CliRunner

    from lensllm_tui.app import LensApp
    from lensllm_tui.cli import app as cli

    ran: list[LensApp] = []
    monkeypatch.setattr(LensApp, "run", lambda self, *a, **k: ran.append(self))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--sizes", "50,100", "--target", "400", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(ran) == 1 and not ran[0].autostart
    assert ran[0].config.sizes == [50, 100] and ran[0].config.out_dir == str(out)
    result = CliRunner().invoke(cli, ["run", "--autostart", "--target", "9000"])
    assert result.exit_code == 0 and ran[-1].autostart and ran[-1].config.target == 9000
    # --resume DIR: DIR's own config, writing into DIR (here started at once).
    RunConfig(sizes=[30, 60], target=700, out_dir="moved").save_toml(tmp_path / "config.toml")
    result = CliRunner().invoke(cli, ["run", "--autostart", "--resume", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert ran[-1].autostart and ran[-1].config.sizes == [30, 60]
    assert ran[-1].config.out_dir == str(tmp_path)


def test_screenshot_key_and_quit_asks_while_running(tmp_path: Path) -> None:
    from lensllm_tui.screens.dashboard import ConfirmQuit

    config = _config(tmp_path)
    Path(config.out_dir or "").mkdir(parents=True)

    async def go() -> None:
        source = partial(synthetic_events, hold_after=2)
        app = make_app(config, event_source=source, hub_models=lambda: [], autostart=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.done_points == 2)
            await pilot.press("s")
            await pilot.pause()
            shots = list(Path(config.out_dir or "").glob("*.svg"))
            assert len(shots) == 1 and "<svg" in shots[0].read_text()[:400]
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="confirm")
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmQuit), what="stay")
            assert app.is_running and dashboard(pilot).state.active
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="confirm")
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, what="exit")

    asyncio.run(go())
