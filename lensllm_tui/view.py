"""One fold of the engine's event stream, rendered by both front ends.

The dashboard (screens/dashboard.py and its widgets) and the headless console
(headless.py) each feed every event to :meth:`RunView.apply` and draw from the
result, so they cannot disagree on what a run has done: points settled and
still to come, eliminations and the compute they saved, fits, phases, the
ranking. Times come from the events themselves (never the wall clock), so a
replayed stream renders the same elapsed time and ETA every time.

Plain Python over core.events (no textual, no rich; import-linter forbids textual
here), so a test can drive it without a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import events as ev


@dataclass
class ModelView:
    """What the run has shown about one candidate model so far."""

    name: str
    points: dict[int, float] = field(default_factory=dict)
    """Finished points, in the order they came: training samples -> held-out test loss."""
    planned: int = 0
    """Points this model is still expected to settle, plus those it has settled."""
    failed_points: int = 0
    flops: float = 0.0
    status: str = "queued"
    law: str = ""
    """The law last fitted ('' before any fit)."""
    params: dict[str, float] = field(default_factory=dict)
    curve: tuple[tuple[float, float], ...] = ()
    """The fitted law as the engine sampled it, (samples, loss), when it did."""
    fit_ok: bool = False
    fit_reason: str = ""
    predicted: float = math.nan
    low: float = math.nan
    high: float = math.nan
    path: tuple[tuple[float, float, float, float], ...] = ()
    """The predicted median and interval from the budget to the target (RankEntry.path)."""
    rank: int | None = None
    transition: int | None = None
    transition_confidence: float = math.nan
    phase_known: bool = False
    failed: str = ""
    eliminated: str = ""
    compute_saved: float = 0.0
    """Ladder compute (FLOPs) the adaptive policy saved by eliminating this model."""
    ntk: ev.NTKComputed | None = None

    @property
    def phase(self) -> str:
        """'power' once a transition is found, 'pre-power' while not, '' before any call."""
        if not self.phase_known:
            return ""
        return "power" if self.transition is not None else "pre-power"

    @property
    def settled(self) -> int:
        """Points finished or failed: the ones that will not run again."""
        return len(self.points) + self.failed_points

    @property
    def stopped(self) -> bool:
        """No more points will come: failed or eliminated."""
        return bool(self.failed or self.eliminated)


@dataclass
class RunView:
    """Everything a front end shows about a run, updated one event at a time.

    Counting: ``total_points`` is what the run will settle (finish or fail).
    It starts at RunStarted's plan and shrinks when a model stops early (it
    failed, or the adaptive policy eliminated it) and when the policy stops,
    so ``settled_points`` reaches ``total_points`` when the run ends instead of
    jumping over the points that will never come.
    """

    models: dict[str, ModelView] = field(default_factory=dict)
    sizes: tuple[int, ...] = ()
    target: int = 0
    out_dir: str = ""
    dataset: str = ""
    warnings: tuple[str, ...] = ()
    total_points: int = 0
    done_points: int = 0
    """Points finished, trained here or reused from the store."""
    failed_points: int = 0
    started_at: float | None = None
    last_time: float | None = None
    current: tuple[str, int] | None = None
    current_index: int = 0
    step: int = 0
    total_steps: int = 0
    train_loss: float = math.nan
    phase: str = "waiting"
    """waiting, running, paused, cancelling, finished, cancelled or error."""
    message: str = ""
    confidence: float = math.nan
    seconds_spent: float = 0.0
    samples_spent: int = 0
    ranking: tuple[ev.RankEntry, ...] = ()
    kept: int | None = None
    """Finished points the engine says are safe in the store, when it says."""
    stopped: ev.PolicyStopped | None = None
    """The adaptive policy's account once it stopped: why, what it spent and saved."""
    finished: ev.RunFinished | None = None
    executor: str = ""
    """The executor running the points (``local``, ``pool``, ``ray``), once it reported."""
    workers: tuple[ev.WorkerStatus, ...] = ()
    """Each worker's device and current job, as the executor last reported them."""
    retries: int = 0
    _early: ev.PointProgress | None = field(default=None, repr=False)

    def model(self, name: str) -> ModelView:
        if name not in self.models:
            self.models[name] = ModelView(name)
        return self.models[name]

    @property
    def settled_points(self) -> int:
        return self.done_points + self.failed_points

    @property
    def policy(self) -> str:
        """The policy's one-line account ('' until it stopped)."""
        return self.stopped.summary() if self.stopped is not None else ""

    @property
    def compute_saved(self) -> float:
        """FLOPs of ladder compute the eliminations so far have saved."""
        return sum(m.compute_saved for m in self.models.values() if m.eliminated)

    @property
    def eliminated(self) -> dict[str, str]:
        """Eliminated model -> why, in the order the models were listed."""
        return {m.name: m.eliminated for m in self.models.values() if m.eliminated}

    @property
    def active(self) -> bool:
        return self.phase in ("running", "paused", "cancelling")

    @property
    def elapsed(self) -> float:
        if self.started_at is None or self.last_time is None:
            return 0.0
        return max(0.0, self.last_time - self.started_at)

    def eta(self) -> float | None:
        """Seconds left, from the measured cost per training sample of finished points.

        Points grow geometrically, so points-left times mean-point-time would be
        badly low; the remaining samples times seconds-per-sample is not.
        """
        if self.samples_spent <= 0 or self.seconds_spent <= 0:
            return None
        left = 0
        for m in self.models.values():
            if m.stopped:
                continue
            left += sum(s for s in self.sizes if s not in m.points)
        return left * self.seconds_spent / self.samples_spent

    def apply(self, event: ev.Event) -> None:
        """Fold one engine event into the view."""
        t = getattr(event, "time", None)
        if isinstance(t, int | float):
            self.last_time = t
        fold = _FOLDS.get(type(event))
        if fold is not None:
            fold(self, event)

    # One method per event type; _FOLDS below maps each type to its method.
    def _run_started(self, event: ev.RunStarted) -> None:
        self.sizes = tuple(event.sizes)
        self.target = event.target
        self.out_dir = event.out_dir
        self.dataset = event.dataset
        self.warnings = tuple(event.warnings)
        self.total_points = event.total_points
        self.started_at = event.time
        self.phase = "running"
        per_model = event.total_points // max(len(event.models), 1)
        for name in event.models:
            self.model(name).planned = per_model

    def _point_started(self, event: ev.PointStarted) -> None:
        self.current = (event.model, event.size)
        self.current_index = event.index
        self.step, self.total_steps, self.train_loss = 0, 0, math.nan
        self.model(event.model).status = f"training {event.size}"
        early = self._early
        if early is not None and (early.model, early.size) == self.current:
            self._early = None
            self._point_progress(early)

    def _point_progress(self, event: ev.PointProgress) -> None:
        if self.current == (event.model, event.size):
            self.step, self.total_steps = event.step, event.total_steps
            self.train_loss = event.train_loss
        else:
            # Coalesced progress can overtake its PointStarted; keep it for then.
            self._early = event

    def _point_finished(self, event: ev.PointFinished) -> None:
        m = self.model(event.model)
        m.points[event.size] = event.loss
        m.flops += event.flops
        m.status = "reused" if event.reused else "trained"
        early = self._early
        if early is not None and (early.model, early.size) == (event.model, event.size):
            self._early = None
        self.done_points += 1
        if not event.reused and event.size > 0:
            self.seconds_spent += event.seconds
            self.samples_spent += event.size
        if self.current == (event.model, event.size):
            self.step = self.total_steps

    def _workers_updated(self, event: ev.WorkersUpdated) -> None:
        self.executor, self.workers = event.executor, event.workers

    def _point_retried(self, event: ev.PointRetried) -> None:
        self.retries += 1
        self.model(event.model).status = f"retrying {event.size}"

    def _point_failed(self, event: ev.PointFailed) -> None:
        m = self.model(event.model)
        m.failed_points += 1
        m.status = f"point {event.size} failed"
        self.failed_points += 1

    def _model_failed(self, event: ev.ModelFailed) -> None:
        m = self.model(event.model)
        m.failed = event.reason
        m.status = "failed"
        self._drop_remaining(m)

    def _model_eliminated(self, event: ev.ModelEliminated) -> None:
        m = self.model(event.model)
        m.eliminated = event.reason
        m.compute_saved = event.compute_saved
        m.status = "eliminated"
        self._drop_remaining(m)

    def _ntk_computed(self, event: ev.NTKComputed) -> None:
        self.model(event.model).ntk = event

    def _law_fitted(self, event: ev.LawFitted) -> None:
        m = self.model(event.model)
        m.law = event.law
        m.fit_ok = event.ok
        m.fit_reason = event.reason
        if event.ok:
            m.params = dict(event.params)
            m.curve = tuple(event.curve)
            m.predicted = event.predicted_target
            m.low, m.high = event.interval

    def _phase_detected(self, event: ev.PhaseDetected) -> None:
        m = self.model(event.model)
        m.transition = event.transition_size
        m.transition_confidence = event.confidence
        m.phase_known = True

    def _ranking_updated(self, event: ev.RankingUpdated) -> None:
        self.ranking = tuple(event.entries)
        self.confidence = event.confidence
        self._take_ranking(self.ranking)

    def _policy_stopped(self, event: ev.PolicyStopped) -> None:
        self.stopped = event
        self._settle_all()  # the points the policy skipped will not come

    def _run_finished(self, event: ev.RunFinished) -> None:
        self.finished = event
        self.phase = "finished"
        self.current = None
        self.ranking = tuple(event.ranking) or self.ranking
        self._take_ranking(self.ranking)
        for name, reason in event.failed:
            m = self.model(name)
            m.failed = m.failed or reason
            m.status = "failed"
        for m in self.models.values():
            if not m.stopped:
                m.status = "done"
        self._settle_all()

    def _run_cancelled(self, event: ev.RunCancelled) -> None:
        self.phase = "cancelled"
        self.message = event.reason
        self.current = None
        self.kept = event.kept or None

    def _drop_remaining(self, m: ModelView) -> None:
        """A model that gets no more points: its unsettled points leave the total."""
        left = m.planned - m.settled
        if left > 0:
            self.total_points -= left
            m.planned = m.settled

    def _settle_all(self) -> None:
        for m in self.models.values():
            m.planned = m.settled
        self.total_points = self.settled_points

    def _take_ranking(self, entries: tuple[ev.RankEntry, ...]) -> None:
        ranked = {e.model for e in entries}
        for e in entries:
            m = self.model(e.model)
            m.rank = e.rank
            if math.isfinite(e.predicted_target):
                m.predicted, m.low, m.high = e.predicted_target, e.low, e.high
            m.path = tuple(e.path)
        for m in self.models.values():
            if m.name not in ranked:
                m.rank = None

    def ordered(self) -> list[ModelView]:
        """Ranked models best first, then unranked, then failed; otherwise in run order."""

        position = {name: i for i, name in enumerate(self.models)}

        def key(m: ModelView) -> tuple[int, int, int]:
            if m.failed:
                return (2, 0, position[m.name])
            if m.rank is None:
                return (1, 0, position[m.name])
            return (0, m.rank, position[m.name])

        return sorted(self.models.values(), key=key)


_FOLDS: dict[type, Callable[[RunView, Any], None]] = {
    ev.RunStarted: RunView._run_started,
    ev.PointStarted: RunView._point_started,
    ev.PointProgress: RunView._point_progress,
    ev.PointFinished: RunView._point_finished,
    ev.PointFailed: RunView._point_failed,
    ev.PointRetried: RunView._point_retried,
    ev.WorkersUpdated: RunView._workers_updated,
    ev.ModelFailed: RunView._model_failed,
    ev.ModelEliminated: RunView._model_eliminated,
    ev.NTKComputed: RunView._ntk_computed,
    ev.LawFitted: RunView._law_fitted,
    ev.PhaseDetected: RunView._phase_detected,
    ev.RankingUpdated: RunView._ranking_updated,
    ev.PolicyStopped: RunView._policy_stopped,
    ev.RunFinished: RunView._run_finished,
    ev.RunCancelled: RunView._run_cancelled,
}
"""Which method folds which event type; event types a front end ignores are absent."""
