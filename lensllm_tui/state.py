"""The dashboard's picture of a run, folded from the engine's event stream.

Widgets stay dumb: every event goes through :meth:`RunState.apply`, and the
chart, the ranking table and the progress line render from this one object.
Times come from the events themselves (never the wall clock), so a replayed
stream renders the same elapsed time and ETA every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core import events as ev


@dataclass
class ModelState:
    """What the dashboard knows about one candidate model."""

    name: str
    points: dict[int, float] = field(default_factory=dict)
    """Finished points: training samples -> held-out test loss."""
    flops: float = 0.0
    status: str = "queued"
    law: str = ""
    params: dict[str, float] = field(default_factory=dict)
    curve: tuple[tuple[float, float], ...] = ()
    """The fitted law as the engine sampled it, (samples, loss), when it did."""
    fit_ok: bool = False
    fit_reason: str = ""
    predicted: float = math.nan
    low: float = math.nan
    high: float = math.nan
    rank: int | None = None
    transition: int | None = None
    transition_confidence: float = math.nan
    phase_known: bool = False
    failed: str = ""
    eliminated: str = ""
    compute_saved: float = 0.0
    """Ladder compute (FLOPs) the adaptive policy saved by eliminating this model."""

    @property
    def phase(self) -> str:
        """'power' once a transition is found, 'pre-power' while not, '' before any call."""
        if not self.phase_known:
            return ""
        return "power" if self.transition is not None else "pre-power"


@dataclass
class RunState:
    """Everything the dashboard shows, updated one event at a time."""

    models: dict[str, ModelState] = field(default_factory=dict)
    sizes: tuple[int, ...] = ()
    target: int = 0
    out_dir: str = ""
    dataset: str = ""
    total_points: int = 0
    done_points: int = 0
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
    policy: str = ""
    """The adaptive policy's account once it stopped: why, cost fraction, compute saved."""
    _early: ev.PointProgress | None = field(default=None, repr=False)

    def model(self, name: str) -> ModelState:
        if name not in self.models:
            self.models[name] = ModelState(name)
        return self.models[name]

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
            if m.failed or m.eliminated:
                continue
            left += sum(s for s in self.sizes if s not in m.points)
        return left * self.seconds_spent / self.samples_spent

    def apply(self, event: ev.Event) -> None:
        """Fold one engine event into the state."""
        t = getattr(event, "time", None)
        if isinstance(t, int | float):
            self.last_time = t
        match event:
            case ev.RunStarted():
                self.sizes = tuple(event.sizes)
                self.target = event.target
                self.out_dir = event.out_dir
                self.dataset = event.dataset
                self.total_points = event.total_points
                self.started_at = event.time
                self.phase = "running"
                for name in event.models:
                    self.model(name)
            case ev.PointStarted():
                self.current = (event.model, event.size)
                self.current_index = event.index
                self.step, self.total_steps, self.train_loss = 0, 0, math.nan
                self.model(event.model).status = f"training {event.size}"
                early = self._early
                if early is not None and (early.model, early.size) == self.current:
                    self._early = None
                    self.apply(early)
            case ev.PointProgress():
                if self.current == (event.model, event.size):
                    self.step, self.total_steps = event.step, event.total_steps
                    self.train_loss = event.train_loss
                else:
                    # Coalesced progress can overtake its PointStarted; keep it for then.
                    self._early = event
            case ev.PointFinished():
                m = self.model(event.model)
                m.points[event.size] = event.loss
                m.flops += event.flops
                m.status = "reused" if event.reused else "trained"
                if self._early is not None and (self._early.model, self._early.size) == (
                    event.model,
                    event.size,
                ):
                    self._early = None
                self.done_points += 1
                if not event.reused and event.size > 0:
                    self.seconds_spent += event.seconds
                    self.samples_spent += event.size
                if self.current == (event.model, event.size):
                    self.step = self.total_steps
            case ev.PointFailed():
                self.failed_points += 1
                self.model(event.model).status = f"point {event.size} failed"
            case ev.ModelFailed():
                m = self.model(event.model)
                m.failed = event.reason
                m.status = "failed"
            case ev.LawFitted():
                m = self.model(event.model)
                m.law = event.law
                m.fit_ok = event.ok
                m.fit_reason = event.reason
                if event.ok:
                    m.params = dict(event.params)
                    m.curve = tuple(getattr(event, "curve", ()) or ())
                    m.predicted = event.predicted_target
                    m.low, m.high = event.interval
            case ev.PhaseDetected():
                m = self.model(event.model)
                m.transition = event.transition_size
                m.transition_confidence = event.confidence
                m.phase_known = True
            case ev.RankingUpdated():
                self.ranking = tuple(event.entries)
                self.confidence = event.confidence
                self._take_ranking(event.entries)
            case ev.ModelEliminated():
                m = self.model(event.model)
                m.eliminated = event.reason
                m.compute_saved = event.compute_saved
                m.status = "eliminated"
            case ev.PolicyStopped():
                self.policy = event.summary()
                self.total_points = self.done_points + self.failed_points
            case ev.RunFinished():
                self.phase = "finished"
                self.current = None
                self.ranking = tuple(event.ranking) or self.ranking
                self._take_ranking(self.ranking)
                for name, reason in event.failed:
                    m = self.model(name)
                    m.failed = m.failed or reason
                    m.status = "failed"
                for m in self.models.values():
                    if not m.failed and not m.eliminated:
                        m.status = "done"
            case ev.RunCancelled():
                self.phase = "cancelled"
                self.message = event.reason
                self.current = None
                kept = getattr(event, "kept", 0)
                self.kept = kept if kept else None
            case _:
                pass

    def _take_ranking(self, entries: tuple[ev.RankEntry, ...]) -> None:
        ranked = {e.model for e in entries}
        for e in entries:
            m = self.model(e.model)
            m.rank = e.rank
            if math.isfinite(e.predicted_target):
                m.predicted, m.low, m.high = e.predicted_target, e.low, e.high
        for m in self.models.values():
            if m.name not in ranked:
                m.rank = None

    def ordered(self) -> list[ModelState]:
        """Ranked models best first, then unranked, then failed; otherwise in run order."""

        position = {name: i for i, name in enumerate(self.models)}

        def key(m: ModelState) -> tuple[int, int, int]:
            if m.failed:
                return (2, 0, position[m.name])
            if m.rank is None:
                return (1, 0, position[m.name])
            return (0, m.rank, position[m.name])

        return sorted(self.models.values(), key=key)
