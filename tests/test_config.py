from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, RunConfig, TrainConfig


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = RunConfig(models=["a", "b"], sizes=[400, 200], target=1000, out_dir="x")
    cfg.train.learning_rate = 1e-3
    path = tmp_path / "run.toml"
    cfg.save_toml(path)
    back = RunConfig.load_toml(path)
    assert back == cfg
    assert back.sizes == [200, 400]  # sorted on construction


def test_none_values_survive_toml(tmp_path: Path) -> None:
    cfg = RunConfig()
    assert cfg.out_dir is None and cfg.ntk.projection_dim is None
    cfg.save_toml(tmp_path / "c.toml")
    assert RunConfig.load_toml(tmp_path / "c.toml") == cfg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": []}, "at least one model"),
        ({"sizes": [200, 200]}, "must not repeat"),
        ({"sizes": [0, 200]}, "positive"),
        ({"sizes": [200, 400], "target": 400}, "must be above"),
        ({"policy": "greedy"}, "policy"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_run_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


def test_invalid_train_config() -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('modles = ["a"]\n[train]\nlr = 1\n')
    with pytest.raises(ConfigError, match="modles"):
        RunConfig.load_toml(p)
    p.write_text("[train]\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"\[train\]: lr"):
        RunConfig.load_toml(p)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.load_toml(tmp_path / "nope.toml")
    p = tmp_path / "broken.toml"
    p.write_text("models = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.load_toml(p)
