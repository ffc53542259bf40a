"""Where a fine-tuning curve leaves the flat pre-power phase for the power phase.

In log-log coordinates a curve in the power phase is a straight line; before
it (Lin et al.'s "pre-power phase") it is flatter. The detector compares, by
BIC, every "hinge" model -- a continuous broken line in (log D, log L) whose
knot sits at a measured size j, flatter (or at least differently sloped) to
the left and straight from j on -- with the single straight line (no
pre-power phase). BIC weights exp(-BIC/2), normalised over all candidates,
approximate the posterior probability of each knot under a uniform prior
(Schwarz, 1978; Burnham & Anderson, 2002), so the reported confidence is the
posterior mass of the chosen knot rather than a pass/fail threshold.

Why not only Accept-then-Stop's test (``core.science.selectors`` uses it for ``ats``)?
It gives a yes/no with a hand-set threshold (delta = 5 standard deviations)
and its residual scale comes from as few as three points, so it carries no
measure of how sure the call is; the model comparison does, and it uses every
point on both sides of the knot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.science.curves import Curve

MIN_POWER_POINTS = 3
"""The power phase needs at least three points to show it is straight."""

NOISE_FLOOR = 2e-3
"""Smallest RMS log-loss residual credited to any model (about 0.2%, the
repeat-to-repeat noise of a measured test loss): without it two exactly
straight synthetic points would make the BIC of a perfect fit -inf."""


@dataclass(frozen=True)
class Transition:
    """First size of the power phase (None when it cannot be judged) and the call's confidence."""

    size: int | None
    confidence: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "confidence": self.confidence, "reason": self.reason}


def _line_rss(x: np.ndarray, y: np.ndarray) -> float:
    a = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(np.sum((y - a @ coef) ** 2))


def _hinge_rss(x: np.ndarray, y: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """RSS of the broken-line fit for every knot at once (stacked pseudo-inverses)."""
    a = np.stack(
        [
            np.broadcast_to(np.ones_like(x), (knots.size, x.size)),
            np.broadcast_to(x, (knots.size, x.size)),
            np.minimum(x[None, :] - knots[:, None], 0.0),
        ],
        axis=2,
    )  # (knots, points, 3)
    coef = np.linalg.pinv(a) @ y  # (knots, 3)
    resid = y[None, :] - np.einsum("kpc,kc->kp", a, coef)
    return np.sum(resid**2, axis=1)


def detect_transition(
    curve_or_sizes_losses: Curve | tuple[Sequence[float], Sequence[float]],
) -> Transition:
    """Locate the pre-power -> power transition of one measured curve.

    Accepts a ``Curve`` or a ``(sizes, losses)`` pair. The zero-shot point
    (size 0) has no place on a log axis and is ignored.
    """
    if isinstance(curve_or_sizes_losses, Curve):
        sizes, losses = curve_or_sizes_losses.sizes, curve_or_sizes_losses.losses
    else:
        sizes, losses = curve_or_sizes_losses
    try:
        d = np.asarray(sizes, dtype=np.float64).reshape(-1)
        v = np.asarray(losses, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return Transition(None, 0.0, "sizes and losses must be numbers")
    if d.shape != v.shape:
        return Transition(None, 0.0, f"{d.size} sizes but {v.size} losses")
    keep = np.isfinite(d) & np.isfinite(v) & (d > 0) & (v > 0)
    d, v = d[keep], v[keep]
    order = np.argsort(d)
    d, v = d[order], v[order]
    n = d.size
    if n < MIN_POWER_POINTS + 1:
        return Transition(None, 0.0, f"too few points to judge ({n} < {MIN_POWER_POINTS + 1})")
    x, y = np.log(d), np.log(v)
    floor = n * NOISE_FLOOR**2

    def bic(rss: float, k: int) -> float:
        return n * math.log(max(rss, floor) / n) + k * math.log(n)

    # candidate j = index of the first power-phase point; j = 0 is the straight line
    scores = [bic(_line_rss(x, y), 2)]
    # hinge: intercept, slope, slope change, and the knot (a discrete parameter)
    hinge = _hinge_rss(x, y, x[1 : n - MIN_POWER_POINTS + 1])
    scores.extend(bic(float(r), 4) for r in hinge)
    s = np.asarray(scores)
    w = np.exp(-(s - s.min()) / 2.0)
    w /= w.sum()
    j = int(np.argmax(w))
    conf = float(w[j])
    if j == 0:
        return Transition(
            int(d[0]), conf, "no pre-power phase: one straight log-log line fits best"
        )
    return Transition(
        int(d[j]),
        conf,
        f"power phase from {int(d[j])} (broken line, BIC weight {conf:.2f})",
    )
