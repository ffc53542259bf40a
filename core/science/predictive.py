"""The predicted curve from the budget to the target: what a selector says at each size between.

The dashboard used to draw the fitted law, which is not what ranks models: the
flagship's prediction is the median of a predictive distribution from a trend
filter plus an acceleration pooled over all candidates (core/science/flagship.py),
and at the target it can sit on the other side of another model's line than
the law does. So the line drawn is the selector itself, asked at sizes between
the budget and the target: each point is the predictive median with its
interval, and the last one is exactly the ranking's prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from core.science.curves import Curve
from core.science.selectors import select

PathPoint = tuple[float, float, float, float]
"""(training samples, predicted median loss, interval low, interval high)."""

PATH_POINTS = 8
"""Sizes asked between the budget and the target (log-spaced, the target last)."""


def predictive_paths(
    method: str,
    curves: Sequence[Curve],
    budget: int,
    target: int,
    *,
    seed: int = 0,
    n: int = PATH_POINTS,
) -> dict[str, tuple[PathPoint, ...]]:
    """Each model's prediction at ``n`` sizes from just above ``budget`` to ``target``.

    A model without a finite prediction at some size (a fallback score, no
    interval) gets no point there; one with none at all gets an empty path. The
    interval is the selector's own (nan where it gives none).
    """
    if budget <= 0 or target <= budget or not curves:
        return {c.model: () for c in curves}
    grid = np.geomspace(budget, target, n + 1)[1:]
    sizes = sorted({int(float(s) + 0.5) for s in grid} | {target})
    paths: dict[str, list[PathPoint]] = {c.model: [] for c in curves}
    for size in sizes:
        if size <= budget:
            continue
        try:
            selection = select(method, curves, budget=budget, target=size, seed=seed)
        except ValueError:
            continue
        for p in selection.predictions:
            if p.ok and p.predicted is not None and math.isfinite(p.predicted):
                low = p.low if p.low is not None else math.nan
                high = p.high if p.high is not None else math.nan
                paths[p.model].append((float(size), float(p.predicted), float(low), float(high)))
    return {m: tuple(pts) for m, pts in paths.items()}
