"""The predicted curve ends exactly at the ranking's prediction and carries its interval."""

from __future__ import annotations

import math

import numpy as np

from core.science.curves import Curve
from core.science.predictive import predictive_paths
from core.science.selectors import select


def _curves() -> list[Curve]:
    sizes = (200, 400, 800, 1600, 3200)
    out = []
    for name, (b, beta, e) in {
        "a": (8.0, 0.20, 1.0),
        "b": (12.0, 0.30, 1.1),
        "c": (6.0, 0.12, 0.8),
        "d": (10.0, 0.25, 1.2),
    }.items():
        losses = tuple(float(b / s**beta + e) for s in sizes)
        out.append(Curve(name, sizes, losses))
    return out


def test_path_ends_at_the_ranked_prediction_with_its_interval() -> None:
    curves = _curves()
    sel = select("lensllm", curves, budget=3200, target=51200)
    paths = predictive_paths("lensllm", curves, 3200, 51200)
    for p in sel.predictions:
        path = paths[p.model]
        assert len(path) >= 5
        size, median, low, high = path[-1]
        assert size == 51200 and median == p.predicted and (low, high) == (p.low, p.high)
        xs = [pt[0] for pt in path]
        assert xs == sorted(xs) and xs[0] > 3200
        assert all(lo <= m <= hi for _, m, lo, hi in path)
        widths = [math.log(hi / lo) for _, _, lo, hi in path]
        assert widths[-1] > widths[0]  # the interval widens toward the target


def test_no_path_without_room_between_budget_and_target() -> None:
    curves = _curves()
    assert predictive_paths("lensllm", curves, 3200, 3200) == {c.model: () for c in curves}
    vanilla = predictive_paths("vanilla", curves, 3200, 51200)
    assert all(np.isnan(pt[2]) for pts in vanilla.values() for pt in pts)
