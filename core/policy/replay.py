"""The adaptive policy replayed on a curve table, and a policy result seen as a selection.

Replay answers what the policy would have spent and picked on a benchmark
table, using the table's own later points as the "training" it asks for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.policy.adaptive import (
    AdaptiveConfig,
    AdaptiveError,
    AdaptivePolicy,
    Estimate,
    PolicyResult,
    Predictor,
    TargetColumnRead,
)
from core.policy.final import refit_result
from core.science.curves import Curve


class TableGuard:
    """Read access to a benchmark table that refuses the target column.

    A replayed policy sees the table only through ``read``; any size at or above
    the target raises ``TargetColumnRead``, so a policy cannot peek at the answer
    even by accident. Every read is logged (``reads``) for cost checks.
    """

    def __init__(self, curves: Sequence[Curve], target: int) -> None:
        self._curves = {c.model: c for c in curves}
        self.target = int(target)
        self.reads: list[tuple[str, int]] = []

    def read(self, model: str, size: int) -> float:
        if size >= self.target:
            raise TargetColumnRead(
                f"{model}: reading size {size} is forbidden (target column is {self.target})"
            )
        self.reads.append((model, int(size)))
        return self._curves[model].loss_at(size)


def table_unit_costs(curves: Sequence[Curve]) -> dict[str, float]:
    """Cost per training sample on a table: the parameter count (the ``size`` column)."""
    out = {}
    for c in curves:
        if c.params is None or not (math.isfinite(c.params) and c.params > 0):
            raise AdaptiveError(f"{c.model}: no parameter count (size column) to charge cost by")
        out[c.model] = float(c.params)
    return out


def fixed_budget_cost_fraction(curves: Sequence[Curve], budget: int, target: int) -> float:
    """Cost fraction of a fixed-budget selector: every model on every size up to the budget."""
    costs = table_unit_costs(curves)
    spent = sum(costs[c.model] * sum(s for s in c.sizes if 0 < s <= budget) for c in curves)
    return spent / (sum(costs.values()) * target)


def replay(
    curves: Sequence[Curve],
    target: int,
    predictor: Predictor,
    config: AdaptiveConfig | None = None,
    *,
    pooled: bool = False,
    final: Predictor | None = None,
) -> PolicyResult:
    """Run the policy on a benchmark table: consuming a point means reading its column.

    The ladder is the table's sizes below the target that every model has; the
    zero-shot column (size 0, no training, cost 0) is read first for each model.
    With ``final``, every model is refitted by it at the end on every point the
    policy measured (``core.policy.final.refit_result``); otherwise each model keeps
    the policy's last estimate, marked stale where it predates the last point.
    """
    if not curves:
        raise AdaptiveError("no curves to replay")
    common = set(curves[0].sizes)
    for c in curves[1:]:
        common &= set(c.sizes)
    ladder = sorted(s for s in common if 0 < s < target)
    guard = TableGuard(curves, target)
    policy = AdaptivePolicy(
        [c.model for c in curves],
        ladder,
        target,
        table_unit_costs(curves),
        predictor,
        config,
        pooled=pooled,
    )
    if 0 in common:
        for c in curves:
            policy.observe(c.model, 0, guard.read(c.model, 0), cost=0.0)
    while (step := policy.next_point()) is not None:
        model, size = step
        policy.observe(model, size, guard.read(model, size))
    if final is None:
        return policy.result()
    return refit_result(policy.result(), policy.measured(), final)


def selector_predictor(
    method: str, target: int, *, seed: int = 0, pooled: bool = False
) -> Predictor:
    """A Predictor backed by a selector of core.science.selectors that predicts a loss with an interval.

    The interval's level is the flagship's ``LEVEL`` (read lazily, 0.9 if absent), so
    the policy can rescale it to its own confidence. The selector sees every curve it
    is given in full (budget = the largest size among them; curves of different
    lengths are fine for the flagship, which forecasts each from its own last point).

    ``pooled=False`` calls the selector on one curve at a time: the flagship then
    estimates its noise and slope drift from that curve alone instead of pooling
    them over the candidates. On the published tables both pick the same models at
    the default thresholds while the per-curve calls are about 7x faster (a pooled
    refit after every point refits all 30 models); pass ``pooled=True`` (and the
    same to the policy) for the pooled flagship.
    """
    from core.science.selectors import select  # lazy: keeps this module light to import

    try:
        from core.science.flagship import LEVEL as level
    except ImportError:  # pragma: no cover - the flagship ships with the package
        level = 0.9

    def predict(curves: Sequence[Curve]) -> list[Estimate]:
        if not pooled and len(curves) > 1:
            return [e for c in curves for e in predict([c])]
        budget = max(max(c.sizes) for c in curves)
        if budget <= 0:
            return [Estimate(None, ok=False, reason="no fine-tuned point yet") for _ in curves]
        sel = select(method, curves, budget, target, seed=seed)
        return [
            Estimate(
                p.predicted,
                p.low,
                p.high,
                level=level,
                ok=bool(p.ok and p.predicted is not None),
                reason=p.reason,
            )
            for p in sel.predictions
        ]

    return predict


def to_selection(result: PolicyResult, target: int, seconds: float = 0.0, method: str = "adaptive"):
    """The policy's result as a ``core.science.prediction.Selection``, so the bench scores it like the rest.

    Scores are predicted target losses. The policy never picks an eliminated model,
    so if an eliminated model's frozen prediction lies below a survivor's, every
    eliminated score is shifted up by one constant (order among them kept) so the
    scores rank exactly as the policy does. ``budget`` is the largest size consumed.
    """
    from core.science.prediction import Prediction, Selection

    by_model = {o.model: o for o in result.outcomes}
    survivors = [o for o in result.outcomes if o.status != "eliminated" and o.predicted is not None]
    eliminated = [
        o for o in result.outcomes if o.status == "eliminated" and o.predicted is not None
    ]
    shift = 0.0
    if survivors and eliminated:
        gap = max(o.predicted for o in survivors) - min(o.predicted for o in eliminated)  # type: ignore[type-var]
        shift = max(0.0, gap) * 1.000001 + (1e-9 if gap >= 0 else 0.0)
    worst = max((o.predicted for o in survivors + eliminated), default=1.0) + shift  # type: ignore[type-var]
    preds = []
    for m in (o.model for o in result.outcomes):
        o = by_model[m]
        if o.predicted is None:
            preds.append(
                Prediction(m, worst + 1.0 + result.ranking.index(m), ok=False, reason=o.reason)
            )
            continue
        score = o.predicted + (shift if o.status == "eliminated" else 0.0)
        preds.append(
            Prediction(
                m, score, o.predicted, o.low, o.high, ok=True, reason=f"{o.status}: {o.reason}"
            )
        )
    return Selection(
        method,
        result.largest_size,
        target,
        tuple(preds),
        result.ranking,
        seconds,
        result.config.confidence,
    )
