"""Model selectors: rank candidate models by their (predicted) loss at a target size.

Every selector has one signature, (curves cut to the budget, budget, target,
seed) -> one ``Prediction`` per curve in input order, and is reached through
``select()``, which is the only place a selector gets its curves: it cuts them
to the budget itself, so no selector can look at the target column or any
point past the budget, however it is written.

A model a selector cannot score (failed fit, missing point) still gets a
fallback score with the reason, so a ranking always exists: law methods fall
back to the loss at the largest size seen, the others rank such a model last.

Metrics (``pearson``, ``rel_acc``, ``rmse_log``) follow Lin et al.'s
evaluation (src/draw.py of linhaowei1/Fine-tuning-Scaling-Law): PearCorr is
the Pearson correlation of a selector's score with the true target loss,
RelAcc = (worst - chosen) / (worst - best) on true target losses, where the
chosen model is the first one with the lowest score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from core.science.curves import Curve
from core.science.flagship import LEVEL, predict_lensllm
from core.science.laws import fit_law
from core.science.phase import detect_transition
from core.science.prediction import Prediction, Selection

Selector = Callable[[Sequence[Curve], int, int, int], list[Prediction]]

METHODS: tuple[str, ...] = (
    "lensllm",
    "ats",
    "rectified",
    "vanilla",
    "subtuning",
    "zeroshot",
    "modelsize",
)

INTERVAL_LEVELS: dict[str, float] = {"lensllm": LEVEL}
"""Two-sided level of each interval-giving method's (low, high); the others give none."""

ATS_K = 3
"""AtS: the last k points are trusted to be in the power phase."""
ATS_DELTA = 5.0
"""AtS: a point more than delta residual standard deviations off the line of
the points after it ends the power phase."""


def _positive(c: Curve) -> tuple[np.ndarray, np.ndarray]:
    keep = [i for i, s in enumerate(c.sizes) if s > 0]
    return (
        np.asarray([c.sizes[i] for i in keep], dtype=np.float64),
        np.asarray([c.losses[i] for i in keep], dtype=np.float64),
    )


def _last_seen(c: Curve, why: str, method: str) -> Prediction:
    """Fallback for law methods: the loss at the largest size seen."""
    d, y = _positive(c)
    if y.size:
        return Prediction(
            c.model,
            float(y[-1]),
            ok=False,
            reason=f"{method}: {why}; ranked by the loss at {int(d[-1])}",
        )
    return _last(c, f"{why}; no fine-tuned point to fall back on", method)


def _last(c: Curve, why: str, method: str) -> Prediction:
    return Prediction(c.model, math.inf, ok=False, reason=f"{method}: {why}; ranked last")


