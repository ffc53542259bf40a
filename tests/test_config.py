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


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[train]\nbatch_size = 2.5\n", "[train] batch_size must be an integer, not 2.5"),
        ('[train]\nlora = "yes"\n', "[train] lora must be true or false, not 'yes'"),
        (
            'sizes = "50,100"\n',
            "sizes must be a list of integers such as [200, 400], not '50,100'",
        ),
        ("[train]\nlora_alpha = 16\n", "unknown key(s) in [train]: lora_alpha"),
        ("[ntk]\nprojection_dim = 1.5\n", "[ntk] projection_dim must be an integer, not 1.5"),
        ('models = ["a", 1]\n', "models must be a list of strings"),
        ("train = 3\n", "[train] must be a table"),
        ("target = true\n", "target must be an integer, not True"),
    ],
)
def test_mistyped_toml_values_are_one_line_errors(tmp_path: Path, toml: str, message: str) -> None:
    p = tmp_path / "run.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as info:
        RunConfig.load_toml(p)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_toml_integers_widen_to_floats(tmp_path: Path) -> None:
    p = tmp_path / "run.toml"
    p.write_text("[train]\nepochs = 2\nlearning_rate = 1\n[adaptive]\nbudget = 1\n")
    cfg = RunConfig.load_toml(p)
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)
    assert isinstance(cfg.train.learning_rate, float) and cfg.adaptive.budget == 1.0
