"""The executors on real tiny models: same losses on every backend, retries after faults.

The pool tests spawn real worker processes and SIGKILL them; the Ray test starts a
real local Ray instance with two fake GPUs (Ray's num_gpus on init needs no GPU),
so placement, CUDA_VISIBLE_DEVICES and the object store are Ray's own.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import DataConfig, ExecutorConfig, NTKConfig, TrainConfig
from core.errors import ConfigError
from core.run.executors import (
    Executor,
    JobDone,
    JobFailed,
    JobProgress,
    JobRetried,
    JobStarted,
    PointJob,
    ProbeResult,
    make_executor,
)
from core.run.executors.execute import FAULTS_ENV
from core.run.executors.local import LocalExecutor
from core.run.executors.pool import PoolExecutor, worker_context
from core.training.data import TaskData, load_task
from core.training.models import ModelSpec, resolve_model
from tests.run.jobs import drain, losses

TRAIN = TrainConfig(batch_size=8, min_steps=6, learning_rate=1e-3)
DATA = DataConfig(test_size=32, validation_size=8, max_length=48)
SIZES = (0, 16, 48)


@pytest.fixture(scope="module")
def task() -> TaskData:
    return load_task(DATA)


@pytest.fixture(scope="module")
def specs(zoo_cache: Path) -> list[ModelSpec]:
    return [resolve_model(n, cache_dir=zoo_cache) for n in ("tiny:gpt2-s", "tiny:llama-s")]


def jobs_for(specs: list[ModelSpec], task: TaskData, train: TrainConfig = TRAIN) -> list[PointJob]:
    out = [
        PointJob(len(specs) * i + k, spec, size, train, DATA, task.fingerprint)
        for i, size in enumerate(SIZES)
        for k, spec in enumerate(specs)
    ]
    return out


@pytest.fixture(scope="module")
def reference(task: TaskData, specs: list[ModelSpec]) -> dict[int, float]:
    """Losses of the in-process path: the answers every other backend must give."""
    with LocalExecutor(task, "cpu") as ex:
        for job in jobs_for(specs, task):
            ex.submit(job)
        got = losses(drain(ex, len(SIZES) * len(specs)))
    assert len(got) == len(SIZES) * len(specs)
    return got


@pytest.fixture
def no_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    yield


def test_pool_gives_the_local_losses_and_keeps_models_loaded(
    task: TaskData, specs: list[ModelSpec], reference: dict[int, float], no_faults: None
) -> None:
    # made before the task, as the runner makes it: the workers start, no job runs until load
    ex = make_executor(ExecutorConfig(backend="pool", workers=2, threads=1), None, "cpu")
    assert isinstance(ex, PoolExecutor)
    with ex:
        for job in jobs_for(specs, task):
            ex.submit(job)
        before = [u for _ in range(10) for u in ex.poll(0.1)]
        assert before == [] and all(s.job is None for s in ex.slots)
        ex.load(task)
        probe = PointJob(
            99, specs[0], 0, TRAIN, DATA, task.fingerprint, ntk=NTKConfig(probe_size=8)
        )
        ex.submit(probe)
        updates = drain(ex, len(reference) + 1)
        got = losses(updates)
        workers = {u.worker for u in updates if isinstance(u, JobDone)}
    assert workers == {"w0", "w1"}, "both workers took points"
    assert any(isinstance(u, JobProgress) for u in updates)
    for job_id, loss in reference.items():
        assert math.isclose(got[job_id], loss, abs_tol=1e-5), job_id
    result = next(u.result for u in updates if isinstance(u, JobDone) and u.job_id == 99)
    assert isinstance(result, ProbeResult) and result.n == 8 and result.spectrum.trace > 0


def test_pool_workers_take_the_driver_environment_of_their_own_start(
    task: TaskData, specs: list[ModelSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU workers fork from a server started with the first pool's environment.

    A variable set after that (a fault drill's, a test's cache) still reaches the
    next pool's workers: here an injected out-of-memory error on the first try.
    """
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    with PoolExecutor(task, 1, threads=1) as ex:  # the server (if not already) starts now
        while not ex.slots[0].ready:
            ex.poll(0.05)
    monkeypatch.setenv(FAULTS_ENV, f"oom={specs[0].name}@16")
    with PoolExecutor(task, 1, threads=1) as ex:
        ex.submit(PointJob(1, specs[0], 16, TRAIN, DATA, task.fingerprint))
        updates = [u for u in drain(ex, 1) if not isinstance(u, JobProgress | JobStarted)]
    assert [type(u) for u in updates] == [JobRetried, JobDone]
    assert "out of memory" in updates[0].reason  # type: ignore[union-attr]


