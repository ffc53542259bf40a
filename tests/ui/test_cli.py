from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from core import __version__
from lensllm_tui.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_and_option_fail() -> None:
    assert runner.invoke(app, ["frobnicate"]).exit_code != 0
    assert runner.invoke(app, ["run", "--no-such-option"]).exit_code != 0


def test_bad_config_is_one_line_error() -> None:
    result = runner.invoke(app, ["run", "--no-ui", "--sizes", "200,abc"])
    assert result.exit_code == 2
    assert "--sizes" in result.output
    result = runner.invoke(app, ["run", "--no-ui", "--sizes", "200,400", "--target", "300"])
    assert result.exit_code == 2
    assert "must be above" in result.output
    assert "Traceback" not in result.output


def test_console_script_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lensllm_tui.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and __version__ in out.stdout


def test_resume_needs_a_run_directory_with_its_config(tmp_path) -> None:
    missing = runner.invoke(app, ["run", "--no-ui", "--resume", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no run directory" in missing.output
    no_config = runner.invoke(app, ["run", "--no-ui", "--resume", str(tmp_path)])
    assert no_config.exit_code == 2 and "no config.toml" in no_config.output
    both = runner.invoke(app, ["run", "--resume", str(tmp_path), "--config", "x.toml"])
    assert both.exit_code == 2 and "drop --config" in both.output
    for result in (missing, no_config, both):
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
