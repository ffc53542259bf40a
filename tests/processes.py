"""Helpers for tests that run lensllm-tui as real processes and send them real signals."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny:gpt2-s"


def write_config(
    path: Path, out: Path, models: list[str], sizes: list[int], target: int = 800
) -> Path:
    """A small CPU run: tiny data, a couple of steps per point, no NTK probe."""
    RunConfig(
        models=models,
        sizes=sizes,
        target=target,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=False),
        out_dir=str(out),
        device="cpu",
    ).save_toml(path)
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``lensllm-tui ARGS`` as its own process, through the command's entry point (stdout and stderr piped together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lensllm_tui", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def stored_points(out: Path) -> int:
    db = out / "store.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.Error:  # tables not created yet
        return 0
    finally:
        con.close()


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str]:
    """Wait for the process; its exit code and everything it printed."""
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output or ""


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
