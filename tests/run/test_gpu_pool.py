"""benchmarks/gpu_pool.py stays runnable: the pool's throughput and gap report, tiny, on CPU workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_pool.py"


def test_gpu_pool_reports_every_worker_tiny_on_cpu(tmp_path: Path) -> None:
    # A subprocess, as a user runs it: the pool's spawned workers import the script's module.
    args = ["--tiny", "--device", "cpu", "--workers", "2", "--rounds", "2", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_pool.json").read_text())
    assert report["points"] == 2 * 2 * 2 and report["workers"] == 2
    workers = report["per_worker"]
    assert sum(w["points"] for w in workers.values()) == report["points"]
    for w in workers.values():
        assert w["train_tokens_per_s"] > 0 and w["first_job_load_seconds"] >= 0
        if w["points"] > 1:
            assert 0 < w["busy_fraction_after_first"] <= 1.0


def test_gpu_pool_refuses_the_real_run_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "no CUDA device" in done.stderr
