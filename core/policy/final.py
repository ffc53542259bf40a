"""The end of an adaptive run: every candidate's prediction refitted on all it measured.

During a run the policy keeps, per model, the estimate it last made, and an
eliminated model keeps the one it was dropped on, made from fewer points and
(with a per-model predictor) without the other candidates' curves that a pooled
predictor such as the flagship shares strength from. The ranking of all
candidates is then worth less than the pick (on FLAN its PearCorr was 40%), so
at the end every model is refitted once, all together, on every point the run
measured; what could not be refitted stays and is marked stale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from core.policy.adaptive import Estimate, ModelOutcome, PolicyResult, Predictor, interval_at
from core.science.curves import Curve


def refit_result(
    result: PolicyResult, curves: Sequence[Curve], predictor: Predictor
) -> PolicyResult:
    """``result`` with each outcome's prediction from one call of ``predictor`` on ``curves``.

    ``curves`` are the points the policy measured, one per outcome (any order).
    Intervals are rescaled to the policy's confidence, as during the run (without the
    run's drift widening: the refit is the final word, not a step of a moving
    estimate). The ranking keeps the policy's groups (survivors, then eliminated
    models, then failed ones) and orders each group by its refitted prediction, so
    the pick is still a survivor. A model whose refit fails keeps its old prediction,
    marked ``stale``, with the reason.
    """
    by_model = {c.model: c for c in curves}
    fit = [o for o in result.outcomes if o.model in by_model and by_model[o.model].sizes]
    fit = [o for o in fit if any(s > 0 for s in by_model[o.model].sizes)]
    try:
        ests = list(predictor([by_model[o.model] for o in fit]))
        if len(ests) != len(fit):
            raise ValueError(f"{len(ests)} estimates for {len(fit)} curves")
    except Exception as exc:  # the run's own estimates stand, marked stale
        why = f"final refit failed: {exc}".splitlines()[0]
        ests = [Estimate(None, ok=False, reason=why) for _ in fit]
    fresh = dict(zip((o.model for o in fit), ests, strict=True))
    outcomes = tuple(_refitted(o, fresh.get(o.model), result) for o in result.outcomes)
    return dataclasses.replace(result, outcomes=outcomes, ranking=_ranking(outcomes, result))


def _refitted(o: ModelOutcome, est: Estimate | None, result: PolicyResult) -> ModelOutcome:
    if est is None or not est.usable:
        if est is None or o.predicted is None:
            return o
        why = est.reason or "no usable refit"
        return dataclasses.replace(o, stale=True, reason=f"{o.reason}; {why}".lstrip("; "))
    low, high = interval_at(est, result.config.confidence)
    return dataclasses.replace(o, predicted=est.predicted, low=low, high=high, stale=False)


def _ranking(outcomes: Sequence[ModelOutcome], result: PolicyResult) -> tuple[str, ...]:
    """Survivors, eliminated, failed (the policy's groups); each by refitted prediction."""
    order = {m: i for i, m in enumerate(result.ranking)}

    def group(o: ModelOutcome) -> int:
        if o.status == "failed" or o.predicted is None:
            return 2
        return 1 if o.status == "eliminated" else 0

    def key(o: ModelOutcome) -> tuple[int, float, int]:
        p = o.predicted if o.predicted is not None and math.isfinite(o.predicted) else math.inf
        return (group(o), p, order.get(o.model, len(order)))

    return tuple(o.model for o in sorted(outcomes, key=key))
