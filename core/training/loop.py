"""Fine-tune one model on one subset and measure its held-out test loss.

One readable torch loop in the nanoGPT / litgpt style: AdamW, linear warm-up
then cosine decay, gradient clipping, bf16 autocast and TF32 on CUDA, optional
gradient checkpointing and LoRA (peft), optional early stopping on validation
loss. The loop never syncs the device per step: losses stay on the device and
``.item()`` is called only when progress is reported (about every 0.25 s) and
at the end.

Every point starts from the pretrained weights: the model's state is snapshot
before training and put back afterwards, so a caller can load a model once and
run its whole ladder on it.

FLOPs follow the usual dense-transformer estimate: training costs
``(4 N + 2 N_trainable) T`` (forward 2N, backward through activations 2N,
weight gradients 2 N_trainable per token), which is ``6 N T`` for full
fine-tuning, and evaluation costs ``2 N T``. N counts every parameter
(embeddings included, tied weights once); T counts the non-pad tokens the model
actually processes (encoder plus decoder tokens for seq2seq models, for which
the estimate is an upper bound). Padding is never counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import Cancelled, PointError
from core.training.data import IGNORE_INDEX, Encoded, collate

PROGRESS_SECONDS = 0.25
"""Minimum wall time between progress callbacks (never one per step): the engine's one
progress throttle, here because each report syncs the device (``.item()``)."""

HOLD_POLL_SECONDS = 0.05
"""How often a paused loop looks at its pause and cancel events."""


# --------------------------------------------------------------------------- helpers


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Parameters counted once each (tied embeddings are shared tensors)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_estimate(params: int, trainable: int, train_tokens: int, eval_tokens: int) -> float:
    """Training ``(4N + 2N_trainable) T_train`` plus evaluation ``2N T_eval``."""
    return float((4 * params + 2 * trainable) * train_tokens + 2 * params * eval_tokens)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def enable_tf32() -> None:
    """TF32 for fp32 matmuls/convolutions on CUDA (the newer switch where torch has it)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:  # older torch
        matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    # auto: bf16 where the hardware does it natively, fp32 elsewhere (CPU)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def sequence_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], kind: str, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over labelled tokens only (IGNORE_INDEX skipped).

    Computed here rather than by the model so that evaluation can sum
    (token-weighted mean over a whole split) and training can average.
    """
    labels = batch["labels"]
    if kind == "seq2seq":
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=decoder_input_ids,
        ).logits
        target = labels
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, :-1]
        target = labels[:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        target.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


def processed_tokens(batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """Non-pad tokens the model runs on (a device tensor: no sync)."""
    n = batch["attention_mask"].sum()
    if kind == "seq2seq":
        n = n + (batch["labels"] != IGNORE_INDEX).sum()
    return n


def batches_for(
    data: Sequence[Encoded],
    batch_size: int,
    steps: int,
    seed: int,
    *,
    group_by_length: bool = False,
    group_factor: int = 8,
) -> list[list[Encoded]]:
    """``steps`` batches drawn epoch by epoch from seeded permutations of ``data``.

    With ``group_by_length`` each epoch's permutation is cut into mega-batches
    of ``group_factor`` batches, each mega-batch is sorted by length and cut
    into batches, and the batch order is shuffled again: every example is still
    seen once per epoch in a random batch order, but a batch holds examples of
    similar length, so padding (wasted compute) drops sharply.
    """
    if not data:
        raise PointError("no training examples with labelled tokens")
    g = torch.Generator().manual_seed(seed)
    out: list[list[Encoded]] = []
    while len(out) < steps:
        order = torch.randperm(len(data), generator=g).tolist()
        if group_by_length:
            mega = batch_size * group_factor
            grouped: list[list[int]] = []
            for i in range(0, len(order), mega):
                chunk = sorted(order[i : i + mega], key=lambda j: len(data[j].input_ids))
                grouped += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
            perm = torch.randperm(len(grouped), generator=g).tolist()
            epoch = [grouped[i] for i in perm]
        else:
            epoch = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        out += [[data[i] for i in b] for b in epoch]
    return out[:steps]


def evaluate(
    model: torch.nn.Module,
    data: Sequence[Encoded],
    *,
    kind: str,
    pad_id: int,
    device: torch.device,
    batch_size: int,
    autocast_dtype: torch.dtype | None,
) -> tuple[float, int, int]:
    """(token-weighted mean CE, label tokens, processed tokens) over ``data``.

    Examples are sorted by length so batches carry little padding; the order
    does not change a token-weighted mean.
    """
    was_training = model.training
    model.eval()
    ordered = sorted(data, key=lambda e: (len(e.input_ids), len(e.labels)))
    total = torch.zeros((), dtype=torch.float64, device=device)
    labelled = torch.zeros((), dtype=torch.long, device=device)
    processed = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for i in range(0, len(ordered), batch_size):
            batch = _to_device(collate(ordered[i : i + batch_size], pad_id, kind), device)
            with _autocast(device, autocast_dtype):
                total += sequence_loss(model, batch, kind, reduction="sum").double()
            labelled += (_target(batch, kind) != IGNORE_INDEX).sum()
            processed += processed_tokens(batch, kind)
    model.train(was_training)
    n = int(labelled.item())
    if n == 0:
        raise PointError("no labelled tokens to evaluate on")
    return float(total.item()) / n, n, int(processed.item())


def _target(batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    return batch["labels"] if kind == "seq2seq" else batch["labels"][:, 1:]


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | MemoryError) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
    )


# --------------------------------------------------------------------------- the loop


def _accumulate(
    model: torch.nn.Module,
    examples: list[Encoded],
    micro_batch_size: int | None,
    *,
    kind: str,
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward one batch, in micro-batches of ``micro_batch_size`` when given.

    Each micro-batch's summed loss is divided by the whole batch's labelled
    tokens, so the accumulated gradient is the gradient of the batch's mean loss,
    the same step as one full batch (up to float rounding and padding to each
    micro-batch's own longest example). This is what an out-of-memory retry uses:
    half the activations per forward, same effective batch. Returns the batch's
    mean loss and its processed tokens (device tensors: no sync).
    """
    size = len(examples) if not micro_batch_size else max(1, micro_batch_size)
    if size >= len(examples):
        batch = _to_device(collate(examples, pad_id, kind), device)
        with _autocast(device, autocast_dtype):
            loss = sequence_loss(model, batch, kind)
        loss.backward()
        return loss, processed_tokens(batch, kind)
    chunks = [collate(examples[i : i + size], pad_id, kind) for i in range(0, len(examples), size)]
    labelled = sum(int((_target(c, kind) != IGNORE_INDEX).sum()) for c in chunks)  # CPU tensors
    total = torch.zeros((), device=device)
    processed = torch.zeros((), dtype=torch.long, device=device)
    for chunk in chunks:
        batch = _to_device(chunk, device)
        with _autocast(device, autocast_dtype):
            part = sequence_loss(model, batch, kind, reduction="sum") / max(labelled, 1)
        part.backward()
        total += part.detach().float()
        processed += processed_tokens(batch, kind)
    return total, processed


