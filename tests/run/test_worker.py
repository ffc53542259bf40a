"""The worker thread the runner polls: progress forwarded once each, errors kept, pause, stop."""

from __future__ import annotations

import threading
import time

import pytest

from core.events import PointProgress
from core.run.worker import Controls, polled


def drive(gen):
    """Run a polled() generator to the end: (events yielded, outcome returned)."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_reports_are_forwarded_once_each_and_the_result_returned() -> None:
    def job(report):
        for step in (1, 2, 3):
            report(step, 3, 1.0 / step)
            time.sleep(0.12)  # slower than the poll: every report is seen
        return "done"

    events, outcome = drive(polled(job, Controls.of(None, None), name="t", progress=("m", 200)))
    assert outcome.result == "done" and outcome.error is None
    assert [e.step for e in events] == [1, 2, 3]
    assert all(isinstance(e, PointProgress) and (e.model, e.size) == ("m", 200) for e in events)


def test_an_error_is_an_outcome_and_non_point_work_reports_nothing() -> None:
    def job(report):
        report(1, 1, 0.5)
        time.sleep(0.1)
        raise RuntimeError("CUDA out of memory")

    events, outcome = drive(polled(job, Controls.of(None, None), name="t"))
    assert events == [] and isinstance(outcome.error, RuntimeError)


def test_cancel_sets_stop_for_the_job() -> None:
    controls = Controls.of(None, None)

    def job(report):
        controls.cancel.set()
        assert controls.stop.wait(5), "stop was never set"
        return "stopped"

    _, outcome = drive(polled(job, controls, name="t"))
    assert outcome.result == "stopped"


def test_nothing_starts_while_paused() -> None:
    controls = Controls.of(None, threading.Event())
    controls.pause.set()
    started = threading.Event()
    threading.Timer(0.4, controls.pause.clear).start()
    t0 = time.monotonic()
    _, outcome = drive(polled(lambda report: started.set() or 1, controls, name="t"))
    assert outcome.result == 1 and time.monotonic() - t0 >= 0.35


def test_closing_the_generator_stops_the_job() -> None:
    controls = Controls.of(None, None)
    release = threading.Event()

    def job(report):
        while not controls.stop.is_set():
            report(1, 10, 0.0)
            time.sleep(0.01)
        release.set()

    gen = polled(job, controls, name="t", progress=("m", 1))
    assert isinstance(next(gen), PointProgress)
    gen.close()
    assert release.is_set()
    with pytest.raises(StopIteration):
        next(gen)
