"""--resume DIR refuses flags that would change the run; --extend only adds models and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import RunConfig
from lensllm_tui.cli import app
from lensllm_tui.resume import resume_settings
from tests.processes import MODEL, results, write_config

cli = CliRunner()
OTHER = "tiny:llama-s"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    write_config(out / "config.toml", out, [MODEL, OTHER], [25, 50])
    return out


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--models", MODEL], f"--models would change the run (it has {MODEL},{OTHER})"),
        (["--sizes", "25"], "--sizes would change the run (it has 25,50)"),
        (["--target", "900"], "--target would change the run (it has 800)"),
        (["--dataset", "other.jsonl"], "--dataset would change the run (it has builtin)"),
        (["--batch-size", "4"], "--batch-size would change the run (it has 8)"),
        (["--extend", "--target", "900"], "--extend only adds models and sizes"),
    ],
)
def test_conflicting_flags_are_refused_and_nothing_is_rewritten(
    run_dir: Path, flags: list[str], says: str
) -> None:
    before = (run_dir / "config.toml").read_bytes()
    res = cli.invoke(app, ["run", "--no-ui", "--resume", str(run_dir), *flags])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert says in " ".join(res.output.split()), res.output
    assert (run_dir / "config.toml").read_bytes() == before


def test_extend_without_resume_is_refused() -> None:
    res = cli.invoke(app, ["run", "--no-ui", "--extend", "--models", MODEL])
    assert res.exit_code == 2 and "--resume" in res.output


def test_settings_that_only_say_how_to_run_pass_and_extension_adds() -> None:
    run = RunConfig(models=[MODEL, OTHER], sizes=[25, 50], target=800)
    assert resume_settings(run, {"device": "cpu"}, "d", extend=False) == {"device": "cpu"}
    same = {"models": [MODEL, OTHER], "sizes": [25, 50], "target": 800}
    assert resume_settings(run, same, "d", extend=False) == same
    grown = resume_settings(
        run, {"models": ["tiny:t5-s", MODEL], "sizes": [100, 25]}, "d", extend=True
    )
    assert grown == {"models": [MODEL, OTHER, "tiny:t5-s"], "sizes": [25, 50, 100]}


@pytest.mark.usefixtures("zoo_env")
def test_extend_trains_only_what_it_adds(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25])
    first = cli.invoke(app, ["run", "--no-ui", "--config", str(cfg)])
    assert first.exit_code == 0, first.output
    res = cli.invoke(
        app,
        ["run", "--no-ui", "--resume", str(out), "--extend", "--models", OTHER, "--sizes", "50"],
    )
    assert res.exit_code == 0, res.output
    assert "4 points computed, 2 reused" in res.output  # gpt2-s@50 and llama-s@0,25,50 are new
    reopened = RunConfig.load_toml(out / "config.toml")
    assert reopened.models == [MODEL, OTHER] and reopened.sizes == [25, 50]
    sizes = {m["model"]: [p["size"] for p in m["points"]] for m in results(out)["models"]}
    assert sizes == {MODEL: [0, 25, 50], OTHER: [0, 25, 50]}