def hold_while_paused(pause: threading.Event | None, cancel: threading.Event | None) -> float:
    """Block while ``pause`` is set (cancel still stops, with Cancelled); seconds held.

    Checked before every optimizer step, as cancel is, so a pause holds training
    at its next step rather than at the next point.
    """
    if pause is None or not pause.is_set():
        return 0.0
    start = time.perf_counter()
    while pause.is_set():
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        time.sleep(HOLD_POLL_SECONDS)
    return time.perf_counter() - start


@dataclass
class _LoopOutcome:
    steps: int
    tokens: int
    last_loss: float | None
    best_val: float | None
    val_tokens: int
    held_seconds: float = 0.0
    """Time spent paused, which the point's seconds leave out."""
    train_curve: list[float] = field(default_factory=list)
    """The training loss of every step, in order (read from the device once, at the end)."""
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    """(step, validation loss) of every validation check."""

    def losses(self) -> dict[str, list[Any]]:
        """Per-step losses as the store keeps them: ``train`` [[step, loss]], ``validation``."""
        train = [[i + 1, loss] for i, loss in enumerate(self.train_curve)]
        return {"train": train, "validation": [list(v) for v in self.val_curve]}


def optimize(
    model: torch.nn.Module,
    batches: Sequence[list[Encoded]],
    *,
    kind: str,
    pad_id: int,
    device: torch.device,
    lr: float,
    warmup_steps: int,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    autocast_dtype: torch.dtype | None = None,
    cancel: threading.Event | None = None,
    pause: threading.Event | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    validation: Sequence[Encoded] | None = None,
    eval_every: int = 0,
    patience: int = 0,
    eval_batch_size: int = 32,
    micro_batch_size: int | None = None,
) -> _LoopOutcome:
    """Run one optimizer step per batch; the one training loop of the engine.

    ``micro_batch_size`` below the batch size accumulates each batch's gradient
    over micro-batches (see ``_accumulate``): the same step with less memory.

    With ``patience`` > 0 and a validation set, the validation loss is checked
    every ``eval_every`` steps; training stops after ``patience`` checks without
    improvement and the best weights are put back.
    """
    params, optimizer = _adamw(model, lr, weight_decay, device)
    total = len(batches)
    model.train()
    tracker = _Tracker(device)
    stopper = None
    if patience > 0 and validation and eval_every > 0:
        stopper = _EarlyStopping(
            patience, validation, kind, pad_id, device, eval_batch_size, autocast_dtype
        )
    held = 0.0
    step = 0
    for step, examples in enumerate(batches):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        held += hold_while_paused(pause, cancel)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, warmup_steps, lr)
        loss, processed = _accumulate(
            model,
            examples,
            micro_batch_size,
            kind=kind,
            pad_id=pad_id,
            device=device,
            autocast_dtype=autocast_dtype,
        )
        _clip_and_step(optimizer, params, max_grad_norm)
        tracker.add(step, loss.detach(), processed)
        if on_progress is not None and tracker.report_due(last_step=step == total - 1):
            on_progress(step + 1, total, tracker.report())
        if stopper is not None and (step + 1) % eval_every == 0:
            tracker.check_finite()
            if stopper.should_stop(model, step + 1):
                step += 1
                break
            model.train()
    else:
        step = total
    tracker.check_finite()
    last_loss = tracker.final_loss()
    if stopper is not None:
        stopper.restore_best(model)
    return _LoopOutcome(
        steps=step,
        tokens=tracker.tokens_seen(),
        last_loss=last_loss,
        best_val=None if stopper is None else stopper.best_val,
        val_tokens=0 if stopper is None else stopper.val_tokens,
        held_seconds=held,
        train_curve=tracker.curve(),
        val_curve=[] if stopper is None else stopper.curve,
    )


