"""The run command's flags: one per TOML key, generated from core.config's dataclasses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

import lensllm_tui.headless
from core.config import ConfigError, ConfigKey, RunConfig, config_keys, typed
from lensllm_tui import flags
from lensllm_tui.cli import app

WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}


def _help() -> str:
    res = CliRunner(env=WIDE).invoke(app, ["run", "--help"])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_help_lists_every_key_with_its_table_default_and_meaning() -> None:
    text = _help()
    every = flags.flags()
    assert len(every) == len(config_keys()) >= 40
    for flag in every:
        key = flag.key
        assert key.doc, f"{key.where} has no attribute docstring to explain its flag"
        assert f"--{flag.name}" in text, flag.name
        assert f"{key.where}: " in text, key.where
        assert f"[default: {flags._shown(key)}]" in text, key.where


def test_flags_are_named_after_the_keys_and_existing_flags_still_exist() -> None:
    names = {f.name for f in flags.flags()}
    wanted = {"learning-rate", "batch-size", "epochs", "max-length", "lora", "lora-r"}
    wanted |= {"models", "dataset", "format", "sizes", "target", "out", "device", "policy"}
    wanted |= {"budget", "confidence", "gamma", "tau", "schedule", "min-points", "ntk"}
    assert wanted <= names
    text = _help()
    for fixed in ("--resume", "--autostart", "--no-ui", "--config", "--lr", "--no-lora"):
        assert fixed in text


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[RunConfig]:
    """The RunConfig `run --no-ui` hands to the headless front end (which is not run)."""
    seen: list[RunConfig] = []

    def fake(cfg: RunConfig) -> int:
        seen.append(cfg)
        return 0

    monkeypatch.setattr(lensllm_tui.headless, "run_headless", fake)
    return seen


def test_flags_set_their_keys_over_the_config_file(
    tmp_path: Path, captured: list[RunConfig]
) -> None:
    toml = tmp_path / "run.toml"
    RunConfig(models=["tiny:gpt2-s"], target=5000).save_toml(toml)
    args = ["run", "--no-ui", "-c", str(toml), "--lr", "0.01", "--batch-size", "4"]
    args += ["--epochs", "2", "--max-length", "64", "--lora", "--no-ntk", "--sizes", "50,100"]
    args += ["--budget", "0.2", "--min-points", "3", "--projection-dim", "none"]
    args += ["--data-seed", "5", "--seed", "6", "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (cfg,) = captured
    assert (cfg.train.learning_rate, cfg.train.batch_size, cfg.train.epochs) == (0.01, 4, 2.0)
    assert cfg.train.lora and not cfg.ntk.enabled and cfg.data.max_length == 64
    assert cfg.sizes == [50, 100] and cfg.target == 5000 and cfg.models == ["tiny:gpt2-s"]
    assert cfg.adaptive.budget == 0.2 and cfg.adaptive.min_points == 3
    assert (cfg.data.seed, cfg.train.seed, cfg.ntk.projection_dim) == (5, 6, None)
    assert cfg.out_dir == str(tmp_path / "o")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "2.5"], "--batch-size must be an integer, got '2.5'"),
        (["--lr", "fast"], "--learning-rate must be a number, got 'fast'"),
        (["--sizes", "50,x"], "--sizes must be comma-separated integers, got '50,x'"),
        (["--budget", "lots"], "--budget must be a number or 'none', got 'lots'"),
        (["--batch-size", "0"], "train.batch_size must be at least 1"),
    ],
)
def test_bad_flag_values_are_one_line_errors(
    args: list[str], message: str, captured: list[RunConfig]
) -> None:
    res = CliRunner().invoke(app, ["run", "--no-ui", *args])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {message}"
    assert not captured


def test_a_key_added_to_a_config_dataclass_becomes_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """What another table (say [cluster]) gets without an edit to flags.py or cli.py."""
    extra = [
        ConfigKey("cluster", "nodes", int, 1, "Machines."),
        ConfigKey("cluster", "seed", int, 0, "Seed of the cluster."),
    ]
    monkeypatch.setattr(flags, "config_keys", lambda: [*config_keys(), *extra])
    by_param = {f.param: f for f in flags.flags()}
    assert by_param["cluster__nodes"].name == "nodes"
    assert by_param["cluster__seed"].name == "cluster-seed"  # --seed is [train]'s already
    assert by_param["train__seed"].name == "seed"
    assert by_param["executor__workers"].name == "workers"  # the real [executor] table
    assert by_param["executor__backend"].name == "executor"
    got: dict[str, Any] = flags.overrides({"cluster__nodes": "3", "train__lora": True})
    assert got == {"cluster": {"nodes": 3}, "train": {"lora": True}}


def test_choices_and_tables_in_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Literal key takes one of its values; a table-valued key stays TOML-only."""
    extra = [
        ConfigKey("executor", "kind", Literal["thread", "ray"], "thread", "Where points run."),
        ConfigKey("executor", "env", dict[str, str], {}, "Worker environment."),
    ]
    monkeypatch.setattr(flags, "config_keys", lambda: [*config_keys(), *extra])
    names = {f.param: f.name for f in flags.flags()}
    assert names["executor__kind"] == "kind" and "executor__env" not in names
    assert flags.overrides({"executor__kind": "ray"}) == {"executor": {"kind": "ray"}}
    with pytest.raises(ConfigError, match=r"--kind must be one of 'thread', 'ray', got 'gpu'"):
        flags.overrides({"executor__kind": "gpu"})
    assert typed("ray", Literal["thread", "ray"], "[executor] kind") == "ray"
    with pytest.raises(ConfigError, match=r"\[executor\] kind must be one of 'thread', 'ray'"):
        typed("gpu", Literal["thread", "ray"], "[executor] kind")
    assert typed({"A": "1"}, dict[str, str], "[executor] env") == {"A": "1"}
    with pytest.raises(ConfigError, match=r"\[executor\] env must be a table, not 3"):
        typed(3, dict[str, str], "[executor] env")


def test_every_flag_name_is_a_valid_option() -> None:
    for flag in flags.flags():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", flag.name), flag.name
