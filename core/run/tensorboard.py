"""A run as TensorBoard event files, one TensorBoard run per candidate model.

Scalars, so the curves can be compared in TensorBoard's own UI:
``test_loss`` against training samples (the ladder), ``flops`` likewise,
``predicted_target_loss`` (with ``_low`` / ``_high``) at the target size,
and every stored point's per-step losses as ``train_loss/size_N`` and
``val_loss/size_N`` against the optimizer step. Written with
``torch.utils.tensorboard`` (torch is already here; it needs the
``tensorboard`` package, the ``lensllm-tui[tensorboard]`` extra).
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import ReportError, one_line
from core.run.report import RunData, load_run

TENSORBOARD_DIR = "tensorboard"
"""Where ``export_tensorboard`` writes inside the run directory unless told otherwise."""


def run_name(model: str) -> str:
    """A model name as a TensorBoard run folder (``tiny:gpt2-s`` -> ``tiny_gpt2-s``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def export_tensorboard(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the run's event files under ``out_dir`` (default RUN_DIR/tensorboard)."""
    run = load_run(run_dir)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ReportError(
            "the TensorBoard export needs tensorboard: pip install 'lensllm-tui[tensorboard]'"
        ) from exc
    out = Path(out_dir) if out_dir is not None else run.run_dir / TENSORBOARD_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the export folder ({one_line(exc)})") from exc
    for model in run.models:
        writer = SummaryWriter(log_dir=str(out / run_name(model["model"])))
        try:
            _write_model(writer, run, model)
        finally:
            writer.close()
    return out


def _write_model(writer: object, run: RunData, model: dict) -> None:
    add = writer.add_scalar  # type: ignore[attr-defined]
    for p in model["points"]:
        if p.get("loss") is not None:
            add("test_loss", p["loss"], p["size"])
        if p.get("flops") is not None:
            add("flops", p["flops"], p["size"])
    pred = model.get("prediction") or {}
    for key, tag in (("predicted", ""), ("low", "_low"), ("high", "_high")):
        if pred.get(key) is not None:
            add(f"predicted_target_loss{tag}", pred[key], run.target)
    for size, losses in sorted(run.steps.get(model["model"], {}).items()):
        for step, loss in losses.get("train") or []:
            add(f"train_loss/size_{size}", loss, step)
        for step, loss in losses.get("validation") or []:
            add(f"val_loss/size_{size}", loss, step)
