"""Executors: where a run's points are trained (this process, worker processes, Ray).

``make_executor`` turns a run's ``[executor]`` settings into one of the three
backends behind the same interface (``base.Executor``). The backends are
imported here only when asked for, so a run that never uses Ray never imports it
and a pool worker imports only what it needs.
"""

from __future__ import annotations

from typing import Any

from core.config import ExecutorConfig
from core.run.executors.base import Executor
from core.run.executors.devices import default_backend, default_workers, threads_per_worker
from core.run.executors.jobs import (
    JobDone,
    JobFailed,
    JobProgress,
    JobRetried,
    JobStarted,
    JobUpdate,
    PointJob,
    ProbeResult,
)

__all__ = [
    "Executor",
    "JobDone",
    "JobFailed",
    "JobProgress",
    "JobRetried",
    "JobStarted",
    "JobUpdate",
    "PointJob",
    "ProbeResult",
    "make_executor",
    "resolve_backend",
]


def resolve_backend(cfg: ExecutorConfig, device: str = "auto") -> str:
    """The backend ``cfg`` asks for, with ``auto`` decided by the devices the run can use."""
    return default_backend(device) if cfg.backend == "auto" else cfg.backend


def make_executor(cfg: ExecutorConfig, task: Any | None, device: str = "auto") -> Executor:
    """The executor for a run on ``task``; ``device`` is the run's device setting.

    With ``task`` None the workers start up now and take jobs once ``load``
    gives them the task.

    Raises ConfigError when Ray is asked for and not installed (one line naming
    the extra to install) or cannot be reached.
    """
    from core.run.executors.devices import visible_gpus

    backend = resolve_backend(cfg, device)
    if backend == "local":
        from core.run.executors.local import LocalExecutor

        return LocalExecutor(task, device, retries=cfg.retries)
    gpus = visible_gpus(device)
    if backend == "ray":
        from core.run.executors.ray_backend import RayExecutor

        workers = cfg.workers
        return RayExecutor(
            task,
            workers,
            address=cfg.ray_address,
            threads=threads_per_worker(workers or default_workers(device), cfg.threads),
            gpus_per_worker=cfg.gpus_per_worker,
            local_gpus=len(gpus),
            retries=cfg.retries,
        )
    from core.run.executors.pool import PoolExecutor

    workers = cfg.workers or default_workers(device)
    return PoolExecutor(
        task,
        workers,
        gpus=gpus,
        threads=threads_per_worker(workers, cfg.threads),
        retries=cfg.retries,
    )
