"""The run's one loop: the policy picks points, the executor trains them, the driver records them.

While a worker is free the loop asks the policy for the next (model, size) and
hands it to the executor (core/run/executors) as a job; stored points are
reused at once without a worker. Results come back in completion order; each
is written to the store first, then the record, the refit and the policy's
``observe``, all here in the driver, which is the only writer of the store and
the only reader of the policy. With one worker (the local executor) this is
exactly the sequential loop: ask, train, observe, ask again.

A model is resolved on its first point and its NTK probe (reused from the
store or run as a job of its own) starts with it; when the spectrum arrives
after some of the model's points, the model is refitted again so its law uses
it. Reused points are refitted together when the run moves to another model
(or ends), so a fully reused model costs one refit, not one per point.

The refit comes after the free workers have their next jobs, never between a
result and the next submission: no policy decision reads it (the adaptive
policy keeps its own predictions), and on the tiny zoo it took about as long
as a small point, so doing it first left a worker idle for every point. The
models whose points came in meanwhile are refitted together, once.

Cancel (or the consumer closing the generator) cancels every job; points that
finish meanwhile are still stored. While paused, no new point starts and the
running ones hold at their next step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import DiskError
from core.events import (
    Event,
    ModelEliminated,
    ModelFailed,
    PointFailed,
    PointProgress,
    PointRetried,
    PointStarted,
    WorkersUpdated,
)
from core.policy.ladder import Policy
from core.policy.warm_start import ZeroShotFirst
from core.run.account import policy_account
from core.run.candidate import Candidate, Measurer, ModelFailure
from core.run.executors import (
    Executor,
    JobDone,
    JobFailed,
    JobProgress,
    JobRetried,
    JobStarted,
    JobUpdate,
)
from core.run.records import ModelRecord, disk_failure
from core.run.refit import refit

WORKERS_SECONDS = 0.5
"""Least time between WorkersUpdated events while any worker is busy."""


@dataclass
class _Flight:
    cand: Candidate
    size: int
    """The point's size; -1 for an NTK probe."""
    started: bool = False


