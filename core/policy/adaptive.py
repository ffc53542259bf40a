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

Which survivor goes next is the schedule's call: each schedule (halving, the
``challenger``: LUCB on the best and its strongest challenger, ``compute`` and
``size`` levelling without forced drops) is a small class in
core/policy/schedules.py behind one ``pick`` method; this module keeps what they
share: states, costs, fits, intervals and eliminations. Replaying the policy on
a benchmark table is core/policy/replay.py.

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
from core.policy.schedules import Schedule, make_schedule
from core.policy.state import Estimate, ModelState
from core.science.curves import Curve


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


class AdaptivePolicy:
    """Stepwise adaptive schedule: ask ``next_point``, run it, report it with ``observe``.

    ``unit_cost[model]`` is the cost of one training sample for that model
    (parameters on a table; 6 x parameters x tokens per sample live); it sets the
    full fine-tuning cost and charges points whose cost is not reported.

    The configured schedule (core/policy/schedules.py) picks each point; the
    public methods under "board" below are what it may ask of the policy.
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
        self._states: dict[str, ModelState] = {}
        for m in models:
            c = float(unit_cost.get(m, float("nan")))
            if not (math.isfinite(c) and c > 0):
                raise AdaptiveError(f"{m}: cost per sample must be positive, got {c}")
            self._states[m] = ModelState(m, c)
        self._order = tuple(models)
        self._consumed: list[tuple[str, int]] = []
        self._eliminated: list[Elimination] = []
        self._stop_reason = ""
        self.schedule: Schedule = make_schedule(
            self.config.schedule,
            min_points=self.config.min_points,
            eta=self.config.eta,
            cap=self.config.max_cost_fraction,
        )

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

    def _remaining_cost(self, st: ModelState) -> float:
        # past what is measured or in flight: a point already running is spent, not saved
        return st.unit_cost * sum(s for s in self.ladder if s > st.reach)

    # --- next point ------------------------------------------------------------

    def next_point(self) -> tuple[str, int] | None:
        """The (model, size) to fine-tune next, or None: stopped, or waiting for points in flight.

        A point handed out counts as in flight until it is observed (or its model
        fails), so a runner with several workers may ask again before the first
        answer is in and gets a different point: the next rung of another model,
        or of the same one. While points are in flight the policy never stops:
        None then means "ask again after the next observation". Points are charged
        when observed, so a point started on a model that is eliminated before it
        finishes (see ``schedules.Halving.speculate``) is still paid for: parallel
        runs may spend a little more than a sequential one for the same decisions.
        """
        if self._stop_reason:
            return None
        point = self._choose()
        if point is None and self.in_flight():
            self._stop_reason = ""  # not stopped: the points in flight may change the answer
        elif point is not None:
            st = self._states[point[0]]
            st.pending[point[1]] = st.unit_cost * point[1]
        return point

    def _choose(self) -> tuple[str, int] | None:
        """The schedule's pick, after the two stops every schedule shares."""
        active = [s for s in self._states.values() if s.status == "active"]
        if not active:
            self._stop_reason = self.why_idle()
            return None
        alive = self.alive()
        if len(alive) == 1 and all(s.trained >= self.config.min_points for s in alive):
            self._stop_reason = f"one model left: {alive[0].model}"
            return None
        pick = self.schedule.pick(self, active)
        if isinstance(pick, str):
            self._stop_reason = pick
            return None
        return pick

    # --- board: what a schedule may ask ----------------------------------------

    def states(self) -> list[ModelState]:
        """Every candidate's state, in candidate order."""
        return [self._states[m] for m in self._order]

    def rank_of(self, model: str) -> int:
        """The model's place among the candidates: the tie-breaker everywhere."""
        return self._order.index(model)

    def next_size(self, st: ModelState) -> int | None:
        """The first ladder size past what the model has measured or has in flight."""
        for s in self.ladder:
            if s > st.reach:
                return s
        return None

    def alive(self) -> list[ModelState]:
        """Models not eliminated and not failed (converged and exhausted ones included)."""
        return [
            s for s in self._states.values() if s.status in ("active", "converged", "exhausted")
        ]

    def in_flight(self) -> bool:
        """Whether a point handed out is not observed yet."""
        return any(s.pending for s in self._states.values())

    def pending_cost(self) -> float:
        """The estimated cost of the points in flight (counted against the budget)."""
        return sum(sum(s.pending.values()) for s in self._states.values())

    def budget(self) -> float:
        """The compute the policy may spend: the cap, or the whole ladder without one."""
        cap = self.config.max_cost_fraction
        return cap * self.full_cost if cap is not None else self.ladder_cost

    def affordable(self, st: ModelState, size: int | None) -> bool:
        """Whether ``size`` exists and the model's point there fits in the budget."""
        spend = self.cost + self.pending_cost() + st.unit_cost * (size or 0)
        return size is not None and spend <= self.budget() * (1 + 1e-12)

    def budget_spent(self) -> str:
        cap = self.config.max_cost_fraction
        if cap is None:
            return "budget spent (the ladder's compute: no cap was set)"
        return f"budget of {cap:g} x full fine-tuning spent"

    def why_idle(self) -> str:
        if not self.alive():
            return "every model failed"
        return "every surviving model is stable or out of ladder sizes"

    def judged(self, st: ModelState) -> bool:
        """Whether a model's prediction is solid enough to eliminate it or be compared."""
        return (
            st.estimate is not None
            and st.estimate.usable
            and st.trained >= self.config.min_points
            and bool(st.moves)  # two usable fits at least: a drift to judge by
        )

    def interval(self, st: ModelState) -> tuple[float, float]:
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

    def eliminate(self, st: ModelState, reason: str) -> Elimination:
        """Stop spending on ``st``; the ladder points it will not run are compute saved."""
        saved = self._remaining_cost(st) if st.status == "active" else 0.0
        st.status, st.reason = "eliminated", reason
        e = Elimination(st.model, reason, st.top, saved)
        self._eliminated.append(e)
        return e

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
        return self._race()

    def fail(self, model: str, reason: str) -> None:
        """A model cannot continue (its point failed); it keeps its cost and drops out."""
        st = self._states[model]
        st.status, st.reason = "failed", reason
        st.pending.clear()

    def measured(self) -> list[Curve]:
        """Every model's measured points so far as a Curve, in candidate order."""
        return [self._curve(self._states[m]) for m in self._order]

    def _curve(self, st: ModelState) -> Curve:
        order = sorted(range(len(st.sizes)), key=lambda i: st.sizes[i])
        return Curve(
            st.model, tuple(st.sizes[i] for i in order), tuple(st.losses[i] for i in order)
        )

    def _predict(self, states: list[ModelState]) -> list[Estimate]:
        try:
            out = list(self.predictor([self._curve(s) for s in states]))
            if len(out) != len(states):
                raise ValueError(f"{len(out)} estimates for {len(states)} curves")
        except Exception as exc:  # a predictor failure is a result, not a crash
            why = f"predictor failed: {exc}".splitlines()[0]
            out = [Estimate(None, ok=False, reason=why) for _ in states]
        return out

    def _refit(self, st: ModelState) -> None:
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
        if self.next_size(st) is None:
            st.status = "exhausted"
            st.reason = "ran every ladder size" + ("" if est.usable else f"; {st.reason}")
        elif est.usable and st.trained >= self.config.min_points and st.stable >= self.config.tau:
            st.status = "converged"
            st.reason = f"prediction moved <= {self.config.gamma:g} for {st.stable} successive fits"

    def _race(self) -> list[Elimination]:
        """Racing: every judged model whose interval lies wholly above the best's is dropped."""
        conf = self.config.confidence
        judged = [s for s in self.alive() if self.judged(s)]
        if len(judged) < 2:
            return []
        best = min(judged, key=lambda s: (s.predicted_or_inf, self.rank_of(s.model)))
        _, best_hi = self.interval(best)
        out: list[Elimination] = []
        for st in judged:
            if st is best:
                continue
            lo, _ = self.interval(st)
            if lo > best_hi:
                reason = (
                    f"{conf:.0%} interval [{lo:.4g}, ...] lies above {best.model}'s "
                    f"[..., {best_hi:.4g}] at size {st.top}"
                )
                out.append(self.eliminate(st, reason))
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
        def pkey(st: ModelState) -> tuple[float, int]:
            return (st.predicted_or_inf, self.rank_of(st.model))

        groups = (
            [s for s in self.alive() if s.estimate and s.estimate.usable],
            [s for s in self._states.values() if s.status == "eliminated"],
            [
                s
                for s in self._states.values()
                if s.status == "failed"
                or (s in self.alive() and not (s.estimate and s.estimate.usable))
            ],
        )
        ranking = tuple(s.model for g in groups for s in sorted(g, key=pkey))
        outcomes = []
        for m in self._order:
            st = self._states[m]
            est = st.estimate
            lo = hi = None
            if est is not None and est.usable:
                lo, hi = self.interval(st)
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
