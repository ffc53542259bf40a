"""A deterministic synthetic event stream, for snapshot tests and offline demos.

It is not the engine and never pretends to be: losses follow a rectified law
with made-up parameters, times are fixed, and nothing is trained. It exists so
the dashboard can be rendered identically on every machine (snapshots) and
exercised without torch (fast UI tests). The real run drives
``core.run.runner.run_events`` through exactly the same ``EventSource`` signature.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from core import events as ev
from core.config import RunConfig
from core.science.laws import FitResult
from core.science.phase import Transition

T0 = 1_700_000_000.0
"""Fixed start time so elapsed times and ETAs render the same every run."""


def _law(size: float, B: float, F: float, beta: float, E: float) -> float:
    return B / (F + size**beta) + E


def _params(i: int) -> dict[str, float]:
    # Spread the models so curves cross: the best model at the target is not
    # the best on the smallest subset.
    return {"B": 20.0 + 30.0 * i, "F": 4.0 + 6.0 * i, "beta": 0.45 + 0.09 * i, "E": 2.2 - 0.2 * i}


def synthetic_events(
    config: RunConfig,
    cancel: threading.Event | None = None,
    *,
    pause: threading.Event | None = None,
    hold_after: int | None = None,
    fail_model: str | None = None,
    steps: int = 4,
    delay: float = 0.0,
) -> Iterator[ev.Event]:
    """Yield a plausible, fully deterministic run over ``config``'s models and ladder.

    hold_after: after that many finished points, start the next point and then
    wait (for ``cancel``) instead of going on, leaving the UI mid-run.
    fail_model: this model fails to load (ModelFailed) at its first point.
    delay: seconds to sleep per progress event, to make a demo watchable.
    pause: while set, no further step is made (as the engine's training holds).
    """
    cancel = cancel or threading.Event()
    models = list(config.models)
    sizes = list(config.sizes)
    live = [m for m in models if m != fail_model]
    total = len(models) * len(sizes)
    t = T0
    out_dir = config.out_dir or "runs/synthetic"
    yield ev.RunStarted(tuple(models), tuple(sizes), config.target, out_dir, "synthetic", total, t)
    finished = 0
    index = 0
    curves: dict[str, dict[int, float]] = {m: {} for m in live}
    failed: list[tuple[str, str]] = []
    for size in sizes:
        for i, model in enumerate(models):
            if model not in live and any(f[0] == model for f in failed):
                continue
            index += 1
            t += 0.5
            yield ev.PointStarted(model, size, index, total, t)
            if model == fail_model:
                reason = f"cannot load {model}: not a model directory (synthetic failure)"
                failed.append((model, reason))
                yield ev.ModelFailed(model, reason, t)
                continue
            p = _params(i)
            seconds = size / 100.0
            for step in range(1, steps + 1):
                if cancel.is_set():
                    yield ev.RunCancelled(out_dir, "cancelled by user", t)
                    return
                t += seconds / steps
                while pause is not None and pause.is_set() and not cancel.wait(0.05):
                    pass
                if delay:
                    cancel.wait(delay)
                train = _law(size * step / steps, **p) + 0.3 * (steps - step) / steps
                yield ev.PointProgress(model, size, step, steps, round(train, 4), t)
            loss = round(_law(size, **p), 4)
            curves[model][size] = loss
            finished += 1
            yield ev.PointFinished(
                model,
                size,
                ev.PointMeasurements(loss, 6.0 * 1e6 * size * (1 + i), seconds),
                False,
                t,
            )
            if hold_after is not None and finished >= hold_after:
                order = [(m, s) for s in sizes for m in live]
                nxt = order[finished] if finished < len(order) else None
                yield from _hold(nxt, index, total, t, out_dir, cancel)
                return
        t += 0.1
        yield from _fit_and_rank(live, curves, models, config.target, t)
    ranking = _ranking(live, models, config.target)
    t += 0.1
    yield ev.RunFinished(out_dir, ranking, tuple(failed), t - T0, t)


def _hold(
    nxt: tuple[str, int] | None,
    index: int,
    total: int,
    t: float,
    out_dir: str,
    cancel: threading.Event,
) -> Iterator[ev.Event]:
    # Start the next point, show some progress, then wait like a long step.
    if nxt is not None:
        model, size = nxt
        yield ev.PointStarted(model, size, index + 1, total, t + 0.5)
        yield ev.PointProgress(model, size, 2, 5, 3.1234, t + 1.0)
    while not cancel.wait(0.05):
        pass
    yield ev.RunCancelled(out_dir, "cancelled by user", t + 1.5)


def _fit_and_rank(live, curves, models, target, t) -> Iterator[ev.Event]:
    for model in live:
        pts = curves[model]
        if len(pts) < 2:
            continue
        i = models.index(model)
        p = _params(i)
        pred = _law(target, **p)
        width = 0.5 / len(pts)
        yield ev.LawFitted(
            model,
            FitResult("rectified", dict(p), True, 0.001 * i, n_points=len(pts)),
            True,
            round(pred, 4),
            (round(pred - width, 4), round(pred + width, 4)),
            "",
            t,
        )
        first_power = [s for s in sorted(pts) if s ** p["beta"] > p["F"]]
        size = first_power[0] if first_power else None
        yield ev.PhaseDetected(model, Transition(size, 0.8, "synthetic"), t)
    ranked = [m for m in live if len(curves[m]) >= 2]
    if ranked:
        yield ev.RankingUpdated(_ranking(ranked, models, target), 0.9, t)


def _ranking(live, models, target) -> tuple[ev.RankEntry, ...]:
    preds = sorted((_law(target, **_params(models.index(m))), m) for m in live)
    out = []
    for rank, (pred, m) in enumerate(preds, start=1):
        w = 0.5 / 4
        out.append(
            ev.RankEntry(rank, m, round(pred, 4), round(pred - w, 4), round(pred + w, 4), pred)
        )
    return tuple(out)


def loss_at(model_index: int, size: float) -> float:
    """The synthetic law's loss for a model index (tests check the chart against it)."""
    return _law(size, **_params(model_index))


__all__ = ["T0", "loss_at", "synthetic_events"]