def test_cpu_workers_fork_from_the_forkserver_on_linux_and_gpu_workers_are_spawned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert worker_context([]).get_start_method() == "forkserver"
    assert worker_context(["0", "1"]).get_start_method() == "spawn"  # no CUDA through a fork
    monkeypatch.setattr(sys, "platform", "darwin")
    assert worker_context([]).get_start_method() == "spawn"


def test_the_driver_imports_no_torch_before_it_starts_the_workers() -> None:
    """The runner and the executors load without torch, so a pool starts first.

    The CPU pool's forkserver then imports torch beside the driver's own imports
    and checks, rather than after them.
    """
    code = (
        "import sys, core.run.runner, core.run.executors.pool;"
        "from core.config import ExecutorConfig;"
        "from core.run.executors import make_executor;"
        "ex = make_executor(ExecutorConfig(backend='pool', workers=1, threads=1), None, 'cpu');"
        "print('torch' in sys.modules); ex.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_a_pool_closed_before_its_task_kills_its_starting_workers() -> None:
    """Bad data or a failed check ends the run before the task exists: no wait on the workers."""
    ex = PoolExecutor(None, 2, threads=1)
    processes = [s.process for s in ex.slots]  # type: ignore[attr-defined]
    start = time.monotonic()
    ex.close()
    assert time.monotonic() - start < 1.0, "close does not wait for a starting worker"
    for slot in ex.slots:  # a worker still starting is killed by its launcher once it is up
        slot.launcher.join(60)  # type: ignore[attr-defined]
    assert [p.exitcode for p in processes] == [-signal.SIGKILL] * 2


@pytest.mark.slow  # tests/run/test_parallel_run.py kills a worker inside a whole run
def test_a_sigkilled_pool_worker_loses_no_point(
    task: TaskData, specs: list[ModelSpec], reference: dict[int, float], no_faults: None
) -> None:
    killed: list[int] = []

    def kill_first_trainer(ex: Executor, u: object) -> None:
        if isinstance(u, JobProgress) and not killed:
            slot = next(s for s in ex.slots if s.job is not None and s.job.id == u.job_id)
            killed.append(u.job_id)
            os.kill(slot.pid, signal.SIGKILL)  # type: ignore[attr-defined]

    with PoolExecutor(task, 2, threads=1, retries=1) as ex:
        jobs = [j for j in jobs_for(specs, task) if j.size > 0]
        for job in jobs:
            ex.submit(job)
        updates = drain(ex, len(jobs), on_update=kill_first_trainer)
        names = {w.name for w in ex.workers()}
    assert killed
    retried = [u for u in updates if isinstance(u, JobRetried)]
    assert [r.job.id for r in retried] == killed and "SIGKILL" in retried[0].reason
    assert retried[0].job.attempt == 2
    got = losses(updates)
    assert set(got) == {j.id for j in jobs}, "every point finished"
    assert math.isclose(got[killed[0]], reference[killed[0]], abs_tol=1e-5)
    assert "w2" in names, "the dead worker was replaced by a fresh process"


@pytest.mark.slow  # the whole-run kill test covers the retry by default
def test_a_worker_killing_itself_mid_point_is_retried_until_the_limit(
    task: TaskData, specs: list[ModelSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    # kill faults fire on the first attempt only, so one retry is enough ...
    monkeypatch.setenv(FAULTS_ENV, f"kill={specs[0].name}@16")
    with PoolExecutor(task, 1, threads=1, retries=1) as ex:
        job = PointJob(1, specs[0], 16, TRAIN, DATA, task.fingerprint)
        ex.submit(job)
        updates = drain(ex, 1)
    assert [type(u) for u in updates if not isinstance(u, JobProgress | JobStarted)] == [
        JobRetried,
        JobDone,
    ]
    # ... and with no retries left the job fails as lost
    with PoolExecutor(task, 1, threads=1, retries=0) as ex:
        ex.submit(job)
        (failed,) = [u for u in drain(ex, 1) if isinstance(u, JobFailed)]
    assert failed.cause == "lost" and "SIGKILL" in failed.reason


def test_a_pool_worker_killed_while_it_starts_fails_the_queued_job_with_the_reason(
    task: TaskData, specs: list[ModelSpec], no_faults: None
) -> None:
    """The worker dies before it has the task (still importing torch): nothing blocks.

    The constructor returns at once (the task goes down the pipe from a thread, not
    in the spawn arguments), the driver sees the death through the sentinel, and a
    worker that never came up is not respawned: the job fails with the reason.
    """
    start = time.monotonic()
    with PoolExecutor(task, 1, threads=1) as ex:
        assert time.monotonic() - start < 2.0, "starting does not wait for the child"
        assert ex.slots[0].launched.wait(60)  # type: ignore[attr-defined]
        os.kill(ex.slots[0].process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        ex.submit(PointJob(1, specs[0], 16, TRAIN, DATA, task.fingerprint))
        (failed,) = [u for u in drain(ex, 1, limit=60) if isinstance(u, JobFailed)]
    assert failed.cause == "error" and failed.reason.startswith("no worker left: worker w0")
    assert "killed by SIGKILL" in failed.reason


def test_out_of_memory_halves_the_micro_batch_and_records_it(
    task: TaskData,
    specs: list[ModelSpec],
    reference: dict[int, float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FAULTS_ENV, f"oom={specs[0].name}@48")
    job = next(j for j in jobs_for(specs, task) if j.size == 48 and j.spec == specs[0])
    with LocalExecutor(task, "cpu") as ex:
        ex.submit(job)
        updates = [u for u in drain(ex, 1) if not isinstance(u, JobProgress | JobStarted)]
    retried, done = updates
    assert isinstance(retried, JobRetried) and "out of memory" in retried.reason
    assert retried.job.micro_batch_size == 4 and retried.job.attempt == 2
    assert isinstance(done, JobDone)
    hp = done.result.hparams
    assert (hp["batch_size"], hp["micro_batch_size"], hp["gradient_accumulation_steps"]) == (
        8,
        4,
        2,
    )
    # same effective batch: the accumulated steps land on the same loss
    assert math.isclose(done.result.loss, reference[job.id], abs_tol=1e-4)


def test_out_of_memory_at_micro_batch_one_fails_the_point(
    task: TaskData, specs: list[ModelSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, f"oom={specs[0].name}@16")
    job = PointJob(5, specs[0], 16, TrainConfig(batch_size=1, min_steps=2), DATA, task.fingerprint)
    with LocalExecutor(task, "cpu") as ex:
        ex.submit(job)
        (failed,) = [u for u in drain(ex, 1) if not isinstance(u, JobProgress | JobStarted)]
    assert isinstance(failed, JobFailed) and failed.cause == "oom"
    assert "micro-batch 1" in failed.reason


def test_cancel_stops_running_and_queued_jobs(
    task: TaskData, specs: list[ModelSpec], no_faults: None
) -> None:
    long = TrainConfig(batch_size=4, min_steps=400)
    with LocalExecutor(task, "cpu") as ex:
        ex.submit(PointJob(1, specs[0], 16, long, DATA, task.fingerprint))
        ex.submit(PointJob(2, specs[0], 16, long, DATA, task.fingerprint))
        while not any(isinstance(u, JobProgress) for u in ex.poll(0.1)):
            pass
        ex.cancel()
        ended = [u for u in drain(ex, 2) if isinstance(u, JobFailed)]
    assert sorted(u.job_id for u in ended) == [1, 2]
    assert {u.cause for u in ended} == {"cancelled"}


def test_a_job_for_another_task_is_refused(task: TaskData, specs: list[ModelSpec]) -> None:
    with LocalExecutor(task, "cpu") as ex:
        ex.submit(PointJob(1, specs[0], 0, TRAIN, DATA, "not-this-task"))
        (failed,) = [u for u in drain(ex, 1) if isinstance(u, JobFailed)]
    assert failed.cause == "error" and "not the driver's" in failed.reason


def test_ray_missing_is_one_line_naming_the_extra(
    task: TaskData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError) as err:
        make_executor(ExecutorConfig(backend="ray"), task, "cpu")
    assert str(err.value) == "--executor ray needs Ray: pip install 'lensllm-tui[ray]'"


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    """One real local Ray instance for the module, with two fake GPUs (Ray's num_gpus on init)."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 2**20,
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow  # the node-loss test below checks the same losses, after a death
def test_ray_local_instance_gives_the_local_losses_on_fake_gpus(
    task: TaskData,
    specs: list[ModelSpec],
    reference: dict[int, float],
    no_faults: None,
    ray_instance: object,
) -> None:
    ex = make_executor(ExecutorConfig(backend="ray", workers=2, threads=1), task, "cpu")
    with ex:
        for job in jobs_for(specs, task):
            ex.submit(job)
        updates = drain(ex, len(reference))
        devices = sorted(w.device for w in ex.workers())
    got = losses(updates)
    for job_id, loss in reference.items():
        assert math.isclose(got[job_id], loss, abs_tol=1e-5), job_id
    # one fake GPU each: Ray placed the two actors on different GPU ids
    assert [d.split(" gpu ")[1][:1] for d in devices] == ["0", "1"], devices


def test_a_ray_worker_killed_mid_point_is_retried_elsewhere_until_the_limit(
    task: TaskData,
    specs: list[ModelSpec],
    reference: dict[int, float],
    monkeypatch: pytest.MonkeyPatch,
    ray_instance: object,
) -> None:
    """Actor processes die mid-point as on a lost node: SIGKILL, from inside and from outside.

    gpt2-s@48 kills its own actor at its first step (the fault drill, first attempt
    only), so its one retry finishes on another actor. A long llama-s point has its
    actor killed by the driver on every attempt, so after the one retry allowed it
    fails as lost, naming the death. Every other point is untouched, and every
    finished point has the in-process loss.
    """
    doomed = PointJob(
        9, specs[1], 16, TrainConfig(batch_size=4, min_steps=400), DATA, task.fingerprint
    )
    jobs = [*jobs_for(specs, task), doomed]
    victim = next(j for j in jobs if j.spec == specs[0] and j.size == 48)
    monkeypatch.setenv(FAULTS_ENV, f"kill={victim.model}@{victim.size}")
    killed: list[tuple[int, str]] = []  # (attempt, worker) of the doomed job's kills

    def kill_doomed(ex: Executor, u: object) -> None:
        if not isinstance(u, JobProgress) or u.job_id != doomed.id:
            return
        slot = next(s for s in ex.slots if s.job is not None and s.job.id == doomed.id)
        if len(killed) < slot.job.attempt:  # once per attempt: later progress is stale
            killed.append((slot.job.attempt, slot.name))
            os.kill(slot.pid, signal.SIGKILL)  # type: ignore[attr-defined]

    ex = make_executor(ExecutorConfig(backend="ray", workers=2, threads=1, retries=1), task, "cpu")
    with ex:
        for job in jobs:
            ex.submit(job)
        updates = drain(ex, len(jobs), on_update=kill_doomed)
        ex.poll(0.1)  # the last dead actor is replaced on the next poll
        alive = {w.name for w in ex.workers() if w.alive}
    ran = {u.job_id: u.worker for u in updates if isinstance(u, JobDone)}
    retried = {u.job.id: u for u in updates if isinstance(u, JobRetried)}
    failed = {u.job_id: u for u in updates if isinstance(u, JobFailed)}
    # the self-killed point: one retry, on another actor, with the in-process loss
    again = retried[victim.id]
    assert again.job.attempt == 2 and "died" in again.reason and again.worker in again.reason
    assert ran[victim.id] != again.worker
    # the point killed from outside: retried once, then failed as lost
    assert [a for a, _ in killed] == [1, 2] and killed[0][1] != killed[1][1]
    assert retried[doomed.id].job.attempt == 2
    assert set(failed) == {doomed.id} and failed[doomed.id].cause == "lost"
    assert f"Ray worker {killed[1][1]}" in failed[doomed.id].reason
    got = losses(updates)
    assert set(got) == set(reference), "every other point finished"
    for job_id, loss in reference.items():
        assert math.isclose(got[job_id], loss, abs_tol=1e-5), job_id
    dead = {again.worker, *(name for _, name in killed)}
    assert len(dead) == 3 and len(alive) == 2 and not alive & dead, "fresh actors took their places"