def _subtuning(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
    out = []
    for c in curves:
        d, y = _positive(c)
        if not y.size:
            out.append(_last(c, "no fine-tuned point within the budget", "subtuning"))
        elif d[-1] != budget:
            out.append(
                Prediction(c.model, float(y[-1]), reason=f"no point at {budget}; used {int(d[-1])}")
            )
        else:
            out.append(Prediction(c.model, float(y[-1])))
    return out


def _zeroshot(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
    out = []
    for c in curves:
        if c.sizes and c.sizes[0] == 0:
            out.append(Prediction(c.model, float(c.losses[0])))
        else:
            out.append(_last(c, "no zero-shot loss (column 0)", "zeroshot"))
    return out


def _modelsize(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
    """Bigger ranks higher: score = -log(parameter count).

    Lin et al. use log(size) as this method's feature; the minus sign makes
    "lower ranks first" hold like every other score (so a useful selector has
    a positive PearCorr), and the log keeps the magnitudes of their table.
    """
    out = []
    for c in curves:
        if c.params is not None and math.isfinite(c.params) and c.params > 0:
            out.append(Prediction(c.model, -math.log(float(c.params))))
        else:
            out.append(_last(c, "parameter count unknown", "modelsize"))
    return out


# --- law fits --------------------------------------------------------------------


def _law_selector(law: str) -> Selector:
    def run(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
        out = []
        for c in curves:
            fit = fit_law(law, c.sizes, c.losses, seed=seed)
            trans = detect_transition(c).size
            pred = float(fit.predict([target])[0]) if fit.ok else math.nan
            if fit.ok and math.isfinite(pred) and pred > 0:
                out.append(Prediction(c.model, pred, pred, transition=trans, fit=fit))
            else:
                why = fit.reason or "non-finite prediction"
                p = _last_seen(c, f"fit failed ({why})", law)
                out.append(
                    Prediction(
                        p.model, p.score, transition=trans, fit=fit, ok=False, reason=p.reason
                    )
                )
        return out

    run.__doc__ = f"Score = the {law} law's predicted loss at the target."
    return run


# --- Accept-then-Stop (Lin et al., 2024) ------------------------------------------


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares y = a + b x; with one point, a flat line through it
    (what scikit-learn's LinearRegression, used by Lin et al., returns)."""
    if x.size == 1:
        return float(y[0]), 0.0
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (y - ym)) / sxx) if sxx > 0 else 0.0
    return float(ym - b * xm), b


def ats_transition(
    sizes: np.ndarray, losses: np.ndarray, k: int = ATS_K, delta: float = ATS_DELTA
) -> int:
    """Index of the last pre-power point by AtS's standardized-residual test.

    Walking back from the end: fit a log-log line to the last p points
    (p = k, k+1, ...), and stop at the first point before them whose residual
    exceeds delta times the (population) residual standard deviation of that
    fit. Returns len - p - 1 at the stop, len - (len - 1) - 1 = 0 when no
    point is rejected (so the first point is always dropped, as in their
    code), and -1 when there are k points or fewer (keep them all).
    """
    n = sizes.size
    if n <= k:
        return -1
    lx, ly = np.log(sizes), np.log(losses)
    p = k
    for p in range(k, n):
        tx, ty = lx[n - p :], ly[n - p :]
        a, b = _ols(tx, ty)
        sd = float(np.std(ty - (a + b * tx)))
        off = abs(ly[n - p - 1] - (a + b * lx[n - p - 1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            std_res = np.float64(off) / np.float64(sd)  # inf (or nan) on an exact line, as theirs
        if std_res > delta:
            break
    return n - p - 1


def _ats(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
    """Accept-then-Stop: drop the pre-power points, extrapolate a log-log line.

    Follows ``ats_select`` of Lin et al.'s src/model_select.py: the zero-shot
    point is not used; the score is the extrapolated target loss.
    """
    out = []
    for c in curves:
        d, y = _positive(c)
        if not y.size:
            out.append(_last(c, "no fine-tuned point within the budget", "ats"))
            continue
        j = ats_transition(d, y)
        pd, py = d[j + 1 :], y[j + 1 :]
        a, b = _ols(np.log(pd), np.log(py))
        pred = float(np.exp(a + b * math.log(target)))
        if not (math.isfinite(pred) and pred > 0):
            out.append(_last_seen(c, "non-finite extrapolation", "ats"))
            continue
        out.append(Prediction(c.model, pred, pred, transition=int(pd[0])))
    return out


# --- the flagship ------------------------------------------------------------------


def _lensllm(curves: Sequence[Curve], budget: int, target: int, seed: int) -> list[Prediction]:
    """Phase-aware LensLLM law with intervals; lives in core/science/flagship.py."""
    return list(predict_lensllm(curves, budget, target, seed=seed))


SELECTORS: dict[str, Selector] = {
    "lensllm": _lensllm,
    "ats": _ats,
    "rectified": _law_selector("rectified"),
    "vanilla": _law_selector("vanilla"),
    "subtuning": _subtuning,
    "zeroshot": _zeroshot,
    "modelsize": _modelsize,
}


def select(
    method: str, curves: Sequence[Curve], budget: int, target: int, *, seed: int = 0
) -> Selection:
    """Rank ``curves`` by ``method`` using only the points at sizes <= ``budget``.

    Raises ValueError (one line) for an unknown method, a non-positive budget,
    a target not above the budget, or no curves; everything that can go wrong
    per model is a Prediction with ok=False and a reason instead.
    """
    if method not in SELECTORS:
        raise ValueError(f"unknown method {method!r} (expected one of: {', '.join(METHODS)})")
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if target <= budget:
        raise ValueError(f"target {target} must be above the budget {budget}")
    if not curves:
        raise ValueError("no curves to select from")
    seen = [c.up_to(budget) for c in curves]
    t0 = time.perf_counter()
    try:
        raw = SELECTORS[method](seen, budget, target, seed)
    except Exception as exc:  # a selector bug must not lose the ranking
        why = f"selector crashed: {type(exc).__name__}: {exc}".splitlines()[0]
        raw = [_last_seen(c, why, method) for c in seen]
    seconds = time.perf_counter() - t0
    preds = _conform(raw, seen, method)
    order = sorted(
        range(len(preds)),
        key=lambda i: (math.isnan(preds[i].score), preds[i].score, i),
    )
    return Selection(
        method,
        budget,
        target,
        tuple(preds),
        tuple(preds[i].model for i in order),
        seconds,
        INTERVAL_LEVELS.get(method),
    )


def _conform(raw: Sequence[Prediction], seen: Sequence[Curve], method: str) -> list[Prediction]:
    """One prediction per curve, in input order, each with a usable score."""
    by_model = {p.model: p for p in raw}
    out = []
    for c in seen:
        p = by_model.get(c.model)
        if p is None:
            out.append(_last_seen(c, "selector returned no prediction", method))
        elif not isinstance(p.score, (int, float)) or math.isnan(p.score):
            fb = _last_seen(c, p.reason or "no score", method)
            out.append(
                Prediction(
                    p.model,
                    fb.score,
                    p.predicted,
                    p.low,
                    p.high,
                    p.transition,
                    p.fit,
                    False,
                    fb.reason,
                )
            )
        else:
            out.append(p)
    return out
