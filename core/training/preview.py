"""What the task looks like to each candidate before anything trains.

Truncation depends on the tokenizer, and chat data on the template, so both
are per model. Only the tokenizer and the config are loaded (no weights), and
the encoding made here is the one training reuses (TaskData caches it per
tokenizer), so saying this at the start of a run costs nothing extra.
"""

from __future__ import annotations

from typing import Any

from core.config import DataConfig
from core.errors import DataError, one_line
from core.training.data import TaskData
from core.training.models import ModelSpec

POSITION_ATTRS = ("n_positions", "max_position_embeddings")
"""Config attributes that cap a model's context (the first present one is used)."""


def model_max_length(config: Any, requested: int) -> int:
    """Requested length, clipped to the model's learned positions where it has them."""
    for attr in POSITION_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return min(requested, value)
    return requested


def encoding_preview(spec: ModelSpec, task: TaskData, data_cfg: DataConfig) -> dict[str, Any]:
    """``TaskData.encoding_report`` for one candidate; ``error`` holds a data problem's line."""
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.path)
    max_length = model_max_length(AutoConfig.from_pretrained(spec.path), data_cfg.max_length)
    try:
        return task.encoding_report(tokenizer, spec.kind, max_length)
    except DataError as exc:
        return {"max_length": max_length, "error": one_line(exc)}


def preview_line(model: str, report: dict[str, Any]) -> str:
    """One console line: examples cut at max_length (count, share) and the chat template."""
    if "error" in report:
        return f"{model}: {report['error']}"
    line = (
        f"{model}: {report['truncated']} of {report['examples']} examples"
        f" ({report['truncated_share']:.1%}) cut at max_length {report['max_length']}"
    )
    if report.get("chat_template"):
        line += f"; chat rendered with {report['chat_template']}"
    return line
