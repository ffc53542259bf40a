"""The Ray executor: one Ray actor per worker, on a cluster or on a local instance.

Actors rather than plain tasks, because an actor keeps the task data and its
last model loaded between points (as a pool worker does), and because a
threaded actor (``max_concurrency``) answers ``progress`` and ``cancel`` while
``run`` trains. Each actor asks for ``gpus_per_worker`` GPUs, so Ray places it on
a node with a free GPU and sets CUDA_VISIBLE_DEVICES for it; with none it asks
for its thread count in CPUs.

The driver connects to ``address`` (``host:6379`` of a running cluster, or
``ray://host:10001`` through Ray Client), else to RAY_ADDRESS, else starts a
local instance for the run and shuts it down at the end. A Ray already
initialised in this process (a test, a notebook) is used as it is.

An actor that dies (its process killed, its node lost) fails its job as ``lost``:
the base class retries the job on another actor, and a fresh actor takes the
dead one's place (Ray's own actor restarts are off, so retries are counted in
one place). The task data goes once into the object store; actors fetch it.
Connecting (or starting the local instance, seconds) happens when the executor
is made; the actors start with ``load``, when the task is there.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError, one_line
from core.run.executors.base import Executor, Slot
from core.run.executors.execute import FAULTS_ENV, JobRunner, portable_task
from core.run.executors.jobs import JobDone, JobFailed, JobProgress, PointJob

INSTALL_HINT = "--executor ray needs Ray: pip install 'lensllm-tui[ray]'"
PROGRESS_SECONDS = 0.25
"""How often the driver asks a busy actor for its progress."""


def import_ray() -> Any:
    """The ray module, or a ConfigError saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


class RayWorker:
    """The actor's body (wrapped with ray.remote by the executor, so importing needs no Ray)."""

    def __init__(self, name: str, task_box: list[Any], threads: int, faults: str) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        on_cuda = bool(gpu_ids) and torch.cuda.is_available()
        node = ray.util.get_node_ip_address()
        self.device = f"{node} gpu {','.join(gpu_ids)}" if gpu_ids else f"{node} cpu"
        if gpu_ids and not on_cuda:
            self.device += " (no CUDA: cpu)"
        self.runner = JobRunner(
            ray.get(task_box[0]), name, "cuda" if on_cuda else "cpu", faults=faults
        )
        self._cancel = threading.Event()
        self._hold = threading.Event()
        self._cancelled: set[int] = set()
        self._running: int | None = None
        self._latest: JobProgress | None = None

    def info(self) -> tuple[str, int]:
        return self.device, os.getpid()

    def run(self, job: PointJob) -> JobDone | JobFailed:
        self._cancel.clear()
        self._running, self._latest = job.id, None
        if job.id in self._cancelled:
            self._cancel.set()
        try:
            return self.runner.run(job, self._cancel, self._progress, self._hold)
        finally:
            self._running = None

    def _progress(self, update: JobProgress) -> None:
        self._latest = update

    def progress(self) -> JobProgress | None:
        return self._latest

    def pause(self, paused: bool) -> None:
        if paused:
            self._hold.set()
        else:
            self._hold.clear()

    def cancel(self, job_id: int) -> None:
        self._cancelled.add(job_id)
        if self._running == job_id:
            self._cancel.set()


@dataclass
class _Actor(Slot):
    handle: Any = None
    pid: int | None = None
    pending: Any = None
    """The ObjectRef of the running ``run`` call, or of ``info`` while starting."""
    progress_ref: Any = None
    asked: float = 0.0


