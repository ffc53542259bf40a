"""The pool executor: one long-lived spawned process per device, jobs over pipes.

Each worker (pool_worker.main) is spawned, not forked: a fork of a driver that
has touched CUDA or started threads is unsafe, and spawn gives every worker a
clean interpreter pinned to its GPU (CUDA_VISIBLE_DEVICES) or, on CPU, to its own
torch thread count. A worker lives for the whole run and keeps the task and its
last model loaded between points.

The task (the examples, hundreds of kB pickled once) goes to each worker down
its command pipe, from a thread, not in the spawn arguments: a spawn blocks
until the child has read its arguments, which a child does only after importing
torch, so workers would start one after the other, and a child that died
before reading them would block the driver for good. It also lets the workers
be spawned before the task exists (``load`` sends it): they import torch while
the driver reads the data. A worker still waiting for its task when the run
stops (bad data, an error in the checks) is killed at once: it holds nothing.

Workers train in their main thread, where torch's OpenMP threads spin while
they wait for each other; on a machine with more busy threads than cores that
made a 2-thread worker's point 4-5x slower than the same point in process
(9.6 s against 1.8 s on 2 shared cores), so unless the user set it, workers
start with OMP_WAIT_POLICY=PASSIVE (it must be in the environment before the
child loads torch). One-thread CPU workers and GPU workers are not affected.

Every worker has its own pair of pipes and the driver waits on them together
with the processes' sentinels (multiprocessing.connection.wait). Nothing is
shared between workers, so a worker killed mid-write (SIGKILL, the kernel's OOM
killer) cannot corrupt or lock up the others' channel, as it could a shared
multiprocessing.Queue. A dead worker's job is reported ``lost`` (the base class
retries it) and the worker is replaced by a fresh process on the same device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import threading
from multiprocessing.connection import Connection, wait
from typing import Any

from core.run.executors import pool_worker
from core.run.executors.base import Executor, Slot
from core.run.executors.execute import portable_task
from core.run.executors.jobs import JobDone, JobFailed, JobProgress, PointJob

OMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Set for the workers unless already set (see the module docstring)."""
STOP_SECONDS = 10.0
"""How long a worker gets to finish its current step and exit before it is killed."""


@dataclasses.dataclass
class _Worker(Slot):
    gpu: str | None = None
    process: Any = None
    commands: Connection | None = None
    events: Connection | None = None
    pid: int | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    """Held while a message goes down ``commands`` (the task's sender thread, the driver)."""


