"""The pool executor: one long-lived worker process per device, jobs over pipes.

A worker is never forked from the driver: a fork of a process that has touched
CUDA or started threads (the dashboard's, the pipes' senders) is unsafe. GPU
workers are spawned, each a clean interpreter pinned to its GPU
(CUDA_VISIBLE_DEVICES) before it imports torch. CPU workers (on Linux) fork
from multiprocessing's forkserver, a clean single-threaded process spawned once that
imports torch, transformers' model stack and the job code before it forks
(``preload``): on a 2-core machine three processes each importing torch were
most of a pool run's start-up (the first point came at 6 s against 3.6 s in
process), and the server pays those imports once, beside the driver's checks.
The forkserver is spawned with the driver's environment of that moment and
lives as long as the driver, so each worker also gets the driver's environment
of its own start (``pool_worker.main``). A worker lives for the whole run and
keeps the task and its last model loaded between points.

A worker's process is started from a thread (``_launch``), which then sends it
the task (the examples, hundreds of kB pickled once) down its command pipe: a
forkserver start waits until the server has done its imports, a spawn until
the child has read its arguments, and a child that died before either would
block the driver for good. So the workers can be started before the task exists
(``load`` sends it) and come up while the driver reads the data and checks the
candidates. A worker still waiting for its task when the run stops (bad data,
an error in the checks) is killed at once: it holds nothing.

Workers train in their main thread, where torch's OpenMP threads spin while
they wait for each other; on a machine with more busy threads than cores that
made a 2-thread worker's point 4-5x slower than the same point in process
(9.6 s against 1.8 s on 2 shared cores), so unless the user set it, workers
start with OMP_WAIT_POLICY=PASSIVE (it must be in the environment before the
process loads torch). One-thread CPU workers and GPU workers are not affected.

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
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any

from core.errors import one_line
from core.run.executors import pool_worker
from core.run.executors.base import Executor, Slot
from core.run.executors.execute import portable_task
from core.run.executors.jobs import JobDone, JobFailed, JobProgress, PointJob

OMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Set for the workers unless already set (see the module docstring)."""
STOP_SECONDS = 10.0
"""How long a worker gets to finish its current step and exit before it is killed."""
PRELOAD = ["core.run.executors.preload"]
"""What the forkserver imports before it forks CPU workers (see preload.py)."""


def worker_context(gpus: list[str]) -> BaseContext:
    """How workers start: forked from a preloaded forkserver on CPU, spawned on GPUs.

    Only on Linux: Windows has no forkserver, and on macOS a fork of a process
    that has loaded system frameworks (torch's Accelerate) is not safe, which is
    why Python spawns there by default.
    """
    if gpus or not sys.platform.startswith("linux"):
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # read when the server starts; once per driver
    return ctx


@dataclasses.dataclass
class _Worker(Slot):
    gpu: str | None = None
    process: Any = None
    commands: Connection | None = None
    events: Connection | None = None
    pid: int | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    """Held while a message goes down ``commands`` (the launcher thread, the driver)."""
    launched: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set once its process started (or failed to): only then has it a sentinel."""
    launcher: threading.Thread | None = None


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
        gpus = list(gpus or [])
        for key, value in OMP_ENV.items():  # before a forkserver or child loads torch
            os.environ.setdefault(key, value)
        self._ctx = worker_context(gpus)
        self._task: bytes | None = None
        self._given = threading.Event()
        """Set by ``load`` (the task is there to send) or by ``close`` (none will come)."""
        self._launch_lock = threading.Lock()
        self._closing = False
        """Set by ``close`` under ``_launch_lock``: a worker launched after that is its
        launcher's to kill, one launched before is close's (never both: two joins of
        one forkserver child race for its exit status)."""
        self._threads = threads
        self._count = 0
        for i in range(max(1, workers)):
            self.slots.append(self._spawn(gpus[i % len(gpus)] if gpus else None))
        if task is not None:
            self.load(task)

    def _load(self, task: object) -> None:
        self._task = pickle.dumps(("task", portable_task(task)), pickle.HIGHEST_PROTOCOL)
        self._given.set()  # each worker's launcher sends it once its process is up

    def _spawn(self, gpu: str | None) -> _Worker:
        name = f"w{self._count}"
        self._count += 1
        cmd_read, cmd_write = self._ctx.Pipe(duplex=False)
        evt_read, evt_write = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=pool_worker.main,
            args=(name, gpu, self._threads, cmd_read, evt_write, dict(os.environ)),
            name=f"lensllm-tui {name}",
            daemon=True,
        )
        device = f"cuda:{gpu}" if gpu is not None else "cpu"
        w = _Worker(
            name, device, ready=False, gpu=gpu, process=process, commands=cmd_write, events=evt_read
        )
        w.launcher = threading.Thread(
            target=self._launch, args=(w, cmd_read, evt_write), name=f"{name} launch", daemon=True
        )
        w.launcher.start()
        return w

    def _launch(self, w: _Worker, cmd_read: Connection, evt_write: Connection) -> None:
        """Start ``w``'s process, then send it the task when there is one (a thread per worker)."""
        try:
            w.process.start()
        except Exception as exc:  # no process (out of memory, no forkserver): it reports dead
            self.death = f"worker {w.name} ({w.device}) could not start: {one_line(exc)}"
        finally:
            cmd_read.close()  # the child's ends: closing ours lets EOF reach each side
            evt_write.close()
        with self._launch_lock:  # against close: either it sees this worker or we see it closing
            w.launched.set()
            closed = self._closing
        if w.process.pid is None:
            w.alive = False
            return
        if closed:  # the pool closed while this one started: it holds nothing
            w.process.kill()
            w.process.join(2.0)
            self._close_pipes(w)
            return
        self._given.wait()
        if self._task is not None:
            self._send(w, self._task)

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
        live = [w for w in self.slots if isinstance(w, _Worker) and w.alive and w.launched.is_set()]
        handles = [w.events for w in live] + [w.process.sentinel for w in live]
        if handles:
            ready = set(wait(handles, timeout))
        else:  # every worker is still starting
            ready = set()
            time.sleep(timeout)
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
        self._given.set()  # launchers waiting for the task: none will come
        with self._launch_lock:  # a worker not launched yet is killed by its launcher
            self._closing = True
            workers = [w for w in self.slots if isinstance(w, _Worker) and w.launched.is_set()]
        workers = [w for w in workers if w.process.pid is not None]
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
