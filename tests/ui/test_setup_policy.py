"""Pilot tests of the setup screen's scheduling policy (ladder / adaptive, budget, confidence).

The real app is driven; the event source only records the config the
dashboard was started with and replays the synthetic stream, so no torch.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from textual.widgets import Input, Select, Static

from core.config import AdaptiveRunConfig, RunConfig
from lensllm_tui.app import LensApp, make_app
from lensllm_tui.screens.dashboard import DashboardScreen
from lensllm_tui.screens.setup import SetupScreen
from lensllm_tui.synthetic import synthetic_events
from tests.ui.app_helpers import wait_for

MODELS = ["tiny:gpt2-s", "tiny:llama-s"]


def _config(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(
        models=MODELS, sizes=[100, 200, 400], target=3200, out_dir=str(tmp_path / "run"), **kw
    )


def _recording(started: list[RunConfig]):
    def source(config: RunConfig, cancel: threading.Event, *, pause=None):
        started.append(config)
        return synthetic_events(config, cancel)

    return source


def _policy_fields(screen) -> tuple[Select, Input, Input]:
    return (
        screen.query_one("#policy", Select),
        screen.query_one("#budget", Input),
        screen.query_one("#confidence", Input),
    )


def _message(screen) -> str:
    return str(screen.query_one("#setup-message", Static).render())


def test_adaptive_policy_chosen_on_setup_reaches_the_run(tmp_path: Path) -> None:
    started: list[RunConfig] = []

    async def go() -> None:
        app = make_app(_config(tmp_path), event_source=_recording(started), hub_models=lambda: [])
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            screen = app.screen
            policy, budget, confidence = _policy_fields(screen)
            assert policy.value == "ladder" and budget.disabled and confidence.disabled
            # Choose adaptive with the keyboard: open the dropdown, move down, enter.
            policy.focus()
            await pilot.press("enter", "down", "enter")
            await wait_for(pilot, lambda: policy.value == "adaptive", what="adaptive chosen")
            assert not budget.disabled and not confidence.disabled
            budget.focus()
            await pilot.press(*"0.05")
            confidence.value = ""
            confidence.focus()
            await pilot.press(*"0.8")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="run")
            await wait_for(pilot, lambda: bool(started), what="engine started")

    asyncio.run(go())
    (config,) = started
    assert config.policy == "adaptive"
    assert config.adaptive.budget == 0.05 and config.adaptive.confidence == 0.8
    assert config.models == MODELS and config.sizes == [100, 200, 400]


def test_bad_adaptive_values_are_refused_inline_and_nothing_starts(tmp_path: Path) -> None:
    started: list[RunConfig] = []

    async def go() -> None:
        app = make_app(
            _config(tmp_path, policy="adaptive"),
            event_source=_recording(started),
            hub_models=lambda: [],
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            screen = app.screen
            _, budget, confidence = _policy_fields(screen)
            for value, says in (("2", "adaptive.budget"), ("abc", "must be numbers")):
                budget.value = value
                await pilot.press("ctrl+r")
                msg = _message(screen)
                assert msg.startswith("✗") and says in msg and "\n" not in msg, msg
                assert isinstance(app.screen, SetupScreen)
            budget.value = "0.5"
            confidence.value = "1"
            await pilot.press("ctrl+r")
            assert "adaptive.confidence" in _message(screen)
            # An empty budget means no cap.
            confidence.value = "0.95"
            budget.value = ""
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: bool(started), what="engine started")

    asyncio.run(go())
    (config,) = started
    assert config.policy == "adaptive"
    assert config.adaptive.budget is None and config.adaptive.confidence == 0.95


def test_cli_policy_fills_the_form_and_toml_round_trips_it(monkeypatch, tmp_path: Path) -> None:
    """`run --policy adaptive --budget 0.05` opens with them set; ctrl+s / ctrl+o keep them."""
    from typer.testing import CliRunner

    from lensllm_tui.cli import app as cli

    ran: list[LensApp] = []
    monkeypatch.setattr(LensApp, "run", lambda self, *a, **k: ran.append(self))
    args = ["run", "--policy", "adaptive", "--budget", "0.05", "--confidence", "0.8"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "picked.toml"

    async def go() -> None:
        app = ran[0]
        app.hub_models = lambda: []
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
            screen = app.screen
            policy, budget, confidence = _policy_fields(screen)
            assert policy.value == "adaptive" and not budget.disabled
            assert budget.value == "0.05" and confidence.value == "0.8"
            screen.query_one("#config-path", Input).value = str(path)
            await pilot.press("ctrl+s")
            assert "saved" in _message(screen)
            saved = RunConfig.load_toml(path)
            assert saved.policy == "adaptive"
            assert saved.adaptive == AdaptiveRunConfig(budget=0.05, confidence=0.8)
            # Change the form, then load the file back over it.
            policy.value = "ladder"
            await pilot.pause()
            assert budget.disabled
            budget.value = "0.3"
            await pilot.press("ctrl+o")
            assert "loaded" in _message(screen)
            assert policy.value == "adaptive" and budget.value == "0.05"
            assert not budget.disabled and not confidence.disabled

    asyncio.run(go())
