"""One interface for every executor: submit a point job, poll for its updates, cancel it.

The driver (the runner) owns the policy and the store; an executor only runs
jobs. This base class holds what is the same for all backends, so a backend is
just "start this job on that worker" and "what happened since the last poll":

- the queue and the choice of worker: a free worker takes the queued job of the
  model it already holds (no reload), else the oldest queued job, and a job
  retried after its worker died avoids that worker when another is free;
- retries: a job whose worker died (``lost``) goes back to the front of the
  queue up to ``retries`` times; one that ran out of memory (``oom``) goes back
  with half the micro-batch and gradient accumulation, so the effective batch
  and therefore the point stay the same, until the micro-batch is 1;
- the workers' state for the dashboard (job, step, device memory).

Updates come out of ``poll`` in completion order, not submission order: the
driver matches them to jobs by ``job_id``.

An executor may be made before the run's task exists and given it with
``load``: the runner starts the workers (processes importing torch, a
Ray instance) before it reads the data and checks the candidates, so their
start-up runs beside the driver's. No job starts before ``load``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque

from core.events import WorkerStatus
from core.run.executors.jobs import (
    JobDone,
    JobFailed,
    JobProgress,
    JobRetried,
    JobStarted,
    JobUpdate,
    PointJob,
)


@dataclasses.dataclass
class Slot:
    """A backend's worker as the base class tracks it (mutable; the backend adds its handle)."""

    name: str
    device: str
    job: PointJob | None = None
    ready: bool = True
    """False while the worker starts or restarts: it takes no job."""
    loaded: str | None = None
    """The model whose weights the worker holds after its last job."""
    step: int = 0
    total_steps: int = 0
    memory_used: int | None = None
    memory_total: int | None = None
    alive: bool = True
    started: bool = False
    """Came up at least once: when such a worker dies the backend replaces it."""

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            name=self.name,
            device=self.device,
            job=self.job.label if self.job is not None else "",
            step=self.step,
            total_steps=self.total_steps,
            memory_used=self.memory_used,
            memory_total=self.memory_total,
            alive=self.alive,
        )