def _adamw(
    model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    """The trainable parameters and AdamW(0.9, 0.95) over them.

    Weight decay applies to matrices only (biases and norms are left alone, as in
    nanoGPT); the fused kernel is used where the device has one and every
    parameter is floating point.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu") and all(p.is_floating_point() for p in params)
    return params, torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)


def _clip_and_step(
    optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], max_grad_norm: float
) -> None:
    """Clip the accumulated gradient (when ``max_grad_norm`` > 0), step, clear the gradient."""
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class _Tracker:
    """The training loss and tokens of a run, kept on the device.

    Nothing here syncs per step: the losses stay device tensors and are read
    (``.item()``) only when progress is reported, at a validation check and at
    the end. A non-finite loss is remembered as the first step it happened at and
    raised as a PointError at the next read.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.window_loss = torch.zeros((), device=device)
        self.window_n = 0
        self.tokens = torch.zeros((), dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.step_losses: list[torch.Tensor] = []
        self.last_report = time.perf_counter()
        self.last_loss: float | None = None

    def add(self, step: int, loss: torch.Tensor, tokens: torch.Tensor) -> None:
        """Record one step's (detached) loss and its processed tokens."""
        self.first_bad = torch.where(
            (self.first_bad < 0) & ~torch.isfinite(loss),
            torch.tensor(step, device=self.device),
            self.first_bad,
        )
        self.window_loss += loss.float()
        self.window_n += 1
        self.step_losses.append(loss.float())
        self.tokens += tokens

    def report_due(self, *, last_step: bool) -> bool:
        """PROGRESS_SECONDS since the last report, or the run's last step."""
        return time.perf_counter() - self.last_report >= PROGRESS_SECONDS or last_step

    def report(self) -> float:
        """The mean training loss since the last report (one device sync)."""
        self.check_finite()
        self.last_loss = float(self.window_loss.item()) / self.window_n
        self.window_loss.zero_()
        self.window_n = 0
        self.last_report = time.perf_counter()
        return self.last_loss

    def check_finite(self) -> None:
        bad = int(self.first_bad.item())
        if bad >= 0:
            raise PointError(f"NaN loss at step {bad + 1}")

    def final_loss(self) -> float | None:
        """The mean loss of the steps since the last report (the last report's if none)."""
        if self.window_n:
            self.last_loss = float(self.window_loss.item()) / self.window_n
        return self.last_loss

    def tokens_seen(self) -> int:
        return int(self.tokens.item())

    def curve(self) -> list[float]:
        """Every step's loss, in order (one device read)."""
        return torch.stack(self.step_losses).tolist() if self.step_losses else []


class _EarlyStopping:
    """Validation checks; stop after ``patience`` checks without improvement.

    The best weights are kept (a copy of the state dict) and put back by
    ``restore_best``, so an early-stopped point is measured at its best check.
    """

    def __init__(
        self,
        patience: int,
        validation: Sequence[Encoded],
        kind: str,
        pad_id: int,
        device: torch.device,
        batch_size: int,
        autocast_dtype: torch.dtype | None,
    ) -> None:
        self.patience = patience
        self.validation = validation
        self.kind = kind
        self.pad_id = pad_id
        self.device = device
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        self.best_val: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_checks = 0
        self.val_tokens = 0
        self.curve: list[tuple[int, float]] = []
        """(step, validation loss) of every check."""

    def should_stop(self, model: torch.nn.Module, step: int) -> bool:
        """Evaluate after ``step`` steps; True once ``patience`` checks went without a new best."""
        val, _, tokens = evaluate(
            model,
            self.validation,
            kind=self.kind,
            pad_id=self.pad_id,
            device=self.device,
            batch_size=self.batch_size,
            autocast_dtype=self.autocast_dtype,
        )
        self.val_tokens += tokens
        self.curve.append((step, val))
        if self.best_val is None or val < self.best_val:
            self.best_val = val
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.bad_checks = 0
            return False
        self.bad_checks += 1
        return self.bad_checks >= self.patience

    def restore_best(self, model: torch.nn.Module) -> None:
        """Put the best check's weights back (nothing when no check ran)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
