"""The in-process executor: one worker thread in the driver, today's single-device path.

Training runs in a helper thread so the driver's generator can keep polling
(progress by time, cancel between steps); there is one worker, so at most one
point runs at a time and torch keeps its default thread count.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from core.run.executors.base import Executor, Slot
from core.run.executors.execute import JobRunner
from core.run.executors.jobs import JobDone, JobFailed, JobProgress, PointJob

LOCAL_WORKER = "local"


class LocalExecutor(Executor):
    """Jobs run one at a time in a thread of this process, on ``device``."""

    name = "local"

    def __init__(self, task: Any | None, device: str = "auto", retries: int = 2) -> None:
        from core.training.models import resolve_device

        super().__init__(retries)
        self._device = device
        self.runner: JobRunner | None = None
        self.slots = [Slot(LOCAL_WORKER, str(resolve_device(device)), started=True)]
        self._updates: queue.Queue[JobProgress | JobDone | JobFailed] = queue.Queue()
        self._cancel = threading.Event()
        self._hold = threading.Event()
        self._thread: threading.Thread | None = None
        if task is not None:
            self.load(task)

    def _load(self, task: object) -> None:
        self.runner = JobRunner(task, LOCAL_WORKER, self._device, in_driver=True)

    def _start(self, slot: Slot, job: PointJob) -> None:
        self._cancel.clear()
        runner = self.runner
        assert runner is not None  # the base class starts no job before load

        def work() -> None:
            self._updates.put(runner.run(job, self._cancel, self._updates.put, self._hold))

        self._thread = threading.Thread(target=work, name=f"train {job.label}", daemon=True)
        self._thread.start()

    def _collect(self, timeout: float) -> list[JobProgress | JobDone | JobFailed]:
        out = []
        try:
            out.append(
                self._updates.get(timeout=timeout) if timeout > 0 else self._updates.get_nowait()
            )
            while True:
                out.append(self._updates.get_nowait())
        except queue.Empty:
            return out

    def _stop(self, slot: Slot, job: PointJob) -> None:
        self._cancel.set()

    def _pause(self, paused: bool) -> None:
        if paused:
            self._hold.set()
        else:
            self._hold.clear()

    def _shutdown(self) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
        self.runner = None  # frees the loaded model
