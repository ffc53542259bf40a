"""One point of the ladder: load a model, fine-tune it on a subset, measure its test loss.

``train_point`` reads as its recipe: ``_set_up`` (device, weights, encoded data,
step counts), ``_trainable`` (LoRA adapters or a weight snapshot, undone on the
way out), ``_fit``, ``_test_loss`` and ``_hparams``, with an out-of-memory error
named by ``_out_of_memory_named``. The loop itself (optimizer, schedule,
evaluation) is core/training/loop.py, shared with the zoo's pretraining.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from core.config import DataConfig, TrainConfig
from core.errors import OutOfMemory
from core.events import PointMeasurements
from core.training.data import Encoded, TaskData
from core.training.loop import (
    Cancelled,
    PointError,
    _is_oom,
    _LoopOutcome,
    batches_for,
    count_params,
    enable_tf32,
    evaluate,
    flops_estimate,
    optimize,
    resolve_precision,
)
from core.training.models import ModelSpec, load_model, resolve_device
from core.training.preview import model_max_length


def planned_steps(size: int, train_cfg: TrainConfig) -> int:
    """Optimizer steps for a subset: ``ceil(epochs * size / batch)``, at least min_steps."""
    if size == 0:
        return 0
    return max(train_cfg.min_steps, math.ceil(train_cfg.epochs * size / train_cfg.batch_size))


def train_point(
    spec: ModelSpec,
    task: TaskData,
    size: int,
    train_cfg: TrainConfig,
    data_cfg: DataConfig,
    *,
    device: str | torch.device = "auto",
    cancel: threading.Event | None = None,
    pause: threading.Event | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    micro_batch_size: int | None = None,
) -> PointMeasurements:
    """Fine-tune ``spec`` on the first ``size`` train examples; size 0 only evaluates.

    ``model_and_tokenizer`` lets a caller load a model once for its whole
    ladder: its weights are snapshot here and restored before returning, so
    each point starts from the pretrained weights. ``cancel`` (a
    threading.Event) is checked before every step and raises Cancelled; while
    ``pause`` is set, training holds before its next step.
    ``micro_batch_size`` below ``batch_size`` accumulates gradients over
    micro-batches (same effective batch, less memory; recorded in hparams).
    Raises OutOfMemory (a PointError) when the device runs out of memory,
    PointError for NaN/inf loss, DataError for a size the train split cannot
    provide.
    """
    start = time.perf_counter()
    setup = _set_up(spec, task, size, train_cfg, data_cfg, device, model_and_tokenizer)
    micro = min(micro_batch_size or train_cfg.batch_size, train_cfg.batch_size)
    torch.manual_seed(train_cfg.seed)
    with (
        _out_of_memory_named(setup.device, train_cfg, micro),
        _trainable(setup, train_cfg) as trained,
    ):
        if setup.steps > 0:
            outcome = _fit(trained, setup, train_cfg, micro, cancel, pause, on_progress)
        else:
            outcome = _LoopOutcome(0, 0, None, None, 0)
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        loss, test_tokens = _test_loss(trained, setup)
        n_all = count_params(trained)
        n_trainable = count_params(trained, trainable_only=True) if setup.steps > 0 else 0
    eval_tokens = test_tokens + outcome.val_tokens
    return PointMeasurements(
        loss=loss,
        flops=flops_estimate(n_all, n_trainable, outcome.tokens, eval_tokens),
        seconds=time.perf_counter() - start - outcome.held_seconds,
        steps=outcome.steps,
        train_tokens=outcome.tokens,
        eval_tokens=eval_tokens,
        train_loss=outcome.last_loss,
        val_loss=outcome.best_val,
        hparams=_hparams(setup, train_cfg, micro, n_all, n_trainable),
        losses=outcome.losses(),
    )


@dataclass(frozen=True)
class _Setup:
    """What a point knows before its first step: device, weights, encoded data, step counts."""

    spec: ModelSpec
    device: torch.device
    model: Any
    autocast_dtype: torch.dtype | None
    weights_dtype: str
    """What actually ran: the weights' dtype (fp32 unless a caller loaded otherwise); the
    hparams record it with the autocast dtype rather than the configured precision."""
    max_length: int
    encoded: dict[str, list[Encoded]]
    train_data: list[Encoded]
    """The subset's examples that have labelled tokens."""
    pad_id: int
    steps: int
    warmup: int
    eval_every: int
    eval_batch_size: int


