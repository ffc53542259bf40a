"""Typed, immutable events the engine emits while a run progresses.

The runner yields these and nothing else; the headless console, the Textual
dashboard and the tests all consume the same stream, so a front end never
needs to reach into engine state. Events are frozen dataclasses (plain values,
and the science's own frozen results: a law's FitResult, a phase Transition)
so they are safe to hand across threads and cheap to serialise (``to_dict``).
They sit above core.science for that reason, and below training and the
runner, which build them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

from core.science.laws import FitResult
from core.science.phase import Transition


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class Event:
    """Base class: every event carries the wall-clock time it was created."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the event's type name under ``"event"``."""
        out = dataclasses.asdict(self)
        out["event"] = type(self).__name__
        return out


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run began: which models, which ladder, which target, where results go."""

    models: tuple[str, ...]
    sizes: tuple[int, ...]
    target: int
    out_dir: str
    dataset: str
    total_points: int
    time: float = field(default_factory=_now)
    warnings: tuple[str, ...] = ()
    """Adjustments made to the request, e.g. ladder sizes the dataset cannot supply."""


@dataclass(frozen=True, slots=True)
class PointStarted(Event):
    """One (model, size) point started; size 0 is the zero-shot evaluation."""

    model: str
    size: int
    index: int
    total: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class PointProgress(Event):
    """Throttled (about every 0.25 s) progress inside a point, never per step."""

    model: str
    size: int
    step: int
    total_steps: int
    train_loss: float
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class PointMeasurements:
    """What fine-tuning one point measured: the one record of it.

    The trainer returns it, the store keeps one column per field (derived from
    this declaration), results.json lists it per point and PointFinished carries
    it, so a new measurement is added here once and travels everywhere.
    """

    loss: float
    """Token-weighted mean cross-entropy on the fixed test split (nats/token)."""
    flops: float
    """Training plus evaluation FLOPs (core/training/loop.py says how they are counted)."""
    seconds: float
    """Wall time of the point, time spent paused excluded."""
    steps: int = 0
    train_tokens: int = 0
    """Non-pad tokens processed in training (all steps)."""
    eval_tokens: int = 0
    """Non-pad tokens processed in evaluation (test, plus validation checks)."""
    train_loss: float | None = None
    """Mean training loss over the last logging window (None without training)."""
    val_loss: float | None = None
    """Best validation loss when early stopping ran, else None."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Flat, JSON-ready hyperparameters the point was trained with."""
    losses: dict[str, Any] | None = None
    """Per-step losses: ``train`` and ``validation``, each [[step, loss], ...] (validation only
    where checks ran); None for a point stored before they were kept. In the store only:
    results.json leaves them out (``lensllm-tui report`` and the TensorBoard export read them)."""


@dataclass(frozen=True, slots=True)
class PointFinished(Event):
    """A point finished: its measurements; ``reused`` if they came from the store."""

    model: str
    size: int
    measured: PointMeasurements
    reused: bool = False
    time: float = field(default_factory=_now)
    worker: str = ""
    """The worker that trained it (``local``, ``w1``, ...); empty when reused from the store."""

    @property
    def loss(self) -> float:
        return self.measured.loss

    @property
    def flops(self) -> float:
        return self.measured.flops

    @property
    def seconds(self) -> float:
        return self.measured.seconds


@dataclass(frozen=True, slots=True)
class PointRetried(Event):
    """A point goes back in the queue: its worker died, or it ran out of memory.

    An out-of-memory retry halves the micro-batch (``micro_batch_size``) and
    accumulates gradients, so the effective batch stays the same.
    """

    model: str
    size: int
    attempt: int
    """The attempt about to run (2 for the first retry)."""
    reason: str
    worker: str = ""
    """The worker the failed attempt ran on."""
    micro_batch_size: int | None = None
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker as the front ends show it: where it runs and what it is doing now."""

    name: str
    device: str
    """``cpu``, ``cuda:N`` (the GPU it is pinned to), or where Ray placed it."""
    job: str = ""
    """The running job's label (``model@size`` or ``model ntk``); empty when idle."""
    step: int = 0
    total_steps: int = 0
    memory_used: int | None = None
    """Bytes in use on its GPU (torch.cuda.mem_get_info); None off CUDA."""
    memory_total: int | None = None
    alive: bool = True


