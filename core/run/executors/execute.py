"""The worker side of every executor: run one job on the task this worker holds.

A ``JobRunner`` lives wherever jobs run (a thread of the driver, a pool
process, a Ray actor), so the three backends train a point with the very same
code and get the same losses. It keeps the task (tokenised once per tokenizer)
and the last model it loaded: ``train_point`` restores the pretrained weights
after every point, so the next point of the same model skips the load.

``LENSLLM_TUI_FAULTS`` injects faults on a job's first attempt, for the tests
and benchmarks/fault drills: a comma-separated list of ``oom=MODEL@SIZE``
(raise ``torch.cuda.OutOfMemoryError`` at the first progress report, as a real
CUDA allocator failure would mid-step), ``kill=MODEL@SIZE`` (SIGKILL the
worker process there), ``write=MODEL@SIZE`` (write a scratch file of
``SCRATCH_BYTES`` under ``<cache>/scratch`` there, as a worker that downloads
or caches would: on a full or read-only disk the kernel's ENOSPC or EROFS is
what the job meets) and ``slow=MODEL@SIZE`` (hold the point there for
``STRAGGLER_SECONDS``: a straggler, whose result comes in after later points').
The variable is read by the worker, so it reaches pool processes and local Ray
workers through their inherited environment.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from core.errors import Cancelled, OutOfMemory, PointError, one_line, os_error_line, unwritable
from core.run.executors.jobs import JobDone, JobFailed, JobProgress, PointJob, ProbeResult

FAULTS_ENV = "LENSLLM_TUI_FAULTS"
"""Environment variable naming the faults a worker injects (see the module docstring)."""
FAULTS = ("oom", "kill", "write", "slow")
STRAGGLER_SECONDS = 3.0
"""How long a ``slow`` fault holds its point at the first progress report."""

ProgressSink = Callable[[JobProgress], None]


def parse_faults(text: str) -> dict[tuple[str, int], str]:
    """``"oom=tiny:gpt2-s@200,kill=m@400"`` -> {(model, size): action}; bad items are skipped."""
    out: dict[tuple[str, int], str] = {}
    for item in text.split(","):
        action, _, target = item.strip().partition("=")
        model, _, size = target.rpartition("@")
        if action in FAULTS and model and size.lstrip("-").isdigit():
            out[(model, int(size))] = action
    return out


SCRATCH_BYTES = 4 << 20
"""What a ``write`` fault writes: more than a small test file system holds."""


def write_scratch() -> None:
    """Write (and remove) ``SCRATCH_BYTES`` under ``<cache>/scratch``; the OS's error if it cannot."""
    from core.paths import cache_root

    folder = cache_root() / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fault-{os.getpid()}.bin"
    try:
        with path.open("wb") as fh:
            fh.write(os.urandom(SCRATCH_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # name the file, as a library's own write error would
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        path.unlink(missing_ok=True)


def cuda_memory(device: Any) -> tuple[int | None, int | None]:
    """(bytes in use, total bytes) on a CUDA device, from the driver's view of the whole GPU."""
    if getattr(device, "type", "") != "cuda":
        return None, None
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return total - free, total


def portable_task(task: Any) -> Any:
    """The task as sent to a worker process: without its tokenisation cache (rebuilt there)."""
    return dataclasses.replace(task, _encoded={})


class JobRunner:
    """Runs jobs for one worker; holds its task and its last loaded model."""

    def __init__(
        self,
        task: Any,
        worker: str,
        device: str = "auto",
        *,
        in_driver: bool = False,
        faults: str | None = None,
    ) -> None:
        from core.training.models import resolve_device

        self.task = task
        self.worker = worker
        self.device = resolve_device(device)
        self._loaded: tuple[tuple[str, str], Any] | None = None
        faults = parse_faults(faults if faults is not None else os.environ.get(FAULTS_ENV, ""))
        # a worker that is the driver itself (the local executor) must not kill itself
        self._faults = {k: v for k, v in faults.items() if not (in_driver and v == "kill")}

    @property
    def loaded_model(self) -> str | None:
        """The model whose weights this worker holds (the executor prefers its jobs here)."""
        return self._loaded[0][0] if self._loaded is not None else None

    def run(
        self,
        job: PointJob,
        cancel: threading.Event,
        sink: ProgressSink,
        pause: threading.Event | None = None,
    ) -> JobDone | JobFailed:
        """Run ``job`` to one final update; never raises for the job's own failure.

        ``cancel`` stops it at its next step; while ``pause`` is set it holds there.
        """
        try:
            if job.fingerprint != self.task.fingerprint:
                raise PointError(
                    f"{self.worker} holds task {self.task.fingerprint[:12]}, not the driver's "
                    f"{job.fingerprint[:12]}"
                )
            pair = self._model(job)
            result = (
                self._probe(job, pair)
                if job.ntk is not None
                else self._point(job, pair, cancel, sink, pause)
            )
            return JobDone(job.id, self.worker, result)
        except Cancelled:
            return JobFailed(job.id, self.worker, "cancelled", "cancelled")
        except OutOfMemory as exc:
            return JobFailed(job.id, self.worker, one_line(exc), "oom")
        except Exception as exc:  # the job's own failure: reported, the worker goes on
            if cancel.is_set():
                return JobFailed(job.id, self.worker, "cancelled", "cancelled")
            if (full := unwritable(exc)) is not None:  # the machine's problem, not the model's
                return JobFailed(job.id, self.worker, os_error_line(full), "disk")
            return JobFailed(job.id, self.worker, one_line(exc), "error")

    def _model(self, job: PointJob) -> Any:
        from core.training.models import load_model

        key = (job.model, job.spec.path)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (key, load_model(job.spec, self.device))
        return self._loaded[1]

    def _point(
        self,
        job: PointJob,
        pair: Any,
        cancel: threading.Event,
        sink: ProgressSink,
        pause: threading.Event | None,
    ) -> Any:
        from core.training.point import train_point

        fault = self._faults.get((job.model, job.size)) if job.attempt == 1 else None

        held = threading.Event()  # a straggler holds once, at its first report

        def on_progress(step: int, total: int, loss: float) -> None:
            if fault == "slow" and not held.is_set():
                held.set()
                cancel.wait(STRAGGLER_SECONDS)
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "write":
                write_scratch()
            if fault == "oom":
                import torch

                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory (injected by {FAULTS_ENV} for {job.label})"
                )
            used, total_mem = cuda_memory(self.device)
            sink(JobProgress(job.id, self.worker, step, total, loss, used, total_mem))

        return train_point(
            job.spec,
            self.task,
            job.size,
            job.train,
            job.data,
            device=self.device,
            cancel=cancel,
            pause=pause,
            on_progress=on_progress,
            model_and_tokenizer=pair,
            micro_batch_size=job.micro_batch_size,
        )

    def _probe(self, job: PointJob, pair: Any) -> ProbeResult:
        from core.training.data import make_batch
        from core.training.ntk import probe_ntk
        from core.training.point import as_trained

        assert job.ntk is not None
        model, tokenizer = pair
        batch = make_batch(
            self.task, tokenizer, job.spec.kind, job.ntk.probe_size, max_length=job.data.max_length
        )
        # Under LoRA the kernel is over the adapters, the parameters training moves.
        with as_trained(model, job.spec, job.train) as trained:
            res = probe_ntk(
                trained,
                batch,
                projection_dim=job.ntk.projection_dim or "auto",
                seed=job.ntk.seed,
                max_cost_examples=job.probe_cost_examples,
            )
        return ProbeResult(
            spectrum=res.spectrum,
            n=res.n,
            seconds=res.seconds,
            flops=res.flops,
            path=res.path,
            projection_dim=res.projection_dim,
            projection=res.projection,
            num_params=res.num_params,
            total_params=res.total_params,
            tokens=res.tokens,
        )