class PoolExecutor(Executor):
    """``workers`` spawned processes; worker i is pinned to ``gpus[i % len(gpus)]``, or CPU."""

    name = "pool"

    def __init__(
        self,
        task: Any | None,
        workers: int,
        *,
        gpus: list[str] | None = None,
        threads: int = 1,
        retries: int = 2,
    ) -> None:
        super().__init__(retries)
        self._ctx = mp.get_context("spawn")
        for key, value in OMP_ENV.items():  # children inherit it; torch here has read its own
            os.environ.setdefault(key, value)
        self._task: bytes | None = None
        self._threads = threads
        self._count = 0
        gpus = list(gpus or [])
        for i in range(max(1, workers)):
            self.slots.append(self._spawn(gpus[i % len(gpus)] if gpus else None))
        if task is not None:
            self.load(task)

    def _load(self, task: object) -> None:
        self._task = pickle.dumps(("task", portable_task(task)), pickle.HIGHEST_PROTOCOL)
        for w in self.slots:
            if isinstance(w, _Worker) and w.alive:
                self._send_task(w)

    def _send_task(self, w: _Worker) -> None:
        task = threading.Thread(target=self._send, args=(w, self._task), name=f"{w.name} task")
        task.daemon = True
        task.start()

    def _spawn(self, gpu: str | None) -> _Worker:
        name = f"w{self._count}"
        self._count += 1
        cmd_read, cmd_write = self._ctx.Pipe(duplex=False)
        evt_read, evt_write = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=pool_worker.main,
            args=(name, gpu, self._threads, cmd_read, evt_write),
            name=f"lensllm-tui {name}",
            daemon=True,
        )
        process.start()
        cmd_read.close()  # the child's ends: closing ours lets EOF reach each side
        evt_write.close()
        device = f"cuda:{gpu}" if gpu is not None else "cpu"
        w = _Worker(
            name, device, ready=False, gpu=gpu, process=process, commands=cmd_write, events=evt_read
        )
        if self._task is not None:
            self._send_task(w)
        return w

    @staticmethod
    def _send(w: _Worker, message: object) -> None:
        """One message down the worker's command pipe (bytes: already pickled)."""
        with w.lock, contextlib.suppress(OSError):  # if it died, its sentinel says so
            assert w.commands is not None
            if isinstance(message, bytes):
                w.commands.send_bytes(message)
            else:
                w.commands.send(message)

    def _start(self, slot: Slot, job: PointJob) -> None:
        assert isinstance(slot, _Worker)
        self._send(slot, ("run", job))  # if it died, its sentinel reports the job lost

    def _stop(self, slot: Slot, job: PointJob) -> None:
        assert isinstance(slot, _Worker)
        self._send(slot, ("cancel", job.id))

    def _pause(self, paused: bool) -> None:
        for w in self.slots:
            if isinstance(w, _Worker) and w.alive:
                self._send(w, ("pause", paused))

    def _collect(self, timeout: float) -> list[JobProgress | JobDone | JobFailed]:
        self._replace_dead()
        live = [w for w in self.slots if isinstance(w, _Worker) and w.alive]
        handles = [w.events for w in live] + [w.process.sentinel for w in live]
        ready = set(wait(handles, timeout)) if handles else set()
        out: list[JobProgress | JobDone | JobFailed] = []
        for w in live:
            got = self._drain(w) if w.events in ready or w.process.sentinel in ready else []
            out += got
            if w.process.sentinel in ready or not w.process.is_alive():
                finished = {m.job_id for m in got if isinstance(m, JobDone | JobFailed)}
                out += self._died(w, finished)
        return out

    def _drain(self, w: _Worker) -> list[JobProgress | JobDone | JobFailed]:
        out: list[JobProgress | JobDone | JobFailed] = []
        assert w.events is not None
        try:
            while w.events.poll():
                msg = w.events.recv()
                if isinstance(msg, tuple) and msg[0] == "ready":
                    w.ready, w.started, w.pid = True, True, int(msg[1])
                else:
                    out.append(msg)
        except (EOFError, OSError):
            pass  # the process is gone; its sentinel says so
        return out

    def _died(self, w: _Worker, finished: set[int]) -> list[JobFailed]:
        w.process.join(1.0)
        code = w.process.exitcode
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exit {code}"
        )
        w.alive, w.ready = False, False
        self.death = f"worker {w.name} (pid {w.pid or w.process.pid}, {w.device}) died: {how}"
        if w.job is None or w.job.id in finished:  # it sent its result before it died
            return []
        return [JobFailed(w.job.id, w.name, self.death, "lost")]

    def _replace_dead(self) -> None:
        for i, w in enumerate(self.slots):
            if isinstance(w, _Worker) and not w.alive and w.job is None and w.started:
                self._close_pipes(w)
                self.slots[i] = self._spawn(w.gpu)

    def _shutdown(self) -> None:
        workers = [w for w in self.slots if isinstance(w, _Worker)]
        for w in workers:
            if self._task is None:  # still starting, never given work: nothing to wait for
                w.process.kill()
            elif w.alive:
                self._send(w, ("stop", None))
        for w in workers:
            w.process.join(STOP_SECONDS)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(2.0)
            w.alive = False
            self._close_pipes(w)

    @staticmethod
    def _close_pipes(w: _Worker) -> None:
        with w.lock:  # not under a send: its descriptor could be reused by the next pipe
            for conn in (w.commands, w.events):
                if conn is not None:
                    conn.close()
