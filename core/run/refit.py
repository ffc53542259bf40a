"""After a point: refit every live curve once, record the results, say what changed.

One refit runs the configured selector over every live model's curve (a pooled
selector shares strength across them), detects each model's phase transition
once, stores the typed results (FitResult, Transition, Prediction) on the
model's record, and yields LawFitted and PhaseDetected for each model that got
a point since the last refit, then the new ranking. The same objects go into
the events and into results.json; nothing is flattened to a dict and rebuilt
on the way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from core.config import RunConfig
from core.errors import one_line
from core.events import Event, LawFitted, PhaseDetected, RankEntry, RankingUpdated
from core.run.records import ModelRecord, RunRecord
from core.science.curves import Curve
from core.science.laws import FitResult
from core.science.phase import Transition, detect_transition
from core.science.prediction import Prediction, Selection
from core.science.predictive import PathPoint, predictive_paths
from core.science.selectors import select

CURVE_SAMPLES = 48
"""Points of a fitted law sent for the chart (log-spaced up to the target)."""


def refit(config: RunConfig, record: RunRecord, models: Sequence[str] = ()) -> Iterator[Event]:
    """Refit every live curve with the configured selector; report ``models``' laws and phases."""
    live = [m for m in record.models.values() if m.failed is None and m.curve().sizes]
    if not live:
        record.ranking = ()
        return
    curves = [m.curve() for m in live]
    selection, reason = _select(config, curves)
    if selection is None:
        failed = FitResult(config.selector, {}, False, reason=reason)
        for model in models:
            yield LawFitted(model=model, fit=failed, ok=False, reason=reason)
            yield PhaseDetected(model, Transition(None, 0.0, reason))
        yield RankingUpdated(record.ranking)
        return
    record.selector = {
        "method": selection.method,
        "budget": selection.budget,
        "target": selection.target,
        "seconds": selection.seconds,
    }
    for rec, curve, pred in zip(live, curves, selection.predictions, strict=True):
        rec.prediction = pred
        rec.transition = detect_transition(curve)  # once per model and refit
    by_model = {p.model: p for p in selection.predictions}
    # What the chart draws: the same selector asked between the budget and the target.
    paths = predictive_paths(
        config.selector, curves, selection.budget, config.target, seed=config.train.seed
    )
    record.ranking = tuple(
        _entry(rank, by_model[name], paths.get(name, ()))
        for rank, name in enumerate(selection.ranking, 1)
    )
    for model in models:
        if model in by_model:
            yield from _model_events(config, record.models[model], by_model[model])
    yield RankingUpdated(record.ranking)


def _select(config: RunConfig, curves: Sequence[Curve]) -> tuple[Selection | None, str]:
    """The selector's verdict on the live curves, or None and why there is none yet."""
    budget = max(max(c.sizes) for c in curves)
    if budget <= 0:  # only zero-shot points so far: nothing to fit a law to yet
        return None, "only the zero-shot point so far"
    try:
        selection = select(
            config.selector, curves, budget=budget, target=config.target, seed=config.train.seed
        )
    except Exception as exc:  # a selector problem is a result with a reason, not a crash
        return None, f"{config.selector} selection failed: {one_line(exc)}"
    return selection, ""


def _model_events(config: RunConfig, rec: ModelRecord, pred: Prediction) -> Iterator[Event]:
    fit = pred.fit or FitResult(config.selector, {}, False, reason=pred.reason)
    yield LawFitted(
        model=rec.model,
        fit=fit,
        ok=fit.ok and pred.ok,
        predicted_target=_num(pred.predicted),
        interval=(_num(pred.low), _num(pred.high)),
        reason=fit.reason or pred.reason or "",
        curve=sample_law(pred.fit, rec.curve().sizes, config.target),
    )
    assert rec.transition is not None  # set for every live model just above
    yield PhaseDetected(rec.model, rec.transition)


def sample_law(
    fit: FitResult | None, sizes: Sequence[int], target: int, n: int = CURVE_SAMPLES
) -> tuple[tuple[float, float], ...]:
    """The fitted law at ``n`` log-spaced sizes from the smallest trained one to the target."""
    if fit is None or not fit.ok:
        return ()
    trained = [float(s) for s in sizes if s > 0]
    if not trained or target <= min(trained):
        return ()
    grid = np.geomspace(min(trained), float(target), n)
    losses = np.asarray(fit.predict(grid), dtype=float)
    return tuple(
        (float(x), float(y))
        for x, y in zip(grid, losses, strict=True)
        if math.isfinite(y) and y > 0
    )


def _entry(rank: int, p: Prediction, path: tuple[PathPoint, ...]) -> RankEntry:
    return RankEntry(
        rank, p.model, _num(p.predicted), _num(p.low), _num(p.high), _num(p.score), path
    )


def _num(value: float | None, default: float = float("nan")) -> float:
    return default if value is None else float(value)