def _set_up(
    spec: ModelSpec,
    task: TaskData,
    size: int,
    train_cfg: TrainConfig,
    data_cfg: DataConfig,
    device: str | torch.device,
    model_and_tokenizer: tuple[Any, Any] | None,
) -> _Setup:
    """Resolve the device, load (or take) the model, encode the task for it, count the steps."""
    dev = resolve_device(device) if isinstance(device, str) else device
    if dev.type == "cuda":
        enable_tf32()
    if model_and_tokenizer is None:
        model, tokenizer = load_model(spec, dev)
    else:
        model, tokenizer = model_and_tokenizer
    autocast_dtype = resolve_precision(train_cfg.precision, dev)
    weights_dtype = str(next(iter(model.parameters())).dtype).removeprefix("torch.")
    max_length = model_max_length(getattr(model, "config", None), data_cfg.max_length)
    encoded = task.encode(tokenizer, spec.kind, max_length)
    steps = planned_steps(size, train_cfg)
    return _Setup(
        spec=spec,
        device=dev,
        model=model,
        autocast_dtype=autocast_dtype,
        weights_dtype=weights_dtype,
        max_length=max_length,
        encoded=encoded,
        train_data=[e for e in encoded["train"][: len(task.subset(size))] if e.label_tokens > 0],
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        steps=steps,
        warmup=math.ceil(train_cfg.warmup_ratio * steps),
        eval_every=train_cfg.eval_every or max(1, math.ceil(size / train_cfg.batch_size)),
        eval_batch_size=max(train_cfg.batch_size * 2, 32),
    )


