"""Shell completion, and the environment variables the tool reads, in --help and the README."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lensllm_tui.cli import app
from lensllm_tui.environment import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
NAMES = [name for name, _ in ENVIRONMENT]


def _read_in_source() -> set[str]:
    """Every variable named in os.environ[...], os.environ.get(...), os.getenv(...) or `in os.environ`."""
    found: set[str] = set()
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("lensllm_tui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = None
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                "os.environ.get",
                "os.getenv",
                "environ.get",
                "getenv",
            ):
                target = node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                target = node.slice
            elif isinstance(node, ast.Compare) and any(
                ast.unparse(c).endswith("environ") for c in node.comparators
            ):
                target = node.left
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                found.add(target.value)
    return found


def test_every_variable_the_source_reads_is_listed() -> None:
    read = _read_in_source()
    assert {"LENSLLM_TUI_CACHE", "HF_HUB_OFFLINE"} <= read  # the scan sees the known reads
    assert read <= set(NAMES), f"not in lensllm_tui/environment.py: {sorted(read - set(NAMES))}"


@pytest.mark.parametrize("name", NAMES)
def test_variable_is_in_help_and_readme(name: str) -> None:
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    for args in (["--help"], ["run", "--help"]):
        res = CliRunner(env=wide).invoke(app, args)
        assert res.exit_code == 0 and f"{name}: " in res.output, args
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{name}`" in readme


def _script() -> str:
    path = Path(sys.executable).parent / "lensllm-tui"
    if not path.exists():
        pytest.skip("the lensllm-tui console script is not installed in this environment")
    return str(path)


def test_completion_is_offered_and_completes_generated_flags(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in res.output and "--show-completion" in res.output
    script = subprocess.run(
        [_script(), "--show-completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    assert "_LENSLLM_TUI_COMPLETE=complete_bash" in script
    env = {
        **os.environ,
        "_LENSLLM_TUI_COMPLETE": "complete_bash",
        "COMP_WORDS": "lensllm-tui run --batch",
        "COMP_CWORD": "2",
    }
    words = subprocess.run(
        [_script()], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert words == ["--batch-size"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "lensllm-tui ru", "1"  # r: run, report
    words = subprocess.run(
        [_script()], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert words == ["run"]
