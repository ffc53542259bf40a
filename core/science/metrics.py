"""How good a ranking is: PearCorr, RelAcc and RMSE of log loss against the true target losses.

They follow Lin et al.'s evaluation (src/draw.py of
linhaowei1/Fine-tuning-Scaling-Law): PearCorr is the Pearson correlation of a
selector's score with the true target loss, RelAcc = (worst - chosen) /
(worst - best) on true target losses, where the chosen model is the first one
with the lowest score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _pairs(a: Sequence[float | None], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray([math.nan if v is None else v for v in a], dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def pearson(scores: Sequence[float], true_losses: Sequence[float]) -> float:
    """Pearson correlation of scores with true target losses (scipy.stats.pearsonr).

    Pairs with a non-finite score or truth are left out. Constant scores (or
    truths) carry no ranking information: the correlation is reported as 0.0
    rather than scipy's NaN, so a mean over cells stays defined. Fewer than two
    usable pairs: NaN.
    """
    from scipy.stats import pearsonr

    x, y = _pairs(scores, true_losses)
    if x.size < 2:
        return math.nan
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(pearsonr(x, y)[0])


def rel_acc(scores: Sequence[float], true_losses: Sequence[float]) -> float:
    """(worst - chosen) / (worst - best) of true target losses; 1.0 picks the best.

    The chosen model is the first with the lowest score, as in Lin et al.'s
    evaluation (argmin of the rank). Models without a true loss are left out;
    all-equal truths give 1.0 (any choice is the best).
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(true_losses, dtype=np.float64)
    keep = np.isfinite(t) & ~np.isnan(s)
    if not keep.any():
        return math.nan
    s, t = s[keep], t[keep]
    chosen = t[int(np.argmin(s))]
    worst, best = float(t.max()), float(t.min())
    if worst == best:
        return 1.0
    return float((worst - chosen) / (worst - best))


def rmse_log(predicted: Sequence[float | None], true_losses: Sequence[float]) -> float | None:
    """RMSE of log predicted vs log true target loss; None if nothing was predicted."""
    x, y = _pairs(predicted, true_losses)
    keep = (x > 0) & (y > 0)
    if not keep.any():
        return None
    return float(np.sqrt(np.mean((np.log(x[keep]) - np.log(y[keep])) ** 2)))