class Executor(ABC):
    """Runs PointJobs on a set of workers; see the module docstring for the contract."""

    name = "executor"

    def __init__(self, retries: int = 2) -> None:
        self.retries = retries
        self.slots: list[Slot] = []
        self._queue: deque[PointJob] = deque()
        self._avoid: dict[int, str] = {}
        self._outbox: list[JobUpdate] = []
        self._closed = False
        self.loaded = False
        """Whether ``load`` gave the workers the task; until then no job starts."""
        self.paused = False
        self.death: str = ""
        """Why the last worker died (backends set it): the reason queued jobs fail with
        when no worker is left."""

    # --- what a backend provides ------------------------------------------------

    @abstractmethod
    def _load(self, task: object) -> None:
        """Give every worker (and every later replacement) the run's task."""

    @abstractmethod
    def _start(self, slot: Slot, job: PointJob) -> None:
        """Hand ``job`` to the worker of ``slot`` (it is free and ready)."""

    @abstractmethod
    def _collect(self, timeout: float) -> list[JobProgress | JobDone | JobFailed]:
        """Updates since the last call, waiting up to ``timeout`` seconds for the first.

        A worker that died with a job reports it as ``JobFailed(cause="lost")``.
        """

    @abstractmethod
    def _stop(self, slot: Slot, job: PointJob) -> None:
        """Ask the worker of ``slot`` to stop ``job`` (it reports ``cancelled``)."""

    @abstractmethod
    def _pause(self, paused: bool) -> None:
        """Tell every worker to hold at its next step (True) or go on (False)."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Stop the workers and free what they hold."""

    # --- the interface ----------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Jobs that can run at once (the workers that are up or coming up)."""
        return sum(1 for s in self.slots if s.alive)

    @property
    def busy(self) -> int:
        """Jobs submitted and not yet finished (queued or running)."""
        return len(self._queue) + sum(1 for s in self.slots if s.job is not None)

    def wants_work(self) -> bool:
        """Whether a new job would start now (a worker is or will be idle)."""
        return self.busy < self.capacity

    def load(self, task: object) -> None:
        """Give the workers the run's task (the data); jobs start only once it is given."""
        if self.loaded:
            raise RuntimeError(f"the {self.name} executor already has its task")
        self._load(task)
        self.loaded = True
        self._dispatch()

    def submit(self, job: PointJob) -> None:
        """Queue ``job``; it starts as soon as a worker is free."""
        if self._closed:
            raise RuntimeError(f"the {self.name} executor is closed")
        self._queue.append(job)
        self._dispatch()

    def poll(self, timeout: float = 0.05) -> list[JobUpdate]:
        """Progress, results, failures and retries since the last poll (waits up to ``timeout``)."""
        out = self._take_outbox()
        for update in self._collect(0.0 if out else timeout):
            slot = self._slot_of(update.job_id)
            if isinstance(update, JobProgress):
                if slot is not None:
                    slot.step, slot.total_steps = update.step, update.total_steps
                    slot.memory_used, slot.memory_total = update.memory_used, update.memory_total
                out.append(update)
                continue
            job = slot.job if slot is not None else None
            if slot is not None:
                slot.job, slot.step, slot.total_steps = None, 0, 0
                if isinstance(update, JobDone) and job is not None:
                    slot.loaded = job.model
            if isinstance(update, JobFailed) and job is not None:
                retried = self._retry(job, update)
                if retried is not None:
                    out.append(retried)
                    continue
            self._avoid.pop(update.job_id, None)
            out.append(update)
        if self._queue and not any(s.alive or s.started for s in self.slots):
            reason = f"no worker left: {self.death or 'none could start'}"
            out += [JobFailed(j.id, "", reason, "error") for j in self._queue]
            self._queue.clear()
        self._dispatch()
        return out + self._take_outbox()

    def _take_outbox(self) -> list[JobUpdate]:
        out, self._outbox = self._outbox, []
        return out

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (queued or running), or every job with ``None``."""
        for job in [j for j in self._queue if job_id is None or j.id == job_id]:
            self._queue.remove(job)
            self._outbox.append(JobFailed(job.id, "", "cancelled", "cancelled"))
        for slot in self.slots:
            if slot.job is not None and (job_id is None or slot.job.id == job_id):
                self._stop(slot, slot.job)

    def pause(self, paused: bool) -> None:
        """Hold running jobs at their next step, and start no queued one, while ``paused``."""
        self.paused = paused
        self._pause(paused)
        if not paused:
            self._dispatch()

    def workers(self) -> tuple[WorkerStatus, ...]:
        """Every worker's state now, for the dashboard."""
        return tuple(s.status() for s in self.slots)

    def close(self) -> None:
        """Cancel what runs and stop the workers; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._shutdown()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------

    def _slot_of(self, job_id: int) -> Slot | None:
        return next((s for s in self.slots if s.job is not None and s.job.id == job_id), None)

    def _retry(self, job: PointJob, failed: JobFailed) -> JobRetried | None:
        if failed.cause == "lost" and job.attempt <= self.retries:
            again = dataclasses.replace(job, attempt=job.attempt + 1)
            self._avoid[job.id] = failed.worker
        elif failed.cause == "oom" and (micro := _halved(job)) is not None:
            again = dataclasses.replace(job, attempt=job.attempt + 1, micro_batch_size=micro)
        else:
            return None
        self._queue.appendleft(again)
        return JobRetried(again, failed.worker, failed.reason)

    def _dispatch(self) -> None:
        if self.paused or not self.loaded:
            return
        for slot in self.slots:
            if not self._queue:
                return
            if slot.job is not None or not slot.ready or not slot.alive:
                continue
            job = self._pick(slot)
            self._queue.remove(job)
            slot.job, slot.step, slot.total_steps = job, 0, 0
            self._outbox.append(JobStarted(job.id, slot.name))
            self._start(slot, job)

    def _pick(self, slot: Slot) -> PointJob:
        others_free = any(s is not slot and s.job is None and s.ready for s in self.slots)
        allowed = [
            j for j in self._queue if not (others_free and self._avoid.get(j.id) == slot.name)
        ] or list(self._queue)
        same = [j for j in allowed if j.model == slot.loaded]
        return (same or allowed)[0]


def _halved(job: PointJob) -> int | None:
    """The micro-batch for an out-of-memory retry, or None when it is already 1."""
    current = min(job.micro_batch_size or job.train.batch_size, job.train.batch_size)
    return current // 2 if current > 1 else None
