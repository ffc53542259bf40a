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


# --- intervals ---------------------------------------------------------------------
#
# Each function takes one (low, high) per model and the true target losses, and uses
# only the models that have both an interval and a truth: a model a method gave no
# interval is not counted as a miss, the method simply said nothing about it.


def _intervals(
    low: Sequence[float | None], high: Sequence[float | None], truth: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.asarray([math.nan if v is None else v for v in low], dtype=np.float64)
    hi = np.asarray([math.nan if v is None else v for v in high], dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    keep = ~np.isnan(lo) & ~np.isnan(hi) & np.isfinite(t)
    return lo[keep], hi[keep], t[keep]


def coverage(
    low: Sequence[float | None], high: Sequence[float | None], truth: Sequence[float]
) -> float | None:
    """Share of models whose true target loss lies in [low, high]; None without intervals."""
    lo, hi, t = _intervals(low, high, truth)
    if not t.size:
        return None
    return float(np.mean((t >= lo) & (t <= hi)))


def interval_ratio(low: Sequence[float | None], high: Sequence[float | None]) -> float | None:
    """Median of high / low: how many-fold the intervals span (1 is a point).

    An interval reaching down to zero spans an unbounded factor (inf)."""
    lo, hi, _ = _intervals(low, high, [1.0] * len(low))
    if not lo.size:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), math.inf)
    return float(np.median(r))


def interval_score(
    low: Sequence[float | None],
    high: Sequence[float | None],
    truth: Sequence[float],
    level: float,
) -> float | None:
    """Mean interval (Winkler) score at two-sided ``level``, in loss units; lower is better.

    (high - low) + 2/alpha (low - y) if y < low, + 2/alpha (y - high) if y > high,
    alpha = 1 - level (Gneiting and Raftery 2007, eq. 43): a proper score, so a
    method cannot lower it by reporting intervals narrower or wider than it believes.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    lo, hi, t = _intervals(low, high, truth)
    if not t.size:
        return None
    a = 1.0 - level
    s = (hi - lo) + (2 / a) * np.maximum(lo - t, 0.0) + (2 / a) * np.maximum(t - hi, 0.0)
    return float(np.mean(s))