class Scheduler:
    """Runs ``policy``'s points on ``executor`` and yields the run's events (see module docs)."""

    def __init__(self, measurer: Measurer, policy: Policy, total: int, executor: Executor) -> None:
        self.m = measurer
        self.policy = policy
        self.total = total
        self.executor = executor
        self.taken = 0
        self.started = 0
        """Points started (reused or on a worker): the index PointStarted carries."""
        self.reported = 0
        self.ids = 0
        self.flying: dict[int, _Flight] = {}
        self.cands: dict[str, Candidate] = {}
        self.pending: str | None = None
        """A model whose reused points are not refitted yet."""
        self.stale: dict[str, None] = {}
        """Models with results since their last refit, in arrival order (a set that keeps order)."""
        self.rerank = False
        """A failed model is still in the ranking: refit to drop it."""
        self.paused = False
        self.shown = 0.0

    def run(self) -> Iterator[Event]:
        controls = self.m.controls
        try:
            while True:
                if controls.cancel.is_set():
                    yield from self._cancel()
                    break
                yield from self._pause(controls.pause.is_set())
                asked = False
                while not self.paused and self.executor.wants_work():
                    step = self.policy.next_point()
                    yield from self._eliminations()
                    if step is None:
                        break
                    asked = True
                    self.taken += 1
                    yield from self._one(*step)
                    if controls.cancel.is_set():
                        break
                yield from self._refit()  # the workers are fed: now the driver's own work
                if not self.flying and not asked and not self.paused:
                    break  # nothing in flight and the policy has nothing more: done
                if self.flying or self.paused:
                    for update in self.executor.poll(0.05):
                        yield from self._update(update)
                    yield from self._workers()
            self._settle()
            yield from self._refit()
        finally:
            if self.flying:
                self.executor.cancel()

    # --- starting points --------------------------------------------------------

    def _one(self, name: str, size: int) -> Iterator[Event]:
        if name != self.pending:
            self._settle()
        rec = self.m.record.models[name]
        try:
            cand = yield from self._enter(name)
            reused = self.m.reuse(cand, size)
            if reused is None:
                self._submit(cand, size)  # PointStarted when a worker takes it
                return
            yield self._started(name, size)
            self.pending = name
            yield reused
            self.m.record.write()
        except ModelFailure as failure:
            yield from self._fail(rec, str(failure))
        yield from self._observe(rec, size)

    def _enter(self, name: str) -> Iterator[Event]:
        """The model's Candidate: resolved, and its NTK probe started, on its first point."""
        if name in self.cands:
            return self.cands[name]
        rec = self.m.record.models[name]
        if rec.failed is not None:
            raise ModelFailure(rec.failed)
        cand = self.m.resolve(name)
        self.cands[name] = cand
        if self.m.config.ntk.enabled and not self.m.controls.cancel.is_set():
            stored = self.m.stored_spectrum(cand)
            if stored is not None:
                yield stored
            else:
                self.ids += 1
                self.flying[self.ids] = _Flight(cand, -1)
                self.executor.submit(self.m.ntk_job(cand, self.ids))
        return cand

    def _submit(self, cand: Candidate, size: int) -> None:
        self.ids += 1
        self.flying[self.ids] = _Flight(cand, size)
        self.executor.submit(self.m.point_job(cand, size, self.ids))

    # --- what comes back --------------------------------------------------------

    def _update(self, update: JobUpdate) -> Iterator[Event]:
        if isinstance(update, JobRetried):
            flight = self.flying.get(update.job.id)
            if flight is not None and flight.size >= 0:
                yield PointRetried(
                    flight.cand.rec.model,
                    flight.size,
                    update.job.attempt,
                    update.reason,
                    update.worker,
                    update.job.micro_batch_size,
                )
            return
        flight = self.flying.get(update.job_id)
        if flight is None:
            return
        name, size = flight.cand.rec.model, flight.size
        if isinstance(update, JobStarted):
            if size >= 0 and not flight.started:
                flight.started = True
                yield self._started(name, size)
            return
        if isinstance(update, JobProgress):
            if size >= 0:
                yield PointProgress(name, size, update.step, update.total_steps, update.train_loss)
            return
        del self.flying[update.job_id]
        if isinstance(update, JobFailed) and update.cause == "disk":
            raise DiskError(disk_failure(update.reason, update.worker))
        if size < 0:
            yield from self._probed(flight.cand, update)
        elif isinstance(update, JobDone):
            yield from self._trained(flight.cand, size, update)
        elif update.cause != "cancelled" and not self.m.controls.cancel.is_set():
            yield PointFailed(name, size, update.reason)
            rec = flight.cand.rec
            if rec.failed is None:
                yield from self._fail(rec, f"point at size {size} failed: {update.reason}")
            yield from self._observe(rec, size)

    def _trained(self, cand: Candidate, size: int, done: JobDone) -> Iterator[Event]:
        finished = self.m.trained(cand, size, done.result, done.worker)  # stored first
        rec = cand.rec
        if rec.failed is not None:
            return  # kept in the store; the model is out of this run
        if self.pending == rec.model:
            self.pending = None
        yield finished
        yield from self._observe(rec, size)
        self.stale[rec.model] = None
        self.m.record.write()  # results.json has the point now; the refit rewrites it after

    def _probed(self, cand: Candidate, update: JobDone | JobFailed) -> Iterator[Event]:
        if isinstance(update, JobFailed) and update.cause == "cancelled":
            return
        result = update.result if isinstance(update, JobDone) else None
        error = update.reason if isinstance(update, JobFailed) else None
        yield self.m.probed(cand, result, error)
        if cand.rec.failed is None and cand.rec.points and cand.rec.spectrum is not None:
            self.stale[cand.rec.model] = None
        self.m.record.write()

    def _started(self, name: str, size: int) -> PointStarted:
        self.started += 1
        return PointStarted(name, size, self.started + self.policy.dropped, self.total)

    def _observe(self, rec: ModelRecord, size: int) -> Iterator[Event]:
        """Tell the policy what the point measured (or that the model is out)."""
        point = rec.point(size)
        if rec.failed is not None or point is None:
            self.policy.fail(rec.model, rec.failed or f"no point at size {size}")
            return
        tokens = point.measured.train_tokens
        params = rec.params or 1.0
        charged = 6.0 * params * tokens if tokens > 0 else None
        if size == 0:
            charged = 0.0
        self.policy.observe(rec.model, size, point.measured.loss, cost=charged)
        if isinstance(self.policy, ZeroShotFirst) and self.policy.policy is not None:
            self.m.record.policy = policy_account(self.policy.policy, self.m.config, running=True)
            self.m.record.write()
        yield from self._eliminations()

    def _eliminations(self) -> Iterator[Event]:
        # Racing eliminates in observe(), successive halving in next_point(): report
        # every elimination the policy has recorded since the last call, wherever made.
        made = self.policy.eliminated
        for e in made[self.reported :]:
            yield ModelEliminated(e.model, e.reason, e.compute_saved)
        self.reported = len(made)

    def _settle(self) -> None:
        """The run moves on from a model whose points were reused: it is due a refit now."""
        name, self.pending = self.pending, None
        if name is not None:
            self.stale[name] = None

    def _refit(self) -> Iterator[Event]:
        """One refit for every model with results since the last (and for a failure)."""
        records = self.m.record.models
        stale = [n for n in self.stale if records[n].failed is None and n != self.pending]
        if not stale and not self.rerank:
            return
        self.stale = {n: None for n in self.stale if n == self.pending}
        self.rerank = False
        yield from refit(self.m.config, self.m.record, stale)
        self.m.record.write()

    def _fail(self, rec: ModelRecord, reason: str) -> Iterator[Event]:
        rec.failed = reason
        if self.pending == rec.model:
            self.pending = None
        for job_id, flight in self.flying.items():
            if flight.cand.rec is rec:
                self.executor.cancel(job_id)
        yield ModelFailed(rec.model, reason)
        if any(e.model == rec.model for e in self.m.record.ranking):
            self.rerank = True  # drop it from the ranking at the next refit
        self.m.record.write()

    # --- controls and the workers panel ----------------------------------------

    def _cancel(self) -> Iterator[Event]:
        """Cancel every job and wait for them; a point that finished meanwhile is stored."""
        self.executor.cancel()
        while self.flying:
            for update in self.executor.poll(0.1):
                if isinstance(update, JobDone) and update.job_id in self.flying:
                    flight = self.flying.pop(update.job_id)
                    if flight.size >= 0:
                        self.m.trained(flight.cand, flight.size, update.result, update.worker)
                elif isinstance(update, JobFailed):
                    self.flying.pop(update.job_id, None)
        yield from self._workers(force=True)

    def _pause(self, paused: bool) -> Iterator[Event]:
        if paused != self.paused:
            self.paused = paused
            self.executor.pause(paused)
            yield from self._workers(force=True)
        if paused and not self.flying:
            time.sleep(0.05)  # paused between points: nothing to poll

    def _workers(self, force: bool = False) -> Iterator[Event]:
        now = time.monotonic()
        if force or (self.flying and now - self.shown >= WORKERS_SECONDS):
            self.shown = now
            yield WorkersUpdated(self.executor.name, self.executor.workers())