@dataclass(frozen=True, slots=True)
class WorkersUpdated(Event):
    """The executor's workers, throttled like progress (about every 0.25 s while any is busy)."""

    executor: str
    workers: tuple[WorkerStatus, ...]
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class PointFailed(Event):
    """A point failed (NaN loss, out of memory, ...): the reason, in one line."""

    model: str
    size: int
    reason: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class ModelFailed(Event):
    """A model cannot go on (unknown id, load error); the others continue."""

    model: str
    reason: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class NTKComputed(Event):
    """Summary of the model's empirical NTK on the probe set (or why it failed)."""

    model: str
    n: int
    trace: float
    top_eigenvalues: tuple[float, ...]
    effective_rank: float
    seconds: float
    ok: bool = True
    reason: str = ""
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class LawFitted(Event):
    """A law was (re)fitted to a model's curve: the fit itself, and what it predicts.

    ``fit`` is the science's own FitResult (a failed one, with its reason, when
    there is nothing to fit yet); ``ok`` and ``reason`` also cover the selector's
    prediction at the target, which can fail where the fit did not.
    """

    model: str
    fit: FitResult
    ok: bool
    predicted_target: float = float("nan")
    interval: tuple[float, float] = (float("nan"), float("nan"))
    reason: str = ""
    time: float = field(default_factory=_now)
    curve: tuple[tuple[float, float], ...] = ()
    """The fitted law sampled as (samples, loss) from the smallest ladder size to the
    target, for plotting without re-evaluating the law. Empty when there is no fit."""

    @property
    def law(self) -> str:
        return self.fit.law

    @property
    def params(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted((k, float(v)) for k, v in self.fit.params.items()))

    @property
    def residual(self) -> float:
        return self.fit.residual


@dataclass(frozen=True, slots=True)
class PhaseDetected(Event):
    """The first size of the power phase, and how confident that call is (0..1)."""

    model: str
    transition: Transition
    time: float = field(default_factory=_now)

    @property
    def transition_size(self) -> int | None:
        return self.transition.size

    @property
    def confidence(self) -> float:
        return self.transition.confidence


@dataclass(frozen=True, slots=True)
class RankEntry:
    """One row of a ranking: lower predicted target loss ranks higher."""

    rank: int
    model: str
    predicted_target: float
    low: float
    high: float
    score: float
    path: tuple[tuple[float, float, float, float], ...] = ()
    """The prediction from the budget to the target as (samples, median, low, high), the
    target last (its median is ``predicted_target``): what the chart draws, since the
    prediction, not the fitted law, is what ranks (core.science.predictive)."""


@dataclass(frozen=True, slots=True)
class RankingUpdated(Event):
    """The ranking after the latest point, best first, with a confidence."""

    entries: tuple[RankEntry, ...]
    confidence: float = float("nan")
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class ModelEliminated(Event):
    """An adaptive policy stopped spending compute on a model, and why."""

    model: str
    reason: str
    compute_saved: float = 0.0
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class PolicyStopped(Event):
    """An adaptive policy stopped asking for points: why, what it spent, what it saved.

    Costs are FLOPs as the runner reports them. ``cost_fraction`` is ``cost`` over
    ``full_cost``, the cost of fine-tuning every candidate once at the target size;
    ``compute_saved`` is the ladder compute the eliminations skipped, and
    ``ladder_cost`` what the ladder policy (every model on every size) would spend.
    """

    reason: str
    cost: float
    full_cost: float
    cost_fraction: float
    compute_saved: float = 0.0
    ladder_cost: float = float("nan")
    budget: float | None = None
    """The cap as a fraction of full fine-tuning; None when the run had none."""
    eliminated: tuple[tuple[str, str], ...] = ()
    """(model, reason) for every model the policy eliminated, in order."""
    time: float = field(default_factory=_now)

    def summary(self) -> str:
        """One line for every front end: why it stopped, what it spent, what it saved."""
        budget = "no budget cap" if self.budget is None else f"budget {self.budget:g}"
        ladder = ""
        if math.isfinite(self.ladder_cost) and self.full_cost > 0:
            ladder = f"; the full ladder would cost {self.ladder_cost / self.full_cost:.3f}"
        frac = f"{self.cost_fraction:.3f}" if math.isfinite(self.cost_fraction) else "-"
        return (
            f"{self.reason}; spent {self.cost:.2e} FLOPs = {frac} of full fine-tuning "
            f"({budget}){ladder}; eliminations saved {self.compute_saved:.2e} FLOPs"
        )


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended normally; failed models are listed with their reasons."""

    out_dir: str
    ranking: tuple[RankEntry, ...]
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    time: float = field(default_factory=_now)
    computed: int = 0
    """Points trained in this run."""
    reused: int = 0
    """Points taken from the store of an earlier run into the same directory."""


@dataclass(frozen=True, slots=True)
class RunCancelled(Event):
    """The run stopped on request; finished points are already in the store."""

    out_dir: str
    reason: str = "cancelled"
    time: float = field(default_factory=_now)
    kept: int = 0
    """Finished points (computed or reused) that are safe in the store."""