@contextmanager
def _out_of_memory_named(
    device: torch.device, train_cfg: TrainConfig, micro: int
) -> Iterator[None]:
    """An out-of-memory error, however the device words it, becomes OutOfMemory.

    It carries the micro-batch that ran out, so an executor can retry the point
    with half of it (same effective batch); the cache is emptied first.
    """
    try:
        yield
    except Exception as exc:
        if not _is_oom(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise OutOfMemory(
            f"out of memory on {device.type} at batch size {train_cfg.batch_size}"
            f" (micro-batch {micro}; try gradient_checkpointing or lora)",
            micro_batch_size=micro,
        ) from exc


@contextmanager
def _trainable(setup: _Setup, train_cfg: TrainConfig) -> Iterator[Any]:
    """The module to train: LoRA-wrapped, or the model itself after a weight snapshot.

    On the way out, whatever happened, the model is put back as it came: adapters
    removed, pretrained weights restored, checkpointing off, in eval mode; this is
    what lets a caller run a whole ladder (and out-of-memory retries) on one load.
    """
    model = setup.model
    snapshot = None
    peft_model = None
    trained = model
    frozen = _frozen(model)
    try:
        if setup.steps > 0:
            if train_cfg.lora:
                peft_model = _with_lora(model, setup.spec, train_cfg)
                trained = peft_model
            else:
                snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if train_cfg.gradient_checkpointing:
                _checkpointing(trained, "enable")()
                if hasattr(model.config, "use_cache"):
                    model.config.use_cache = False
        yield trained
    finally:
        if train_cfg.gradient_checkpointing and setup.steps > 0:
            _checkpointing(trained, "disable")()
        if peft_model is not None:
            model = _unload(peft_model, frozen)
        if snapshot is not None:
            model.load_state_dict(snapshot)
        model.eval()


def _fit(
    trained: Any,
    setup: _Setup,
    train_cfg: TrainConfig,
    micro: int,
    cancel: threading.Event | None,
    pause: threading.Event | None,
    on_progress: Callable[[int, int, float], None] | None,
) -> _LoopOutcome:
    """The point's training steps: seeded batches through the engine's one loop."""
    batches = batches_for(
        setup.train_data,
        train_cfg.batch_size,
        setup.steps,
        train_cfg.seed,
        group_by_length=train_cfg.group_by_length,
    )
    return optimize(
        trained,
        batches,
        kind=setup.spec.kind,
        pad_id=setup.pad_id,
        device=setup.device,
        lr=train_cfg.learning_rate,
        warmup_steps=setup.warmup,
        weight_decay=train_cfg.weight_decay,
        max_grad_norm=train_cfg.max_grad_norm,
        autocast_dtype=setup.autocast_dtype,
        cancel=cancel,
        pause=pause,
        on_progress=on_progress,
        validation=setup.encoded["validation"],
        eval_every=setup.eval_every,
        patience=train_cfg.early_stopping_patience,
        eval_batch_size=setup.eval_batch_size,
        micro_batch_size=micro,
    )


def _test_loss(trained: Any, setup: _Setup) -> tuple[float, int]:
    """(token-weighted test loss, tokens processed); a non-finite loss is a PointError."""
    loss, _, test_tokens = evaluate(
        trained,
        setup.encoded["test"],
        kind=setup.spec.kind,
        pad_id=setup.pad_id,
        device=setup.device,
        batch_size=setup.eval_batch_size,
        autocast_dtype=setup.autocast_dtype,
    )
    if not math.isfinite(loss):
        raise PointError("NaN loss on the test split")
    return loss, test_tokens


def _hparams(
    setup: _Setup, train_cfg: TrainConfig, micro: int, n_all: int, n_trainable: int
) -> dict[str, Any]:
    """The point's flat, JSON-ready hyperparameters: what it ran with, as it ran."""
    return {
        "learning_rate": train_cfg.learning_rate,
        "batch_size": train_cfg.batch_size,
        "micro_batch_size": micro,
        "gradient_accumulation_steps": math.ceil(train_cfg.batch_size / micro),
        "epochs": train_cfg.epochs,
        "min_steps": train_cfg.min_steps,
        "warmup_ratio": train_cfg.warmup_ratio,
        "warmup_steps": setup.warmup,
        "schedule": "linear-warmup-cosine",
        "optimizer": "adamw(0.9,0.95)",
        "weight_decay": train_cfg.weight_decay,
        "max_grad_norm": train_cfg.max_grad_norm,
        "precision": _precision_ran(setup.autocast_dtype, setup.weights_dtype),
        "weights_dtype": setup.weights_dtype,
        "checkpoint_dtype": setup.spec.dtype or "unknown",
        "model_identity": setup.spec.identity,
        "gradient_checkpointing": train_cfg.gradient_checkpointing,
        "group_by_length": train_cfg.group_by_length,
        "lora": train_cfg.lora,
        "lora_r": train_cfg.lora_r if train_cfg.lora else 0,
        "early_stopping_patience": train_cfg.early_stopping_patience,
        "eval_every": setup.eval_every if train_cfg.early_stopping_patience else 0,
        "seed": train_cfg.seed,
        "max_length": setup.max_length,
        "planned_steps": setup.steps,
        "params": n_all,
        "trainable_params": n_trainable,
        "device": setup.device.type,
    }


def _precision_ran(autocast_dtype: torch.dtype | None, weights_dtype: str) -> str:
    """The precision a point ran in: the weights' own when not fp32, else the autocast's."""
    if weights_dtype != "float32":
        return {"bfloat16": "bf16", "float16": "fp16"}.get(weights_dtype, weights_dtype)
    return "bf16" if autocast_dtype is torch.bfloat16 else "fp32"


def _checkpointing(model: Any, what: str) -> Callable[[], None]:
    """transformers >= 5 renamed gradient to activation checkpointing; use what exists."""
    return getattr(model, f"activation_checkpointing_{what}", None) or getattr(
        model, f"gradient_checkpointing_{what}"
    )


@contextmanager
def as_trained(model: torch.nn.Module, spec: ModelSpec, train_cfg: TrainConfig) -> Iterator[Any]:
    """The model as a point trains it: with LoRA adapters under ``lora``, else itself.

    The adapters are removed again on exit, so the caller's model is unchanged;
    the NTK probe uses this so that under LoRA its kernel is over the adapters.
    """
    if not train_cfg.lora:
        yield model
        return
    frozen = _frozen(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)  # the adapters' init, as a point draws it
        peft_model = _with_lora(model, spec, train_cfg)
    try:
        yield peft_model
    finally:
        _unload(peft_model, frozen)


def _frozen(model: torch.nn.Module) -> set[str]:
    """Names of the parameters that do not train, to put back after LoRA freezes the rest."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _unload(peft_model: Any, frozen: set[str]) -> torch.nn.Module:
    """The base model without its adapters, each parameter trainable again as it was.

    peft freezes the base weights and its unload leaves them frozen: a later
    full fine-tune of the same loaded model would otherwise train nothing.
    """
    model = peft_model.unload()
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    return model


def _with_lora(model: torch.nn.Module, spec: ModelSpec, train_cfg: TrainConfig) -> Any:
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is an optional dependency
        raise PointError("LoRA needs peft: pip install 'lensllm-tui[lora]'") from exc
    task_type = TaskType.SEQ_2_SEQ_LM if spec.kind == "seq2seq" else TaskType.CAUSAL_LM
    config = LoraConfig(
        task_type=task_type,
        r=train_cfg.lora_r,
        lora_alpha=2 * train_cfg.lora_r,
        lora_dropout=0.0,
        target_modules="all-linear",
    )
    return get_peft_model(model, config)
