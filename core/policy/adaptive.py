"""Budget-aware model selection: spend fine-tuning compute where it can still change the answer.

The ladder policy fine-tunes every candidate on every subset size. LensLLM's
Algorithm 1 already stops sampling a model once its predicted target loss has
stopped moving (a regression threshold ``gamma`` on the relative change of the
prediction between successive fits, held for ``tau`` successive fits). This
policy adds *elimination across candidates*, two ways:

- racing: once a model's predicted target-loss interval lies wholly above the
  current best model's interval, no further point of that model can make it the
  winner at that confidence, so it gets no more compute;
- successive halving on compute (the default schedule): rounds in which every
  survivor may spend the same compute, after which only the best 1/eta by
  predicted target loss go on. Small-size predictions are poor (a curve still in
  its flat pre-power phase says little about where it ends), so rather than
  trust them to decide alone, halving keeps the budget flowing to a shrinking
  set of survivors whose curves reach ever larger sizes; for the price of one
  rung of a big model a small one climbs several, which is what successive
  halving's "resource" means when candidates differ in cost.

The other schedules (``challenger``: LUCB on the best and its strongest
challenger; ``compute``/``size``: levelling without forced drops) stay for
comparison; benchmarks/pareto.py measures them.

The policy is stepwise (``next_point`` / ``observe``) so the same object drives
a replay over a benchmark table and a live run, and it is deterministic given a
deterministic predictor.

Cost is charged per consumed point: on a replayed table the model's parameter
count times the point's size (training compute is proportional to both); on a
live run the runner's FLOPs for that point (6 x parameters x training tokens).
``cost_fraction`` divides by the cost of full fine-tuning: every candidate
trained once at the target size.

This module does curve science only: no torch, textual or typer imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from core.config import SCHEDULES
from core.errors import AdaptiveError
from core.science.curves import Curve

STATUSES = ("active", "converged", "exhausted", "eliminated", "failed")


class TargetColumnRead(RuntimeError):
    """A policy tried to read a point at or beyond the target size: that is the answer."""


@dataclass(frozen=True)
class AdaptiveConfig:
    """Thresholds of the adaptive policy (checked on construction)."""

    gamma: float = 0.01
    """Regression threshold: a fit is *stable* when its predicted target loss moved by
    at most this fraction of the previous prediction (LensLLM's gamma)."""
    tau: int = 2
    """Stop threshold: a model stops getting points after this many successive stable
    fits (LensLLM's tau)."""
    confidence: float = 0.9
    """Two-sided confidence of the intervals used for elimination; higher keeps more
    models alive longer (safer, costlier)."""
    min_points: int = 4
    """Fine-tuned points (zero-shot not counted) a model needs before its prediction may
    eliminate it or stop it: with fewer, a law fit says little about the target."""
    max_cost_fraction: float | None = 0.05
    """The compute budget, as a fraction of full fine-tuning (every candidate once at the
    target size): cost never exceeds it (a point that would is skipped, cheaper ones
    still run). The default 5% is a user's budget (the issue's target), not a fitted
    constant. None: stop only by the thresholds and eliminations."""
    schedule: str = "halving"
    """Which survivor goes next: ``halving`` runs successive halving on compute (rounds
    of equal compute per survivor, then the worse part is dropped); ``compute`` levels
    the compute spent per model without forced drops; ``size`` levels the ladder size
    (equal samples); ``challenger`` spends on the predicted best and its strongest
    challenger (LUCB)."""
    eta: int = 2
    """Halving keeps the best 1/eta of the survivors after each round."""

    def __post_init__(self) -> None:
        if not (0.0 < self.gamma < 1.0):
            raise AdaptiveError(f"gamma must be in (0, 1), got {self.gamma}")
        if self.tau < 1:
            raise AdaptiveError(f"tau must be at least 1, got {self.tau}")
        if not (0.0 < self.confidence < 1.0):
            raise AdaptiveError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.min_points < 2:
            raise AdaptiveError(f"min_points must be at least 2, got {self.min_points}")
        if self.schedule not in SCHEDULES:
            raise AdaptiveError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.eta < 2:
            raise AdaptiveError(f"eta must be at least 2, got {self.eta}")
        if self.max_cost_fraction is not None and not (0.0 < self.max_cost_fraction <= 1.0):
            raise AdaptiveError(
                f"max_cost_fraction must be in (0, 1] or None, got {self.max_cost_fraction}"
            )


@dataclass(frozen=True)
class Estimate:
    """A predictor's answer for one model: predicted target loss and an interval."""

    predicted: float | None
    low: float | None = None
    high: float | None = None
    level: float = 0.9
    """Two-sided confidence the predictor gives its (low, high) interval."""
    ok: bool = True
    reason: str = ""

    @property
    def usable(self) -> bool:
        return (
            self.ok
            and self.predicted is not None
            and math.isfinite(self.predicted)
            and self.predicted > 0
        )


Predictor = Callable[[Sequence[Curve]], Sequence[Estimate]]
"""Given the points seen so far (one Curve per model, zero-shot included), predict each
model's loss at the target size with an interval, in input order. The target is bound
in the closure. A *pooled* predictor (one that shares strength across candidates, as the
flagship does) is called with every model's curve after each point; otherwise only with
the curve that changed."""


def per_model(fn: Callable[[Curve], Estimate]) -> Predictor:
    """A Predictor from a function of one curve (no pooling across candidates)."""
    return lambda curves: [fn(c) for c in curves]


def _z(confidence: float) -> float:
    """Standard normal quantile for a two-sided interval; scipy's, imported lazily."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2.0))


def interval_at(est: Estimate, confidence: float) -> tuple[float, float]:
    """The estimate's interval rescaled to ``confidence``.

    Predictors report intervals at their own level; the policy's confidence is a
    knob of its own. The half-widths are rescaled in log-loss space (where the
    fits live and errors are roughly normal) by the ratio of normal quantiles.
    A missing interval is taken as a point (no width): the predictor vouched for
    nothing wider.
    """
    assert est.predicted is not None
    p = est.predicted
    lo = est.low if est.low is not None and math.isfinite(est.low) and est.low > 0 else p
    hi = est.high if est.high is not None and math.isfinite(est.high) and est.high > 0 else p
    lo, hi = min(lo, p), max(hi, p)
    scale = _z(confidence) / _z(est.level) if 0 < est.level < 1 else 1.0
    lp = math.log(p)
    return (
        math.exp(lp - scale * (lp - math.log(lo))),
        math.exp(lp + scale * (math.log(hi) - lp)),
    )


@dataclass(frozen=True)
class Elimination:
    """A model the policy stopped spending on because a better one is clearly ahead."""

    model: str
    reason: str
    size: int
    """The largest size it had been fine-tuned on when eliminated."""
    compute_saved: float
    """Cost of the ladder points it will not run (what the ladder policy would still spend)."""


@dataclass(frozen=True)
class ModelOutcome:
    """Where one model ended: its points, its last estimate, and why it stopped."""

    model: str
    status: str
    sizes: tuple[int, ...]
    predicted: float | None
    low: float | None
    high: float | None
    cost: float
    reason: str = ""
    stale: bool = False
    """The prediction was made before the run's last point, so it did not see everything
    the run measured (an eliminated model keeps the estimate it was dropped on);
    ``core.policy.final.refit_result`` refreshes it."""


@dataclass(frozen=True)
class PolicyResult:
    """What an adaptive run decided and what it paid for it."""

    ranking: tuple[str, ...]
    """Best first: survivors by predicted target loss, then eliminated models, then failed ones."""
    outcomes: tuple[ModelOutcome, ...]
    """Per model, in input order."""
    consumed: tuple[tuple[str, int], ...]
    """Every (model, size) point read or trained, in order."""
    eliminated: tuple[Elimination, ...]
    cost: float
    full_cost: float
    """Cost of fine-tuning every candidate once at the target size."""
    ladder_cost: float
    """Cost of the ladder policy: every candidate on every ladder size."""
    stop_reason: str
    config: AdaptiveConfig = field(default_factory=AdaptiveConfig)

    @property
    def cost_fraction(self) -> float:
        return self.cost / self.full_cost if self.full_cost > 0 else float("nan")

    @property
    def largest_size(self) -> int:
        """The largest size any model was fine-tuned on (the bench's ``budget`` column)."""
        return max((s for _, s in self.consumed), default=0)

    @property
    def best(self) -> str | None:
        return self.ranking[0] if self.ranking else None


@dataclass
class _State:
    model: str
    unit_cost: float
    sizes: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    cost: float = 0.0
    estimate: Estimate | None = None
    moves: list[float] = field(default_factory=list)
    """|change of log predicted target loss| between successive usable fits."""
    stable: int = 0
    status: str = "active"
    reason: str = ""
    pending: dict[int, float] = field(default_factory=dict)
    """Sizes handed out by next_point and not yet observed, with their estimated cost."""
    fitted_at: int = 0
    """How many points the run had consumed when ``estimate`` was made."""

    @property
    def trained(self) -> int:
        return sum(1 for s in self.sizes if s > 0)

    @property
    def top(self) -> int:
        return max(self.sizes, default=0)

    @property
    def claimed(self) -> int:
        """Trained points plus those in flight: what the schedule levels by."""
        return self.trained + sum(1 for s in self.pending if s > 0)

    @property
    def reach(self) -> int:
        """The largest size measured or in flight: the next point goes past it."""
        return max(self.top, max(self.pending, default=0))


class AdaptivePolicy:
    """Stepwise adaptive schedule: ask ``next_point``, run it, report it with ``observe``.

    ``unit_cost[model]`` is the cost of one training sample for that model
    (parameters on a table; 6 x parameters x tokens per sample live); it sets the
    full fine-tuning cost and charges points whose cost is not reported.
    """

    def __init__(
        self,
        models: Sequence[str],
        ladder: Sequence[int],
        target: int,
        unit_cost: Mapping[str, float],
        predictor: Predictor,
        config: AdaptiveConfig | None = None,
        *,
        pooled: bool = False,
    ) -> None:
        self.config = config or AdaptiveConfig()
        self.pooled = pooled
        if not models:
            raise AdaptiveError("no candidate models")
        if len(set(models)) != len(models):
            raise AdaptiveError("candidate model names must be unique")
        self.ladder = tuple(sorted({int(s) for s in ladder if 0 < int(s) < target}))
        if not self.ladder:
            raise AdaptiveError(f"no ladder size below the target {target}")
        self.target = int(target)
        self.predictor = predictor
        self._states = {}
        for m in models:
            c = float(unit_cost.get(m, float("nan")))
            if not (math.isfinite(c) and c > 0):
                raise AdaptiveError(f"{m}: cost per sample must be positive, got {c}")
            self._states[m] = _State(m, c)
        self._order = tuple(models)
        self._consumed: list[tuple[str, int]] = []
        self._eliminated: list[Elimination] = []
        self._stop_reason = ""
        self._level = 0.0
        """Halving: the compute each survivor may have spent by the end of this round."""
        self._round = 0
        self._round_points = 0
        self._ahead: set[tuple[str, int]] = set()
        """Halving: points started ahead of the next round (``_speculate``); they become
        that round's points when it starts, and do not hold up judging this one."""

    # --- costs -----------------------------------------------------------------

    @property
    def cost(self) -> float:
        return sum(s.cost for s in self._states.values())

    @property
    def full_cost(self) -> float:
        return sum(s.unit_cost for s in self._states.values()) * self.target

    @property
    def ladder_cost(self) -> float:
        return sum(s.unit_cost for s in self._states.values()) * sum(self.ladder)

    def _remaining_cost(self, st: _State) -> float:
        # past what is measured or in flight: a point already running is spent, not saved
        return st.unit_cost * sum(s for s in self.ladder if s > st.reach)

    # --- schedule --------------------------------------------------------------

    def _next_size(self, st: _State) -> int | None:
        for s in self.ladder:
            if s > st.reach:
                return s
        return None

    def _sort_key(self, st: _State) -> tuple[float, float, int]:
        # Level rungs first (successive halving); within a rung the model predicted
        # best goes first, so its fit can eliminate the others before they spend.
        # A model without enough points to be judged is levelled by size, so every
        # candidate gets its first min_points before compute levelling starts.
        p = st.estimate.predicted if st.estimate and st.estimate.usable else math.inf
        if st.claimed < self.config.min_points:
            level = -1.0 / (1.0 + st.claimed)
        elif self.config.schedule == "compute":
            nxt = self._next_size(st) or 0
            level = st.unit_cost * (st.reach + nxt)  # compute after the next point
        else:
            level = float(st.reach)
        return (level, p, self._order.index(st.model))

    def next_point(self) -> tuple[str, int] | None:
        """The (model, size) to fine-tune next, or None: stopped, or waiting for points in flight.

        A point handed out counts as in flight until it is observed (or its model
        fails), so a runner with several workers may ask again before the first
        answer is in and gets a different point: the next rung of another model,
        or of the same one. While points are in flight the policy never stops:
        None then means "ask again after the next observation". Points are charged
        when observed, so a point started on a model that is eliminated before it
        finishes (see ``_speculate``) is still paid for: parallel runs may spend a
        little more than a sequential one for the same decisions.
        """
        if self._stop_reason:
            return None
        point = self._choose()
        if point is None and self._in_flight():
            self._stop_reason = ""  # not stopped: the points in flight may change the answer
        elif point is not None:
            st = self._states[point[0]]
            st.pending[point[1]] = st.unit_cost * point[1]
        return point

    def _in_flight(self) -> bool:
        """Whether a point handed out is not observed yet."""
        return any(s.pending for s in self._states.values())

    def _pending_cost(self) -> float:
        """The estimated cost of the points in flight (counted against the budget)."""
        return sum(sum(s.pending.values()) for s in self._states.values())

    def _choose(self) -> tuple[str, int] | None:
        active = [s for s in self._states.values() if s.status == "active"]
        if not active:
            self._stop_reason = self._why_idle()
            return None
        if len(self._alive()) == 1 and all(
            s.trained >= self.config.min_points for s in self._alive()
        ):
            self._stop_reason = f"one model left: {self._alive()[0].model}"
            return None
        if self.config.schedule == "halving":
            return self._next_halving(active)
        cap = self.config.max_cost_fraction
        capped = False
        order = sorted(active, key=self._sort_key)
        if self.config.schedule == "challenger":
            order = self._challenger_order(active) + order
        for st in order:
            size = self._next_size(st)
            if size is None:
                continue
            spend = self.cost + self._pending_cost() + st.unit_cost * size
            if cap is not None and spend > cap * self.full_cost:
                capped = True
                continue
            return st.model, size
        self._stop_reason = self._budget_spent() if capped else self._why_idle()
        return None

    def _budget(self) -> float:
        """The compute the policy may spend: the cap, or the whole ladder without one."""
        cap = self.config.max_cost_fraction
        return cap * self.full_cost if cap is not None else self.ladder_cost

    def _budget_spent(self) -> str:
        cap = self.config.max_cost_fraction
        if cap is None:
            return "budget spent (the ladder's compute: no cap was set)"
        return f"budget of {cap:g} x full fine-tuning spent"

    def _affordable(self, st: _State, size: int | None) -> bool:
        spend = self.cost + self._pending_cost() + st.unit_cost * (size or 0)
        return size is not None and spend <= self._budget() * (1 + 1e-12)

    def _next_halving(self, active: list[_State]) -> tuple[str, int] | None:
        """Successive halving with compute as the resource (Karnin et al. 2013).

        Warm-up first: every candidate gets its first ``min_points`` rungs (cheap:
        the smallest sizes), so each one has a curve to judge. Then rounds: each
        survivor may climb the ladder until it has spent the round's compute level
        (the same compute for all, so a small model climbs further for the price of
        one rung of a big one); when no survivor can go further, the survivors are
        ranked and the best 1/eta go on. The level rises each round by the
        remaining budget over (rounds left x survivors), so the budget is spread
        over the ceil(log_eta n) rounds it takes to get down to one model and what a
        round leaves unspent (ladder tops, converged models) rolls over.
        """
        order = self._order.index
        warm = [s for s in active if s.claimed < self.config.min_points]
        for st in sorted(warm, key=lambda s: (s.reach, order(s.model))):
            size = self._next_size(st)
            if self._affordable(st, size):
                assert size is not None
                return st.model, size
        for _ in range(2 * len(self._states) + 4):  # each pass halves or raises the level
            alive = self._alive()
            if len(alive) <= 1:
                self._stop_reason = (
                    f"one model left: {alive[0].model}" if alive else self._why_idle()
                )
                return None
            climbing = [
                (st.cost + sum(st.pending.values()) + st.unit_cost * size, st)
                for st in alive
                if st.status == "active"
                and (size := self._next_size(st)) is not None
                and self._affordable(st, size)
            ]
            if not climbing:
                self._stop_reason = (
                    self._budget_spent()
                    if any(st.status == "active" and self._next_size(st) for st in alive)
                    else self._why_idle()
                )
                return None
            within = [(c, st) for c, st in climbing if c <= self._level * (1 + 1e-12)]
            if within:
                _, st = min(within, key=lambda cs: (cs[0], order(cs[1].model)))
                self._round_points += 1
                size = self._next_size(st)
                assert size is not None
                return st.model, size
            if self._round_in_flight():  # the round's last points are not in: do not judge yet
                return self._speculate(climbing)
            if self._round_points > 0:  # a round ran: keep the best 1/eta
                self._halve()
                continue
            self._start_round(alive, climbing)
        self._stop_reason = "halving made no progress"  # pragma: no cover - defensive
        return None

    def _start_round(self, alive: list[_State], climbing: list[tuple[float, _State]]) -> None:
        """Raise the compute level by the remaining budget over (rounds left x survivors).

        Points started early for this round (``_speculate``) become its own: the
        level is set from the spend before them, as a sequential run would see it,
        and the round counts them, so it ends with a halving even if nothing more
        fits under the level. Without them the level rises at least to the cheapest
        next point, so every round makes progress.
        """
        early = [(m, s) for m, s in self._ahead if self._states[m].status != "eliminated"]
        early_cost = sum(self._states[m].unit_cost * s for m, s in early)
        rounds_left = max(1, math.ceil(math.log(len(alive)) / math.log(self.config.eta)))
        spare = self._budget() - self.cost - self._pending_cost() + early_cost
        self._level += spare / (rounds_left * len(alive))
        if not early:
            self._level = max(self._level, min(c for c, _ in climbing))
        self._round += 1
        self._round_points = len(early)
        self._ahead.clear()

    def _halve(self) -> None:
        """End a round: survivors past the best ceil(n/eta) get no more compute.

        Survivors are ranked by predicted target loss. Ranking by the lower end of
        the interval instead (optimism under uncertainty) was tried and kept erratic
        curves alive: on 60 random 15-model pools of each published table it chose
        worse models (mean RelAcc 86.2 vs 96.2 on FLAN, 96.5 vs 99.2 on Gigaword).
        """
        self._round_points = 0
        alive = self._alive()
        keep = max(1, math.ceil(len(alive) / self.config.eta))

        ranked = sorted(alive, key=self._rank_key)
        for place, st in enumerate(ranked[keep:], start=keep + 1):
            saved = self._remaining_cost(st) if st.status == "active" else 0.0
            pred = st.estimate.predicted if st.estimate and st.estimate.usable else None
            reason = (
                f"successive halving round {self._round}: ranked {place} of {len(ranked)}"
                + (f" (predicted {pred:.4g})" if pred is not None else " (no usable prediction)")
                + f" at size {st.top}; kept the best {keep}"
            )
            st.status, st.reason = "eliminated", reason
            e = Elimination(st.model, reason, st.top, saved)
            self._eliminated.append(e)

    def _rank_key(self, st: _State) -> tuple[float, int]:
        """How halving ranks survivors: predicted target loss (no usable prediction last)."""
        usable = st.estimate is not None and st.estimate.usable
        value = st.estimate.predicted if usable else math.inf  # type: ignore[union-attr]
        return (value, self._order.index(st.model))  # type: ignore[return-value]

    def _round_in_flight(self) -> bool:
        """Whether a point of this round (or of the warm-up) is handed out and not observed."""
        return any(
            (st.model, size) not in self._ahead
            for st in self._states.values()
            for size in st.pending
        )

    def _speculate(self, climbing: list[tuple[float, _State]]) -> tuple[str, int] | None:
        """The round is spent but some of its points are still in flight: keep workers busy.

        Halving waits for those points before it ranks the survivors; meanwhile
        the next rung of a model that would survive on the current predictions
        (one of the best ceil(n/eta), with nothing in flight itself) may start,
        one rung ahead per model. Such a point belongs to the next round: it does
        not hold up this round's judgement, and when the next round starts its
        cost is part of what the model has spent. If the late points change the
        ranking and that model is eliminated after all, its speculative point is
        charged anyway: that is the price of keeping every worker busy. None when
        no likely survivor can climb (the runner waits for the points in flight).
        """
        alive = self._alive()
        keep = max(1, math.ceil(len(alive) / self.config.eta))
        likely = {st.model for st in sorted(alive, key=self._rank_key)[:keep]}
        ahead = {model for model, _ in self._ahead}
        options = [
            (c, st)
            for c, st in climbing
            if st.model in likely and not st.pending and st.model not in ahead
        ]
        if not options:
            return None
        _, st = min(options, key=lambda cs: (cs[0], self._order.index(cs[1].model)))
        size = self._next_size(st)
        if size is None:
            return None
        self._ahead.add((st.model, size))
        return st.model, size

    def _judged(self, st: _State) -> bool:
        """Whether a model's prediction is solid enough to eliminate it or be compared."""
        return (
            st.estimate is not None
            and st.estimate.usable
            and st.trained >= self.config.min_points
            and bool(st.moves)  # two usable fits at least: a drift to judge by
        )

    def _challenger_order(self, active: list[_State]) -> list[_State]:
        """LUCB-style priority: warm-up first, then the current best and its strongest challenger.

        Every model first gets the points it needs to be judged (level by size).
        After that only two models matter for finding the best: the one predicted
        best and the one whose interval reaches lowest among the rest (the most
        plausible upset, Kalyanakrishnan et al.'s LUCB); of those two, the one with
        the wider interval goes first (its point shrinks the overlap most).
        """
        warm = [s for s in active if not self._judged(s) and s.claimed < self.config.min_points + 2]
        if warm:
            return sorted(warm, key=lambda s: (s.reach, self._order.index(s.model)))
        judged = [s for s in self._alive() if self._judged(s)]
        if len(judged) < 2:
            return []
        best = min(judged, key=lambda s: (s.estimate.predicted, self._order.index(s.model)))  # type: ignore[union-attr]
        rest = sorted(
            (s for s in judged if s is not best),
            key=lambda s: (self._interval(s)[0], self._order.index(s.model)),
        )

        def width(s: _State) -> float:
            lo, hi = self._interval(s)
            return math.log(hi / lo) if lo > 0 else math.inf

        out: list[_State] = []
        for challenger in rest:
            pair = [s for s in (best, challenger) if s.status == "active" and s not in out]
            out.extend(sorted(pair, key=lambda s: -width(s)))
        return out

    def _alive(self) -> list[_State]:
        return [
            s for s in self._states.values() if s.status in ("active", "converged", "exhausted")
        ]

    def _why_idle(self) -> str:
        alive = self._alive()
        if not alive:
            return "every model failed"
        return "every surviving model is stable or out of ladder sizes"

    # --- observations ----------------------------------------------------------

    def observe(
        self, model: str, size: int, loss: float, cost: float | None = None
    ) -> list[Elimination]:
        """Record a measured point, refit that model, and return new eliminations."""
        st = self._states[model]
        if size >= self.target:
            raise TargetColumnRead(
                f"{model}: point at {size} is not below the target {self.target}"
            )
        if size in st.sizes:
            raise AdaptiveError(f"{model}: point at size {size} observed twice")
        st.pending.pop(int(size), None)
        charged = st.unit_cost * size if cost is None else float(cost)
        if cost is not None and size > 0 and charged > 0:
            st.unit_cost = charged / size  # live: re-measured from the reported FLOPs
        st.cost += charged
        st.sizes.append(int(size))
        st.losses.append(float(loss))
        self._consumed.append((model, int(size)))
        if size == 0:
            return []  # zero-shot: no training, no fit worth making on its own
        self._refit(st)
        return self._eliminate()

    def fail(self, model: str, reason: str) -> None:
        """A model cannot continue (its point failed); it keeps its cost and drops out."""
        st = self._states[model]
        st.status, st.reason = "failed", reason
        st.pending.clear()

    def measured(self) -> list[Curve]:
        """Every model's measured points so far as a Curve, in candidate order."""
        return [self._curve(self._states[m]) for m in self._order]

    def _curve(self, st: _State) -> Curve:
        order = sorted(range(len(st.sizes)), key=lambda i: st.sizes[i])
        return Curve(
            st.model, tuple(st.sizes[i] for i in order), tuple(st.losses[i] for i in order)
        )

    def _predict(self, states: list[_State]) -> list[Estimate]:
        try:
            out = list(self.predictor([self._curve(s) for s in states]))
            if len(out) != len(states):
                raise ValueError(f"{len(out)} estimates for {len(states)} curves")
        except Exception as exc:  # a predictor failure is a result, not a crash
            why = f"predictor failed: {exc}".splitlines()[0]
            out = [Estimate(None, ok=False, reason=why) for _ in states]
        return out

    def _refit(self, st: _State) -> None:
        """Refit after a new point of ``st``: its stability and drift move, others refresh.

        With a pooled predictor the other models' estimates change too (shared
        hyperparameters); they are refreshed, but only the model that got the point
        counts a fit towards gamma/tau and the drift.
        """
        others = [o for o in self._states.values() if self.pooled and o is not st and o.trained > 0]
        ests = self._predict([st, *others])
        for o, e in zip(others, ests[1:], strict=True):
            o.estimate, o.fitted_at = e, len(self._consumed)
        est = ests[0]
        prev = st.estimate
        st.estimate, st.fitted_at = est, len(self._consumed)
        if not est.usable:
            st.stable = 0
            st.reason = est.reason or "no usable prediction yet"
        elif prev is not None and prev.usable:
            assert prev.predicted is not None and est.predicted is not None
            change = abs(est.predicted - prev.predicted) / prev.predicted
            st.stable = st.stable + 1 if change <= self.config.gamma else 0
            st.moves.append(abs(math.log(est.predicted / prev.predicted)))
            st.reason = ""
        else:
            st.stable = 0
            st.reason = ""
        if st.status != "active":
            return
        if self._next_size(st) is None:
            st.status = "exhausted"
            st.reason = "ran every ladder size" + ("" if est.usable else f"; {st.reason}")
        elif est.usable and st.trained >= self.config.min_points and st.stable >= self.config.tau:
            st.status = "converged"
            st.reason = f"prediction moved <= {self.config.gamma:g} for {st.stable} successive fits"

    def _interval(self, st: _State) -> tuple[float, float]:
        """The predictor's interval at the policy's confidence, widened by the drift.

        A prediction that still moves between fits has an error its own interval
        does not show (a pre-power curve, a law fitted to few points). Model the
        log prediction as a random walk over the doublings still to come before the
        target, with a step as large as its largest recent move (the last ``tau``
        moves): at the policy's confidence it can still move by z x step x
        sqrt(doublings left); the interval is widened to cover that.
        """
        assert st.estimate is not None and st.estimate.predicted is not None
        conf = self.config.confidence
        lo, hi = interval_at(st.estimate, conf)
        step = max(st.moves[-self.config.tau :], default=math.inf)
        left = math.log2(self.target / max(st.top, 1))
        half = _z(conf) * step * math.sqrt(max(left, 0.0)) if math.isfinite(step) else math.inf
        if math.isinf(half):
            return 0.0, math.inf
        p = math.log(st.estimate.predicted)
        return min(lo, math.exp(p - half)), max(hi, math.exp(p + half))

    def _eliminate(self) -> list[Elimination]:
        conf = self.config.confidence
        judged = [s for s in self._alive() if self._judged(s)]
        if len(judged) < 2:
            return []
        best = min(judged, key=lambda s: (s.estimate.predicted, self._order.index(s.model)))  # type: ignore[union-attr]
        assert best.estimate is not None
        _, best_hi = self._interval(best)
        out: list[Elimination] = []
        for st in judged:
            if st is best:
                continue
            assert st.estimate is not None
            lo, _ = self._interval(st)
            if lo > best_hi:
                saved = self._remaining_cost(st) if st.status == "active" else 0.0
                reason = (
                    f"{conf:.0%} interval [{lo:.4g}, ...] lies above {best.model}'s "
                    f"[..., {best_hi:.4g}] at size {st.top}"
                )
                st.status, st.reason = "eliminated", reason
                e = Elimination(st.model, reason, st.top, saved)
                self._eliminated.append(e)
                out.append(e)
        return out

    # --- result ----------------------------------------------------------------

    @property
    def eliminated(self) -> tuple[Elimination, ...]:
        """Every elimination so far, in order: racing ones are made in ``observe``,
        halving ones in ``next_point``, so a live front end reads this after both."""
        return tuple(self._eliminated)

    @property
    def compute_saved(self) -> float:
        """Ladder cost not spent so far because of eliminations."""
        return sum(e.compute_saved for e in self._eliminated)

    def result(self) -> PolicyResult:
        def pkey(st: _State) -> tuple[float, int]:
            p = st.estimate.predicted if st.estimate and st.estimate.usable else math.inf
            return (p, self._order.index(st.model))  # type: ignore[return-value]

        groups = (
            [s for s in self._alive() if s.estimate and s.estimate.usable],
            [s for s in self._states.values() if s.status == "eliminated"],
            [
                s
                for s in self._states.values()
                if s.status == "failed"
                or (s in self._alive() and not (s.estimate and s.estimate.usable))
            ],
        )
        ranking = tuple(s.model for g in groups for s in sorted(g, key=pkey))
        outcomes = []
        for m in self._order:
            st = self._states[m]
            est = st.estimate
            lo = hi = None
            if est is not None and est.usable:
                lo, hi = self._interval(st)
            outcomes.append(
                ModelOutcome(
                    m,
                    st.status,
                    tuple(sorted(st.sizes)),
                    est.predicted if est is not None and est.usable else None,
                    lo,
                    hi,
                    st.cost,
                    st.reason,
                    est is not None and st.fitted_at < len(self._consumed),
                )
            )
        return PolicyResult(
            ranking=ranking,
            outcomes=tuple(outcomes),
            consumed=tuple(self._consumed),
            eliminated=tuple(self._eliminated),
            cost=self.cost,
            full_cost=self.full_cost,
            ladder_cost=self.ladder_cost,
            stop_reason=self._stop_reason or "not finished",
            config=self.config,
        )
