"""What crosses between the driver and its workers: jobs in, updates out.

Everything here is a small frozen dataclass of plain values (plus the configs and
specs they carry), so it pickles through a pipe to a spawned process or through
Ray's object store unchanged, and the three executors speak the same language.
Workers never touch the store or the policy: they get a ``PointJob`` and send back
``JobProgress`` while it runs and one ``JobDone`` or ``JobFailed`` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import DataConfig, NTKConfig, TrainConfig
from core.science.spectrum import NTKSpectrum
from core.training.models import ModelSpec

CAUSES = ("error", "oom", "lost", "cancelled", "disk")
"""Why a job failed: its own error (the model fails), out of memory (retried with
smaller micro-batches), its worker died (retried elsewhere), it was cancelled, or
a write found the disk full or read-only (the machine's problem: the run stops)."""


@dataclass(frozen=True)
class PointJob:
    """One unit of work: fine-tune and test one (model, size), or probe the model's NTK.

    ``fingerprint`` is the driver's task fingerprint; a worker refuses a job for a
    task it does not hold, so a point can never be measured on other data.
    """

    id: int
    spec: ModelSpec
    size: int
    """Training samples (0: zero-shot evaluation only); ignored by an NTK probe."""
    train: TrainConfig
    data: DataConfig
    fingerprint: str
    ntk: NTKConfig | None = None
    """Set: this job computes the model's NTK spectrum on the probe set instead."""
    probe_cost_examples: float | None = None
    """An NTK probe may cost at most the FLOPs of training on this many examples."""
    micro_batch_size: int | None = None
    """Below train.batch_size: accumulate gradients (set by an out-of-memory retry)."""
    attempt: int = 1

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """``model@size``, or ``model ntk`` for a probe: how logs and the dashboard name it."""
        return f"{self.model} ntk" if self.ntk is not None else f"{self.model}@{self.size}"


@dataclass(frozen=True)
class ProbeResult:
    """A model's NTK spectrum and what computing it cost (the kernel itself stays in the worker)."""

    spectrum: NTKSpectrum
    n: int
    seconds: float
    flops: float
    path: str
    projection_dim: int | None
    projection: str
    num_params: int
    """Parameters the gradients are over (the LoRA adapters under ``lora``)."""
    total_params: int
    tokens: int


@dataclass(frozen=True)
class JobStarted:
    """A worker took the job (again, after a retry)."""

    job_id: int
    worker: str


@dataclass(frozen=True)
class JobProgress:
    """Throttled progress of a running job (the training loop reports every ~0.25 s)."""

    job_id: int
    worker: str
    step: int
    total_steps: int
    train_loss: float
    memory_used: int | None = None
    """Bytes of device memory in use on the worker's GPU (CUDA only; None on CPU)."""
    memory_total: int | None = None


@dataclass(frozen=True)
class JobDone:
    """A job finished: a ``core.training.loop.PointResult`` or a ``ProbeResult``."""

    job_id: int
    worker: str
    result: Any


@dataclass(frozen=True)
class JobFailed:
    """A job ended without a result; ``cause`` is one of CAUSES."""

    job_id: int
    worker: str
    reason: str
    cause: str = "error"


@dataclass(frozen=True)
class JobRetried:
    """The executor put a failed job back in its queue as ``job`` (attempt + 1)."""

    job: PointJob
    worker: str
    reason: str


JobUpdate = JobStarted | JobProgress | JobDone | JobFailed | JobRetried