class RayExecutor(Executor):
    """``workers`` Ray actors holding ``gpus_per_worker`` GPUs (or ``threads`` CPUs) each."""

    name = "ray"

    def __init__(
        self,
        task: Any | None,
        workers: int | None,
        *,
        address: str | None = None,
        threads: int = 1,
        gpus_per_worker: float | None = None,
        local_gpus: int = 0,
        retries: int = 2,
    ) -> None:
        super().__init__(retries)
        self.ray = import_ray()
        self._owns = False
        if not self.ray.is_initialized():
            self._connect(address, workers, threads, local_gpus)
        resources = self.ray.cluster_resources()
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        if workers is None:
            gpus = resources.get("GPU", 0)
            workers = (
                int(gpus / gpus_per_worker)
                if gpus_per_worker > 0 and gpus
                else int(resources.get("CPU", 1) // threads)
            )
        self._remote = self.ray.remote(RayWorker).options(
            num_cpus=threads,
            num_gpus=gpus_per_worker,
            max_concurrency=3,  # run, progress and cancel at once
            max_restarts=0,
        )
        self._threads = threads
        self._faults = os.environ.get(FAULTS_ENV, "")
        self._workers = max(1, workers)
        self._task_box: list[Any] = []
        self._count = 0
        if task is not None:
            self.load(task)

    def _load(self, task: object) -> None:
        self._task_box = [self.ray.put(portable_task(task))]
        self.slots = [self._spawn() for _ in range(self._workers)]

    def _connect(self, address: str | None, workers: int | None, threads: int, gpus: int) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if address is None:
            cpus = (workers or os.cpu_count() or 1) * threads
            kwargs.update(num_cpus=cpus, num_gpus=gpus, include_dashboard=False)
        try:
            self.ray.init(address=address, **kwargs)
        except Exception as exc:
            where = address or "a local Ray instance"
            raise ConfigError(f"cannot start Ray on {where}: {one_line(exc)}") from exc
        self._owns = True

    def _spawn(self) -> _Actor:
        name = f"r{self._count}"
        self._count += 1
        handle = self._remote.remote(name, self._task_box, self._threads, self._faults)
        return _Actor(
            name, "ray (starting)", ready=False, handle=handle, pending=handle.info.remote()
        )

    def _start(self, slot: Slot, job: PointJob) -> None:
        assert isinstance(slot, _Actor)
        slot.pending = slot.handle.run.remote(job)
        slot.progress_ref, slot.asked = None, time.monotonic()

    def _stop(self, slot: Slot, job: PointJob) -> None:
        assert isinstance(slot, _Actor)
        slot.handle.cancel.remote(job.id)

    def _pause(self, paused: bool) -> None:
        for a in self._actors():
            a.handle.pause.remote(paused)

    def _collect(self, timeout: float) -> list[JobProgress | JobDone | JobFailed]:
        ray = self.ray
        self._replace_dead()
        now = time.monotonic()
        for a in self._actors():
            if a.job is not None and a.progress_ref is None and now - a.asked >= PROGRESS_SECONDS:
                a.progress_ref, a.asked = a.handle.progress.remote(), now
        refs = [r for a in self._actors() for r in (a.pending, a.progress_ref) if r is not None]
        if not refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        out: list[JobProgress | JobDone | JobFailed] = []
        for a in self._actors():
            if a.progress_ref is not None and a.progress_ref in done:
                got = self._get(a.progress_ref)
                a.progress_ref = None
                if isinstance(got, JobProgress) and a.job is not None and got.job_id == a.job.id:
                    out.append(got)
            if a.pending is not None and a.pending in done:
                out += self._finished(a)
        return out

    def _finished(self, a: _Actor) -> list[JobProgress | JobDone | JobFailed]:
        ref, a.pending = a.pending, None
        try:
            got = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # a bug in the worker code itself
            return [JobFailed(a.job.id, a.name, one_line(exc), "error")] if a.job else []
        except self.ray.exceptions.RayError as exc:  # the actor or its node died
            a.alive, a.ready = False, False
            self.death = f"Ray worker {a.name} ({a.device}) died: {one_line(exc)}"
            with contextlib.suppress(Exception):  # one only unreachable must free its resources
                self.ray.kill(a.handle, no_restart=True)
            return [JobFailed(a.job.id, a.name, self.death, "lost")] if a.job else []
        if a.job is None:  # the info call of a starting actor
            a.device, a.pid = got
            a.ready = a.started = True
            return []
        return [got]

    def _get(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return None  # a dead actor's progress: its run call reports the death

    def _actors(self) -> list[_Actor]:
        return [a for a in self.slots if isinstance(a, _Actor) and a.alive]

    def _replace_dead(self) -> None:
        for i, a in enumerate(self.slots):
            if isinstance(a, _Actor) and not a.alive and a.job is None and a.started:
                self.slots[i] = self._spawn()

    def _shutdown(self) -> None:
        for a in self._actors():
            if a.job is not None:
                a.handle.cancel.remote(a.job.id)
        deadline = time.monotonic() + 10.0
        for a in self._actors():
            if a.pending is not None:
                self.ray.wait([a.pending], timeout=max(0.0, deadline - time.monotonic()))
            self.ray.kill(a.handle)
        if self._owns:
            self.ray.shutdown()
