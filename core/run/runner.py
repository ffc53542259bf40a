"""The progressive schedule across candidates, as one plain generator of events.

``run_events`` is the whole engine loop: for each model, the zero-shot loss and
then each size of the ladder, refitting the model's law and the ranking after
every new point. It is a generator of ``core.events`` so that every front end
(the Textual worker, the headless console, the tests) consumes the same stream
and none of them holds engine state.

Training runs in a helper thread while the generator polls it, because
``train_point`` reports progress through a callback and a generator cannot
yield from inside a callback; polling also lets progress be emitted by time
(about every 0.25 s) rather than per step. The cancel event is checked between
points and handed to ``train_point``, which checks it every step.

Every finished point goes to the SQLite store (core/store.py) in one
transaction before anything else happens, and results.json / curves.csv are
rewritten atomically after every point, so a crash loses at most the point in
progress and a rerun into the same directory recomputes only what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.config import RunConfig
from core.errors import ConfigError, one_line
from core.events import (
    Event,
    LawFitted,
    ModelEliminated,
    ModelFailed,
    NTKComputed,
    PhaseDetected,
    PointFailed,
    PointFinished,
    PointProgress,
    PointStarted,
    PolicyStopped,
    RankEntry,
    RankingUpdated,
    RunCancelled,
    RunFinished,
    RunStarted,
)
from core.paths import CONFIG_NAME, RUNS_DIR, STORE_NAME
from core.run.records import ModelRecord, PointRecord, RunRecord
from core.run.store import PointKey, Store, StoredPoint, settings_hash
from core.science.curves import Curve
from core.science.phase import detect_transition
from core.science.spectrum import NTKSpectrum

PROGRESS_INTERVAL = 0.25
"""Seconds between PointProgress events: by time, never per step."""


def plan_sizes(config: RunConfig, sizes: list[int]) -> list[int]:
    """The sizes to measure for one model, in order: zero-shot (0) then the ladder.

    The one place a scheduling policy decides what to run; an adaptive policy
    (issue 8) replaces this with a decision after each point.
    """
    if config.policy not in ("ladder", "adaptive"):
        raise ConfigError(f"policy must be 'ladder' or 'adaptive', not {config.policy!r}")
    return [0, *sizes]  # adaptive: the most it may run; _run_adaptive picks from these


def resolve_out_dir(config: RunConfig, now: float | None = None) -> Path:
    """The run's directory: config.out_dir, or a new timestamped one under ./runs/."""
    if config.out_dir:
        return Path(config.out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = RUNS_DIR / stamp
    n = 2
    while path.exists():
        path = RUNS_DIR / f"{stamp}-{n}"
        n += 1
    return path


def point_hparams(config: RunConfig, device_kind: str) -> dict[str, Any]:
    """What, besides model, data fingerprint, size and seed, decides a point's loss."""
    train = dataclasses.asdict(config.train)
    train.pop("seed")
    return {"train": train, "data": dataclasses.asdict(config.data), "device": device_kind}


def run_events(
    config: RunConfig,
    cancel: threading.Event | None = None,
    *,
    pause: threading.Event | None = None,
) -> Iterator[Event]:
    """Run ``config`` and yield its events; ConfigError/DataError for run-level problems.

    Configuration problems (an unavailable policy) raise here, before the
    generator starts; a dataset that cannot be loaded raises ``DataError`` on
    the first ``next()``. Per-model problems are events (ModelFailed), never
    exceptions. The generator may be closed early: it then stops training and
    closes the store. While ``pause`` is set, training holds at its next step
    (and no new point starts) until it is cleared; cancel still stops it.
    """
    plan_sizes(config, config.sizes)  # reject an unavailable policy now, with one line
    return _run(
        config,
        cancel if cancel is not None else threading.Event(),
        pause if pause is not None else threading.Event(),
    )


def _run(config: RunConfig, cancel: threading.Event, pause: threading.Event) -> Iterator[Event]:
    from core.training import data as data_mod

    t0 = time.time()
    out_dir = resolve_out_dir(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, out_dir=str(out_dir))
    config.save_toml(out_dir / CONFIG_NAME)

    task = data_mod.load_task(config.data)
    sizes, warnings = _clip_ladder(task, config.sizes)
    record = RunRecord(
        config=config,
        out_dir=out_dir,
        models={m: ModelRecord(m) for m in config.models},
        dataset={
            "source": config.data.source,
            "fingerprint": task.fingerprint,
            "train_examples": task.max_train_size,
            "sizes": sizes,
        },
        warnings=warnings,
    )
    run = _Run(
        config, task, Store(out_dir / STORE_NAME), record, cancel, pause, _device(config.device)
    )
    plans = {m: plan_sizes(config, sizes) for m in config.models}
    total = sum(len(p) for p in plans.values())
    try:
        yield RunStarted(
            models=tuple(config.models),
            sizes=tuple(sizes),
            target=config.target,
            out_dir=str(out_dir),
            dataset=config.data.source,
            total_points=total,
            warnings=tuple(warnings),
        )
        record.write()
        index = 0
        if config.policy == "adaptive":
            yield from _run_adaptive(run, sizes, total)
        for name in config.models if config.policy == "ladder" else ():
            yield from run.model(name, plans[name], index, total)
            index += len(plans[name])
            if cancel.is_set():
                break

        record.seconds = time.time() - t0
        if cancel.is_set():
            record.status = "cancelled"
            record.write()
            yield RunCancelled(str(out_dir), "cancelled", kept=run.computed + run.reused)
            return
        record.status = "finished"
        record.write()
        yield RunFinished(
            str(out_dir),
            record.ranking,
            tuple(record.failures()),
            record.seconds,
            computed=run.computed,
            reused=run.reused,
        )
    finally:
        run.stop.set()
        run.store.close()


def _run_adaptive(run: _Run, sizes: list[int], total: int) -> Iterator[Event]:
    """The adaptive policy (core/adaptive.py): after each point it picks the next one.

    Zero-shot first for every model, then whatever the policy asks for, one point
    at a time through ``_Run.model`` (so stored points are reused and the NTK
    spectrum is probed once; the weights are reloaded per point, which keeps one
    model in memory at a time). A model the policy eliminates gets no more
    compute: ModelEliminated says why and how much ladder compute that saves.

    Cost is the issue's live charge, 6 x parameters x training tokens per point
    (evaluation is left out: the ladder and full fine-tuning evaluate alike).
    Before a model's first trained point its cost per sample is guessed from its
    zero-shot point, 6 x parameters x non-pad tokens per test example; the policy
    then re-measures it from every point it is charged. With ``adaptive.budget``
    set the policy never starts a point whose estimated cost would take the run
    past that fraction of full fine-tuning, and stops when no point fits.
    PolicyStopped (and ``policy`` in results.json) reports why it stopped, what
    it spent, the fraction of full fine-tuning, and the compute saved.
    """
    from core.policy.adaptive import AdaptiveConfig, AdaptivePolicy
    from core.policy.replay import selector_predictor
    from core.training import models as models_mod

    config = run.config
    ad = config.adaptive
    index = 0
    names: list[str] = []
    params: dict[str, float] = {}
    probed: set[str] = set()

    def one_point(name: str, size: int, at: int) -> Iterator[Event]:
        # one point per call; the NTK summary is reported on the model's first call only
        for e in run.model(name, [size], at, total):
            if isinstance(e, NTKComputed):
                if name in probed:
                    continue
                probed.add(name)
            yield e

    for name in config.models:
        try:
            spec = models_mod.resolve_model(name)
        except Exception:
            yield from run.model(name, [], index, total)  # reports the failure as ModelFailed
            continue
        names.append(name)
        params[name] = float(spec.params or 1.0)
    for name in names:  # zero-shot: no training, free to the policy
        if run.cancel.is_set():
            return
        index += 1
        yield from one_point(name, 0, index - 1)
    names = [n for n in names if run.record.models[n].failed is None]
    if not names:
        return
    unit = {n: _unit_cost_guess(run, n, params[n]) for n in names}
    policy = AdaptivePolicy(
        names,
        sizes,
        config.target,
        unit,
        selector_predictor(config.selector, config.target),
        AdaptiveConfig(
            gamma=ad.gamma,
            tau=ad.tau,
            confidence=ad.confidence,
            min_points=ad.min_points_for(len(sizes)),
            max_cost_fraction=ad.budget,
            **({"schedule": ad.schedule} if ad.schedule is not None else {}),
        ),
    )
    for name in names:
        for p in run.record.models[name].points:
            if p.size == 0:
                policy.observe(name, 0, p.measured.loss, cost=0.0)
    run.record.policy = _policy_account(policy, ad.budget, running=True)
    reported = 0

    def eliminations() -> Iterator[Event]:
        # Racing eliminates in observe(), successive halving in next_point(): report
        # every elimination the policy has recorded since the last call, wherever made.
        nonlocal reported
        made = policy.eliminated
        for e in made[reported:]:
            yield ModelEliminated(e.model, e.reason, e.compute_saved)
        reported = len(made)

    while not run.cancel.is_set():
        step = policy.next_point()
        yield from eliminations()
        if step is None:
            break
        name, size = step
        yield from one_point(name, size, index)
        index += 1
        rec = run.record.models[name]
        point = next((p for p in rec.points if p.size == size), None)
        if rec.failed is not None or point is None:
            policy.fail(name, rec.failed or f"no point at size {size}")
            continue
        tokens = point.measured.train_tokens
        charged = 6.0 * params[name] * tokens if tokens > 0 else None
        policy.observe(name, size, point.measured.loss, cost=charged)
        run.record.policy = _policy_account(policy, ad.budget, running=True)
        run.record.write()
        yield from eliminations()
    if run.cancel.is_set():
        run.record.policy = {**_policy_account(policy, ad.budget), "stop_reason": "cancelled"}
        return
    account = _policy_account(policy, ad.budget)
    run.record.policy = account
    run.record.write()
    yield PolicyStopped(
        reason=account["stop_reason"],
        cost=account["cost"],
        full_cost=account["full_cost"],
        cost_fraction=account["cost_fraction"],
        compute_saved=account["compute_saved"],
        ladder_cost=account["ladder_cost"],
        budget=ad.budget,
        eliminated=tuple((e["model"], e["reason"]) for e in account["eliminated"]),
    )


def _unit_cost_guess(run: _Run, name: str, params: float) -> float:
    """Training cost per sample before any is measured: 6 x params x tokens per example.

    Tokens per example come from the model's zero-shot point (non-pad tokens over
    the test examples, which are drawn like the training ones); without one, the
    configured max_length (an upper bound).
    """
    rec = run.record.models[name]
    zero = next((p for p in rec.points if p.size == 0 and p.measured.eval_tokens > 0), None)
    n_test = len(getattr(run.task, "test", ()) or ()) or run.config.data.test_size
    per_example = (
        zero.measured.eval_tokens / n_test if zero is not None else run.config.data.max_length
    )
    return 6.0 * params * max(per_example, 1.0)


def _policy_account(policy: Any, budget: float | None, *, running: bool = False) -> dict[str, Any]:
    """The policy's state as results.json records it: spend, stop reason, eliminations."""
    res = policy.result()
    return {
        "name": "adaptive",
        "config": dataclasses.asdict(res.config),
        "budget": budget,
        "stop_reason": "running" if running else res.stop_reason,
        "cost": res.cost,
        "full_cost": res.full_cost,
        "cost_fraction": res.cost_fraction,
        "ladder_cost": res.ladder_cost,
        "ladder_cost_fraction": res.ladder_cost / res.full_cost if res.full_cost > 0 else None,
        "compute_saved": policy.compute_saved,
        "consumed": [[m, s] for m, s in res.consumed if s > 0],
        "eliminated": [
            {"model": e.model, "reason": e.reason, "size": e.size, "compute_saved": e.compute_saved}
            for e in res.eliminated
        ],
        "outcomes": [
            {
                "model": o.model,
                "status": o.status,
                "sizes": list(o.sizes),
                "predicted": o.predicted,
                "low": o.low,
                "high": o.high,
                "cost": o.cost,
                "reason": o.reason,
            }
            for o in res.outcomes
        ],
    }


def ntk_settings(config: RunConfig) -> dict[str, Any]:
    """What decides a model's NTK spectrum besides the model and the data fingerprint."""
    return {
        "probe_size": config.ntk.probe_size,
        "projection_dim": config.ntk.projection_dim,
        "seed": config.ntk.seed,
        "max_length": config.data.max_length,
    }


class _Run:
    """The state one run shares across models: data, store, record, cancel, counters."""

    def __init__(
        self,
        config: RunConfig,
        task: Any,
        store: Store,
        record: RunRecord,
        cancel: threading.Event,
        pause: threading.Event,
        device: str,
    ) -> None:
        self.config = config
        self.task = task
        self.store = store
        self.record = record
        self.cancel = cancel
        self.pause = pause
        self.device = device
        self.stop = threading.Event()  # what training threads watch (cancel or generator closed)
        self.hparams_hash = settings_hash(point_hparams(config, device.split(":")[0]))
        self.computed = 0
        self.reused = 0

    def model(self, name: str, sizes: list[int], index: int, total: int) -> Iterator[Event]:
        """One candidate: resolve, NTK probe, then every planned size (reusing stored points)."""
        from core.training import models as models_mod

        rec = self.record.models[name]
        try:
            spec = models_mod.resolve_model(name)
        except Exception as exc:
            yield from self._fail(rec, one_line(exc))
            return
        rec.params = float(spec.params) if spec.params else None
        rec.family = spec.family
        # (model, tokenizer), loaded on first need only: a fully reused model never loads.
        loaded = _Lazy(functools.partial(models_mod.load_model, spec, self.device))
        try:
            if self.config.ntk.enabled and not self.cancel.is_set():
                yield from self._ntk(rec, spec, loaded)
            dirty = False
            for size in sizes:
                if self.cancel.is_set() or rec.failed is not None:
                    break
                index += 1
                yield PointStarted(name, size, index, total)
                key = PointKey(
                    name, self.task.fingerprint, size, self.config.train.seed, self.hparams_hash
                )
                stored = self.store.get_point(key)
                if stored is not None:
                    self.reused += 1
                    rec.add_point(_point_record(stored, reused=True))
                    dirty = True
                    yield PointFinished(name, size, stored.measured, True)
                    self.record.write()
                    continue
                yield from self._point(rec, spec, loaded, key)
                if rec.failed is None and any(p.size == size for p in rec.points):
                    yield from _refit(self.config, self.record, name)
                    dirty = False
                    self.record.write()
            if rec.failed is None and dirty:
                yield from _refit(self.config, self.record, name)
                self.record.write()
        except _ModelFailure as failure:
            yield from self._fail(rec, str(failure))
        finally:
            loaded.value = None  # free the weights before the next model

    def _fail(self, rec: ModelRecord, reason: str) -> Iterator[Event]:
        rec.failed = reason
        yield ModelFailed(rec.model, reason)
        if any(e.model == rec.model for e in self.record.ranking):
            yield from _refit(self.config, self.record, None)  # drop it from the ranking
        self.record.write()

    def _load(self, loaded: _Lazy) -> Any:
        try:
            return loaded.get()
        except Exception as exc:
            raise _ModelFailure(one_line(exc)) from exc

    def _point(self, rec: ModelRecord, spec: Any, loaded: _Lazy, key: PointKey) -> Iterator[Event]:
        """Train and measure one new point in a worker thread; store it in one transaction."""
        from core.training import point as train_mod
        from core.training.loop import Cancelled

        pair = self._load(loaded)
        config = self.config
        outcome: dict[str, Any] = {}
        yield from _polled(
            lambda on_progress: train_mod.train_point(
                spec,
                self.task,
                key.size,
                config.train,
                config.data,
                device=self.device,
                cancel=self.stop,
                pause=self.pause,
                on_progress=on_progress,
                model_and_tokenizer=pair,
            ),
            rec.model,
            key.size,
            self.cancel,
            self.stop,
            outcome,
            self.pause,
        )
        if "error" in outcome:
            exc = outcome["error"]
            if isinstance(exc, Cancelled) or self.cancel.is_set():
                return
            reason = one_line(exc)
            yield PointFailed(rec.model, key.size, reason)
            raise _ModelFailure(f"point at size {key.size} failed: {reason}")
        stored = self.store.put_point(key, outcome["result"])
        self.computed += 1
        rec.add_point(_point_record(stored, reused=False))
        yield PointFinished(rec.model, key.size, stored.measured, False)

    def _ntk(self, rec: ModelRecord, spec: Any, loaded: _Lazy) -> Iterator[Event]:
        """The model's NTK spectrum on the probe set: from the store, or computed once.

        A failed probe is reported (ok=False, with the reason) and the model goes
        on without a spectrum, so its law falls back to F free.
        """
        try:
            from core.training import ntk as ntk_mod
        except ImportError:  # the NTK probe is optional
            return
        from core.training.data import make_batch

        settings = ntk_settings(self.config)
        fp = self.task.fingerprint
        got = self.store.get_spectrum(rec.model, fp, settings)
        if got is not None:
            rec.spectrum = NTKSpectrum.from_dict(got.spectrum)
            rec.ntk = {**got.summary, "reused": True}
            yield _ntk_event(rec.model, got.summary)
            return
        model, tokenizer = self._load(loaded)
        outcome: dict[str, Any] = {}
        cfg = self.config

        def probe(on_progress: Callable[..., None]) -> Any:
            batch = make_batch(
                self.task,
                tokenizer,
                spec.kind,
                cfg.ntk.probe_size,
                max_length=cfg.data.max_length,
            )
            return ntk_mod.probe_ntk(
                model, batch, projection_dim=cfg.ntk.projection_dim, seed=cfg.ntk.seed
            )

        yield from _polled(probe, rec.model, -1, self.cancel, self.stop, outcome, self.pause)
        if "error" in outcome:
            reason = one_line(outcome["error"])
            rec.ntk = {"ok": False, "reason": reason}
            yield NTKComputed(rec.model, 0, math.nan, (), math.nan, 0.0, ok=False, reason=reason)
            return
        result = outcome["result"]
        try:
            spectrum = result.spectrum
            if not all(math.isfinite(x) for x in (*spectrum.eigenvalues, *spectrum.weights)):
                raise ValueError("the NTK spectrum is not finite")
        except Exception as exc:
            reason = one_line(exc)
            rec.ntk = {"ok": False, "reason": reason}
            yield NTKComputed(
                rec.model, result.n, math.nan, (), math.nan, result.seconds, ok=False, reason=reason
            )
            return
        summary = {
            "ok": True,
            "n": result.n,
            "trace": spectrum.trace,
            "top_eigenvalues": list(spectrum.top(5)),
            "effective_rank": spectrum.effective_rank,
            "seconds": result.seconds,
            "flops": result.flops,
            "path": result.path,
            "projection_dim": result.projection_dim,
        }
        self.store.put_spectrum(rec.model, fp, settings, spectrum.to_dict(), summary)
        rec.spectrum = spectrum
        rec.ntk = {**summary, "reused": False}
        yield _ntk_event(rec.model, summary)


class _ModelFailure(Exception):
    """Internal: this model cannot go on (load error, failed point); carries the reason."""


def _ntk_event(model: str, summary: dict[str, Any]) -> NTKComputed:
    return NTKComputed(
        model=model,
        n=int(summary.get("n", 0)),
        trace=float(summary.get("trace", math.nan)),
        top_eigenvalues=tuple(float(x) for x in summary.get("top_eigenvalues", ())),
        effective_rank=float(summary.get("effective_rank", math.nan)),
        seconds=float(summary.get("seconds", 0.0)),
    )


class _Lazy:
    """A value built on first use (a model's weights: skipped when every point is reused)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build
        self.value: Any = None

    def get(self) -> Any:
        if self.value is None:
            self.value = self.build()
        return self.value


def _polled(
    start: Callable[[Callable[..., None]], Any],
    model: str,
    size: int,
    cancel: threading.Event,
    stop: threading.Event,
    outcome: dict[str, Any],
    pause: threading.Event,
) -> Iterator[Event]:
    """Run ``start`` in a thread; yield throttled progress; put its result or error in outcome.

    ``size`` -1 marks work that is not a point (the NTK probe): no progress events.
    Nothing starts while ``pause`` is set.
    """
    while pause.is_set() and not cancel.wait(0.05):
        pass
    latest: list[tuple[int, int, float]] = []

    def on_progress(step: int, total_steps: int, train_loss: float) -> None:
        latest[:] = [(int(step), int(total_steps), float(train_loss))]

    def target() -> None:
        try:
            outcome["result"] = start(on_progress)
        except BaseException as exc:  # reported as a point failure, never lost
            outcome["error"] = exc

    stop.clear()
    worker = threading.Thread(target=target, name=f"train {model}@{size}", daemon=True)
    worker.start()
    last_emit = 0.0
    last_sent: tuple[int, int, float] | None = None
    try:
        while worker.is_alive():
            worker.join(0.05)
            if cancel.is_set():
                stop.set()
            now = time.monotonic()
            if (
                size >= 0
                and latest
                and latest[0] != last_sent
                and now - last_emit >= PROGRESS_INTERVAL
            ):
                last_sent = latest[0]
                last_emit = now
                yield PointProgress(model, size, *last_sent)
    finally:
        # Closed early (consumer gone) or done: make sure training stops before we return.
        if worker.is_alive():
            stop.set()
            worker.join()


def _refit(config: RunConfig, record: RunRecord, model: str | None) -> Iterator[Event]:
    """Refit every live curve with the configured selector; report ``model``'s law and phase."""
    from core.science.selectors import select

    live = [m for m in record.models.values() if m.failed is None and m.curve().sizes]
    if not live:
        record.ranking = ()
        return
    curves = [m.curve() for m in live]
    budget = max(max(c.sizes) for c in curves)
    if budget <= 0:  # only zero-shot points so far: nothing to fit a law to yet
        selection = None
        reason = "only the zero-shot point so far"
    else:
        try:
            selection = select(
                config.selector, curves, budget=budget, target=config.target, seed=config.train.seed
            )
            reason = ""
        except Exception as exc:  # a selector problem is a result with a reason, not a crash
            selection = None
            reason = f"{config.selector} selection failed: {one_line(exc)}"
    if selection is None:
        if model is not None:
            yield LawFitted(model=model, law=config.selector, params=(), ok=False, reason=reason)
            yield PhaseDetected(model, None, 0.0)
        yield RankingUpdated(record.ranking)
        return
    record.selector = {
        "method": selection.method,
        "budget": selection.budget,
        "target": selection.target,
        "seconds": selection.seconds,
    }
    for rec, curve, pred in zip(live, curves, selection.predictions, strict=True):
        _update_model(rec, curve, pred, config.target)
    by_model = {p.model: p for p in selection.predictions}
    entries = []
    for rank, name in enumerate(selection.ranking, start=1):
        p = by_model[name]
        entries.append(
            RankEntry(rank, name, _num(p.predicted), _num(p.low), _num(p.high), _num(p.score))
        )
    record.ranking = tuple(entries)
    if model is not None and model in by_model:
        rec = record.models[model]
        pred = by_model[model]
        law = rec.law or {}
        yield LawFitted(
            model=model,
            law=str(law.get("law", config.selector)),
            params=tuple(sorted((k, float(v)) for k, v in (law.get("params") or {}).items())),
            ok=bool(law.get("ok", False)) and bool(pred.ok),
            residual=_num(law.get("residual")),
            predicted_target=_num(pred.predicted),
            interval=(_num(pred.low), _num(pred.high)),
            reason=str(law.get("reason") or pred.reason or ""),
            curve=_sample_law(getattr(pred, "fit", None), rec.curve().sizes, config.target),
        )
        tr = rec.transition or {}
        yield PhaseDetected(model, tr.get("size"), _num(tr.get("confidence"), 0.0))
    yield RankingUpdated(record.ranking)


def _sample_law(fit: Any, sizes: Any, target: int, n: int = 48) -> tuple[tuple[float, float], ...]:
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


def _update_model(rec: ModelRecord, curve: Curve, pred: Any, target: int) -> None:
    fit = getattr(pred, "fit", None)
    if fit is not None:
        rec.law = {
            "law": fit.law,
            "params": {k: float(v) for k, v in fit.params.items()},
            "ok": bool(fit.ok),
            "residual": _num(fit.residual),
            "reason": fit.reason or "",
        }
    else:
        rec.law = {"law": None, "params": {}, "ok": False, "residual": None, "reason": pred.reason}
    # The phase call with its confidence comes from core.science.phase; a selector that
    # places the transition itself (e.g. ATS) is recorded alongside.
    tr = detect_transition(curve)
    rec.transition = {"size": tr.size, "confidence": tr.confidence, "reason": tr.reason}
    if pred.transition is not None and pred.transition != tr.size:
        rec.transition["selector_size"] = int(pred.transition)
    rec.prediction = {
        "target": target,
        "predicted": _num(pred.predicted),
        "low": _num(pred.low),
        "high": _num(pred.high),
        "score": _num(pred.score),
        "ok": bool(pred.ok),
        "reason": pred.reason or "",
    }


def _point_record(stored: StoredPoint, *, reused: bool) -> PointRecord:
    return PointRecord(stored.key.size, stored.measured, reused)


def _clip_ladder(task: Any, sizes: list[int]) -> tuple[list[int], list[str]]:
    """Drop ladder sizes the training split cannot supply, with a warning saying so."""
    from core.training.data import DataError

    kept, dropped = task.clip_ladder(sizes)
    if not kept:
        raise DataError(
            f"the dataset has {task.max_train_size} training examples, fewer than the "
            f"smallest ladder size {sizes[0]}"
        )
    if not dropped:
        return list(kept), []
    return list(kept), [
        f"the dataset has {task.max_train_size} training examples; ladder size(s) "
        f"{', '.join(map(str, dropped))} dropped"
    ]


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _num(value: Any, default: float = float("nan")) -> float:
    try:
        return default if value is None else float(value)
    except (TypeError, ValueError):
        return default
