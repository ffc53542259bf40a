"""benchmarks/gpu_check.py stays runnable: its whole sequence on a tiny model on the CPU."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_tiny_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--tiny", "--device", "cpu", "--sizes", "8", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert json.dumps(report, indent=2) in capsys.readouterr().out
    (point,) = report["points"]
    assert point["precision"] == "bf16" and point["weights_dtype"] == "float32"
    assert point["tokens_per_s"] > 0 and point["peak_memory_bytes"] > 0
    assert report["ntk"]["n"] >= 2 and math.isfinite(report["ntk"]["trace"])
    (trainer,) = report["trainer"]
    assert trainer["seconds_ratio_ours_over_trainer"] > 0
    assert math.isfinite(trainer["trainer_loss"])


def test_gpu_check_refuses_the_real_run_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 2
