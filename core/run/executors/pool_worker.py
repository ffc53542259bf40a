"""The inside of one pool worker process: pin the device, then run jobs until told to stop.

Kept apart from the driver side (pool.py) because this is what a spawned GPU
worker imports first: it sets CUDA_VISIBLE_DEVICES before torch can initialise
CUDA, so the process sees exactly one GPU as ``cuda:0``. A CPU worker forked
from the preloaded forkserver has torch already; it takes the driver's
environment of its start, since the server's is that of the pool that started
it (a fault drill's variable, a test's cache). Every worker ignores SIGINT and
SIGTERM, since Ctrl-C in a terminal (and a SIGTERM sent to the process group)
reaches every process and cancelling is the driver's decision, sent as a
message: a worker killed by it would be retried as lost instead.

Two one-way pipes connect it to the driver. The first command is the task
(``("task", TaskData)``), sent once the run has read its data (or ``stop``, when the
run ended before that); then a listener thread reads commands
(``run``, ``cancel``, ``pause``, ``stop``); the main thread trains and is the only sender,
so progress, results and failures go out in order. When the driver's end
closes (the driver exited or was killed), the listener ends the process: there
is nobody left to report to, and an orphan must not keep a GPU busy.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from multiprocessing.connection import Connection

from core.run.executors.jobs import PointJob


def main(
    name: str,
    gpu: str | None,
    threads: int,
    commands: Connection,
    events: Connection,
    environ: dict[str, str],
) -> None:
    """A worker's entry point; ``gpu`` is the physical id it is pinned to, or None (CPU)."""
    os.environ.clear()
    os.environ.update(environ)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import torch

    from core.run.executors.execute import JobRunner
    from core.training.models import warm_imports

    torch.set_num_threads(threads)
    try:
        kind, task = commands.recv()
    except (EOFError, OSError):
        return  # the driver is gone before this worker could start
    if kind != "task":
        return  # stopped before the run had a task for it
    runner = JobRunner(task, name, "cuda" if gpu is not None else "cpu")
    jobs: queue.Queue[PointJob | None] = queue.Queue()
    cancel = threading.Event()
    hold = threading.Event()
    cancelled: set[int] = set()
    running: list[int] = []

    def listen() -> None:
        while True:
            try:
                kind, arg = commands.recv()
            except (EOFError, OSError):
                os._exit(0)  # the driver is gone
            if kind == "run":
                jobs.put(arg)
            elif kind == "cancel":
                cancelled.add(arg)
                if running and running[0] == arg:
                    cancel.set()
            elif kind == "pause":
                if arg:
                    hold.set()
                else:
                    hold.clear()
            elif kind == "stop":
                cancel.set()
                jobs.put(None)
                return

    threading.Thread(target=listen, name=f"{name} commands", daemon=True).start()
    events.send(("ready", os.getpid()))
    warm_imports()  # no job is here yet (a forked worker has them from the forkserver)
    while (job := jobs.get()) is not None:
        cancel.clear()
        running[:] = [job.id]
        if job.id in cancelled:  # the cancel came before the job started
            cancel.set()
        final = runner.run(job, cancel, events.send, hold)
        running.clear()
        events.send(final)
    # Told to stop: every result is sent (a pipe send returns once written) and the
    # worker holds nothing else, so it skips the interpreter's teardown, which with
    # torch loaded took about 2 s that the driver waited through at every run's end.
    os._exit(0)
