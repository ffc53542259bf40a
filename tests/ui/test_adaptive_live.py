"""The adaptive policy on a live run: user settings, the budget cap, and a real elimination.

Both runs use the real engine (tiny zoo models from configs, the built-in task,
real fine-tuning) through ``lensllm-tui run --no-ui`` as a user types it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import (
    AdaptiveRunConfig,
    ConfigError,
    DataConfig,
    NTKConfig,
    RunConfig,
    TrainConfig,
)
from core.events import ModelEliminated, PointStarted, PolicyStopped, RunFinished
from core.run.runner import run_events
from lensllm_tui.cli import app, build_config

cli = CliRunner()
pytestmark = pytest.mark.usefixtures("zoo_env")


def write_config(path: Path, models: list[str]) -> Path:
    RunConfig(
        models=models,
        sizes=[25, 50, 100, 200],
        target=1600,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=False),
        device="cpu",
        policy="adaptive",
    ).save_toml(path)
    return path


def test_adaptive_settings_round_trip_and_cli_overrides(tmp_path: Path) -> None:
    cfg = RunConfig(adaptive=AdaptiveRunConfig(confidence=0.8, budget=0.1, gamma=0.02, tau=3))
    cfg.save_toml(tmp_path / "c.toml")
    assert RunConfig.load_toml(tmp_path / "c.toml") == cfg
    settings = {"adaptive": {"budget": None, "confidence": 0.7, "schedule": "size"}}
    back = build_config(tmp_path / "c.toml", settings)
    assert back.adaptive == AdaptiveRunConfig(
        confidence=0.7, budget=None, gamma=0.02, tau=3, schedule="size"
    )
    with pytest.raises(ConfigError, match=r"adaptive\.schedule must be one of halving"):
        AdaptiveRunConfig(schedule="greedy")
    with pytest.raises(ConfigError, match=r"adaptive\.budget"):
        AdaptiveRunConfig(budget=1.5)
    (tmp_path / "bad.toml").write_text("[adaptive]\nbudjet = 0.1\n")
    with pytest.raises(ConfigError, match=r"\[adaptive\]: budjet"):
        RunConfig.load_toml(tmp_path / "bad.toml")
    res = cli.invoke(app, ["run", "--no-ui", "--budget", "lots"])
    assert res.exit_code == 2 and "--budget must be a number or 'none'" in res.output


def test_budget_cap_stops_a_live_run(tmp_path: Path) -> None:
    """At a 6% budget each model gets 25 and 50 samples (~5%); 100 more would pass the cap."""
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "c.toml", ["tiny:gpt2-s", "tiny:llama-s"])
    res = cli.invoke(app, ["run", "--no-ui", "-c", str(cfg), "--budget", "0.06", "--out", str(out)])
    assert res.exit_code == 0, res.output
    policy = json.loads((out / "results.json").read_text())["policy"]
    assert policy["budget"] == 0.06 and "budget" in policy["stop_reason"]
    assert 0 < policy["cost_fraction"] <= 0.06
    assert sorted(policy["consumed"]) == [
        [m, s] for m in ("tiny:gpt2-s", "tiny:llama-s") for s in (25, 50)
    ]
    assert f"{policy['cost_fraction']:.3f} of full fine-tuning (budget 0.06)" in res.output


def test_a_clearly_weaker_model_is_eliminated_live(tmp_path: Path) -> None:
    """t5-s trails gpt2-s at every size; at 70% confidence it is dropped after 100 samples."""
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "c.toml", ["tiny:gpt2-s", "tiny:t5-s"])
    res = cli.invoke(
        app,
        ["run", "--no-ui", "-c", str(cfg), "--confidence", "0.7", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    gone = next(i for i, line in enumerate(lines) if line.startswith("eliminated tiny:t5-s:"))
    assert "70% interval" in lines[gone] and "lies above tiny:gpt2-s's" in lines[gone]
    assert not any("tiny:t5-s " in line and " size " in line for line in lines[gone:])
    results = json.loads((out / "results.json").read_text())
    policy = results["policy"]
    (elim,) = policy["eliminated"]
    assert elim["model"] == "tiny:t5-s" and elim["reason"].startswith("70% interval")
    assert elim["compute_saved"] > 0 and policy["compute_saved"] == elim["compute_saved"]
    t5 = next(m for m in results["models"] if m["model"] == "tiny:t5-s")
    assert max(p["size"] for p in t5["points"]) == elim["size"]  # no point after elimination
    assert f"eliminations saved {policy['compute_saved']:.2e} FLOPs" in res.output
    assert 0 < policy["cost_fraction"] < policy["ladder_cost_fraction"]


def test_halving_eliminations_are_events_too(tmp_path: Path) -> None:
    """Successive halving drops models inside next_point(); the runner must still report them."""
    cfg = RunConfig.load_toml(
        write_config(tmp_path / "c.toml", ["tiny:gpt2-s", "tiny:llama-s", "tiny:t5-s"])
    )
    cfg.out_dir = str(tmp_path / "run")
    cfg.adaptive = AdaptiveRunConfig(schedule="halving")
    events = list(run_events(cfg))
    gone = [e for e in events if isinstance(e, ModelEliminated)]
    assert [e.model for e in gone] == ["tiny:t5-s"]
    assert gone[0].reason.startswith("successive halving round 1: ranked 3 of 3")
    after = events[events.index(gone[0]) :]
    assert not any(isinstance(e, PointStarted) and e.model == "tiny:t5-s" for e in after)
    stopped = events[-2]
    assert isinstance(stopped, PolicyStopped) and isinstance(events[-1], RunFinished)
    assert stopped.eliminated == (("tiny:t5-s", gone[0].reason),)
    assert stopped.compute_saved == gone[0].compute_saved > 0
    assert 0 < stopped.cost_fraction < stopped.ladder_cost / stopped.full_cost
