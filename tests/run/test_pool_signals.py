"""A pool worker is not stopped by the signals sent to the whole process group.

Ctrl-C in a terminal and a SIGTERM sent to the group (``kill -TERM -PGID``,
a service manager) reach the workers too. Stopping is the driver's decision:
a worker killed by the signal would come back as a lost job, be retried, and
hold the cancel up by a whole point. So the workers ignore both; a real pool
worker process is sent each and must still train its next job.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from core.config import DataConfig, TrainConfig
from core.run.executors import JobDone, JobFailed, PointJob
from core.run.executors.pool import PoolExecutor
from core.training.data import load_task
from core.training.models import resolve_model

DATA = DataConfig(test_size=16, validation_size=8, max_length=32)


def test_a_pool_worker_outlives_sigint_and_sigterm_and_still_trains(zoo_cache: Path) -> None:
    task = load_task(DATA)
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    with PoolExecutor(task, 1) as ex:
        deadline = time.monotonic() + 120
        while ex.slots[0].ready is False:  # the spawned worker says "ready" with its pid
            assert time.monotonic() < deadline, "the worker never came up"
            ex.poll(0.1)
        worker = ex.slots[0]
        pid = getattr(worker, "pid", None)
        assert pid is not None
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
        ex.poll(0.1)
        assert worker.alive and ex.slots[0] is worker, ex.death
        ex.submit(PointJob(1, spec, 0, TrainConfig(batch_size=8), DATA, task.fingerprint))
        ended = []
        while not ended:
            assert time.monotonic() < deadline, "the job never ended"
            ended = [u for u in ex.poll(0.1) if isinstance(u, JobDone | JobFailed)]
    assert isinstance(ended[0], JobDone), ended[0]
    assert ended[0].worker == worker.name
