"""Reopening a run: a killed reopen keeps the old ranking; a bad store is one line, results kept."""

from __future__ import annotations

import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lensllm_tui.cli import app
from tests.processes import MODEL, cli, finish, results, write_config

pytestmark = pytest.mark.usefixtures("zoo_env")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished two-model run (the directory every test reopens a copy of)."""
    d = tmp_path_factory.mktemp("finished")
    cfg = write_config(d / "run.toml", d / "out", [MODEL, "tiny:llama-s"], [25, 50])
    code, output = finish(cli("run", "--no-ui", "--config", str(cfg)))
    assert code == 0, output
    res = results(d / "out")
    assert res["status"] == "finished" and len(res["ranking"]) == 2
    return d / "out"


def _copy(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


@pytest.mark.parametrize("after", ["run:", pytest.param("[1/", marks=pytest.mark.slow)])
def test_reopen_killed_early_leaves_results_json_as_it_was(
    finished: Path, tmp_path: Path, after: str
) -> None:
    """kill -9 right after the run starts, or after its first reused point: nothing replaced."""
    out = _copy(finished, tmp_path)
    before = (out / "results.json").read_bytes()
    curves = (out / "curves.csv").read_bytes()
    proc = cli("run", "--no-ui", "--resume", str(out))
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(after):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "results.json").read_bytes() == before
    assert (out / "curves.csv").read_bytes() == curves
    assert results(out)["status"] == "finished" and len(results(out)["ranking"]) == 2


@pytest.mark.slow
def test_reopen_to_the_end_rewrites_an_equal_ranking(finished: Path, tmp_path: Path) -> None:
    out = _copy(finished, tmp_path)
    code, output = finish(cli("run", "--no-ui", "--resume", str(out)))
    assert code == 0 and "0 points computed, 6 reused" in output, output
    assert results(out)["ranking"] == results(finished)["ranking"]


def _one_error_line(code: int, output: str) -> str:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def _reopen_fails(out: Path, *, in_process: bool = True) -> str:
    before = (out / "results.json").read_bytes()
    if in_process:
        res = CliRunner().invoke(
            app, ["run", "--no-ui", "--resume", str(out)], env={"COLUMNS": "400"}
        )
        code, output = res.exit_code, res.output
    else:  # as users run it
        code, output = finish(cli("run", "--no-ui", "--resume", str(out), env={"COLUMNS": "400"}))
    line = _one_error_line(code, output)
    assert (out / "results.json").read_bytes() == before  # the last good record is kept
    return line


def test_store_with_a_corrupted_page_is_one_line_and_results_are_kept(
    finished: Path, tmp_path: Path
) -> None:
    out = _copy(finished, tmp_path)
    store = out / "store.sqlite"
    assert not Path(f"{store}-wal").exists() or Path(f"{store}-wal").stat().st_size == 0
    with store.open("r+b") as fh:
        fh.seek(4096)  # page 2: the points table's root
        fh.write(b"\xde\xad\xbe\xef" * 1024)
    line = _reopen_fails(out, in_process=False)
    assert str(store) in line and "damaged" in line and "move it aside" in line


def test_store_with_a_foreign_schema_is_one_line(finished: Path, tmp_path: Path) -> None:
    out = _copy(finished, tmp_path)
    (out / "store.sqlite").unlink()
    db = sqlite3.connect(out / "store.sqlite")
    db.execute("CREATE TABLE points (model TEXT, size INTEGER, loss REAL)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    line = _reopen_fails(out)
    assert "table 'points' has columns model, size, loss" in line


def test_store_with_a_non_numeric_loss_is_one_line(finished: Path, tmp_path: Path) -> None:
    out = _copy(finished, tmp_path)
    db = sqlite3.connect(out / "store.sqlite")
    db.execute("UPDATE points SET loss='abc' WHERE size=25")
    db.commit()
    db.close()
    line = _reopen_fails(out)
    assert "a stored row is not valid" in line
