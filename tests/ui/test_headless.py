"""`lensllm-tui run --no-ui` as a user runs it: exit codes, output, kill -9 and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig
from lensllm_tui.cli import app
from lensllm_tui.headless import EXIT_CANCELLED, EXIT_MODEL_FAILED, EXIT_OK, run_headless

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny:gpt2-s"
BAD = "no-such-org/no-such-model-xyz"
cli = CliRunner()


pytestmark = pytest.mark.usefixtures("zoo_env")


def write_config(path: Path, out: Path, models: list[str], sizes: list[int]) -> Path:
    RunConfig(
        models=models,
        sizes=sizes,
        target=800,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=False),
        out_dir=str(out),
        device="cpu",
    ).save_toml(path)
    return path


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def model_entry(res: dict, model: str) -> dict:
    return next(m for m in res["models"] if m["model"] == model)


def stored_points(out: Path) -> int:
    db = out / "store.sqlite"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def uninterrupted(zoo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete CLI run of a one-model, three-size config (the reference)."""
    d = tmp_path_factory.mktemp("cli")
    cfg = write_config(d / "run.toml", d / "out", [MODEL], [25, 50, 200])
    res = cli.invoke(app, ["run", "--no-ui", "--config", str(cfg)])
    assert res.exit_code == EXIT_OK, res.output
    assert "Ranking" in res.output and MODEL in res.output
    assert "results:" in res.output and "curves:" in res.output
    assert "4 points computed, 0 reused" in res.output
    return d / "out"


def test_cli_run_writes_results(uninterrupted: Path) -> None:
    res = results(uninterrupted)
    assert res["status"] == "finished"
    assert [p["size"] for p in model_entry(res, MODEL)["points"]] == [0, 25, 50, 200]
    assert (uninterrupted / "curves.csv").is_file()


def test_resume_of_a_finished_run_trains_nothing(uninterrupted: Path, tmp_path: Path) -> None:
    """`run --no-ui --resume DIR` reruns DIR's own config into DIR: every point is reused."""
    run_dir = tmp_path / "copy"
    shutil.copytree(uninterrupted, run_dir)
    res = cli.invoke(app, ["run", "--no-ui", "--resume", str(run_dir)])
    assert res.exit_code == EXIT_OK, res.output
    assert "0 points computed, 4 reused" in res.output
    got = results(run_dir)
    assert got["status"] == "finished" and got["out_dir"] == str(run_dir)
    points = model_entry(got, MODEL)["points"]
    assert [p["size"] for p in points] == [0, 25, 50, 200]
    assert all(p["reused"] for p in points)


def test_failed_model_sets_exit_code_and_summary(
    uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = write_config(tmp_path / "run.toml", uninterrupted, [BAD, MODEL], [25, 50, 200])
    res = cli.invoke(app, ["run", "--no-ui", "--config", str(cfg)])
    assert res.exit_code == EXIT_MODEL_FAILED, res.output
    assert "0 points computed, 4 reused" in res.output
    summary = [line for line in res.output.splitlines() if "model(s) failed" in line]
    assert len(summary) == 1 and BAD in summary[0]
    assert "Traceback" not in res.output
    assert results(uninterrupted)["failures"][0]["model"] == BAD


def test_sigkill_mid_run_then_rerun_reuses_points(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 200])
    proc = subprocess.Popen(
        [sys.executable, "-m", "lensllm_tui.cli", "run", "--no-ui", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # generous: the machine may be shared and busy
        while stored_points(out) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert stored_points(out) >= 2, "no two points finished within the deadline"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = stored_points(out)
    assert 2 <= kept < 4
    json.loads((out / "results.json").read_text())  # whatever was there is whole JSON
    res = cli.invoke(app, ["run", "--no-ui", "--config", str(cfg)])
    assert res.exit_code == EXIT_OK, res.output
    assert f"{4 - kept} points computed, {kept} reused" in res.output
    after, ref = results(out), results(uninterrupted)
    points = model_entry(after, MODEL)["points"]
    assert [p["reused"] for p in points] == [True] * kept + [False] * (4 - kept)
    for p, q in zip(points, model_entry(ref, MODEL)["points"], strict=True):
        assert p["size"] == q["size"]
        assert p["loss"] == pytest.approx(q["loss"], rel=1e-5)
    assert after["ranking"][0]["model"] == MODEL


class _InterruptOnFirstPoint(io.StringIO):
    """Console output that presses Ctrl-C (a real SIGINT to this process) once a point is done."""

    sent = False

    def write(self, text: str) -> int:
        if not self.sent and "size" in text and "loss" in text:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(text)


def test_ctrl_c_cancels_cleanly_with_exit_130(tmp_path: Path) -> None:
    """A real SIGINT mid-run: the handler sets the cancel event, the run stops cleanly."""
    out = tmp_path / "out"
    cfg = RunConfig.load_toml(write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 200]))
    sink = _InterruptOnFirstPoint()
    code = run_headless(cfg, Console(file=sink, width=120))
    assert sink.sent
    assert code == EXIT_CANCELLED, sink.getvalue()
    assert "cancelled:" in sink.getvalue() and "Traceback" not in sink.getvalue()
    assert results(out)["status"] == "cancelled"
    assert 1 <= stored_points(out) < 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_models_command_lists_the_zoo() -> None:
    res = cli.invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    assert "tiny:gpt2-s" in res.output and "tiny:llama-l" in res.output
    assert "gpt2" in res.output and "llama" in res.output


def test_bad_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = cli.invoke(
        app,
        [
            "run",
            "--no-ui",
            "--models",
            MODEL,
            "--dataset",
            str(tmp_path / "missing.jsonl"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output


def test_unknown_policy_is_refused_at_the_cli(tmp_path: Path) -> None:
    res = cli.invoke(app, ["run", "--no-ui", "--policy", "random", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "policy must be 'ladder' or 'adaptive'" in res.output
    assert "Traceback" not in res.output
