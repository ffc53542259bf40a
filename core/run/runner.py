"""The progressive schedule across candidates, as one plain generator of events.

``run_events`` is the whole engine loop: ask the policy (core/policy: the
ladder, or zero-shot first and then the adaptive policy) for the next
(model, size), measure it (core/run/candidate.py: reuse a stored point or
train a new one in a worker thread), refit the laws and the ranking
(core/run/refit.py) and tell the policy what was measured. It is a generator
of ``core.events`` so that every front end (the Textual worker, the headless
console, the tests) consumes the same stream and none of them holds engine
state.

Every finished point goes to the SQLite store (core/run/store.py) in one
transaction before anything else happens, and results.json / curves.csv are
rewritten atomically after every point, so a crash loses at most the point in
progress and a rerun into the same directory recomputes only what is missing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import ConfigError, DataError
from core.events import (
    Event,
    ModelEliminated,
    ModelFailed,
    PointStarted,
    PolicyStopped,
    RunCancelled,
    RunFinished,
    RunStarted,
)
from core.paths import CONFIG_NAME, RUNS_DIR, STORE_NAME
from core.policy.adaptive import AdaptiveConfig, AdaptivePolicy
from core.policy.ladder import LadderPolicy, Policy
from core.policy.replay import selector_predictor
from core.policy.warm_start import ZeroShotFirst
from core.run.candidate import Candidate, Measurer, ModelFailure, ntk_settings, point_hparams
from core.run.records import ModelRecord, RunRecord
from core.run.refit import refit
from core.run.store import Store
from core.run.worker import Controls
from core.training.data import TaskData

POLICIES = ("ladder", "adaptive")

__all__ = ["ntk_settings", "point_hparams", "resolve_out_dir", "run_events"]


def plan_sizes(config: RunConfig, sizes: list[int]) -> list[int]:
    """The most one model may run, in order: zero-shot (0) then the ladder."""
    if config.policy not in POLICIES:
        raise ConfigError(f"policy must be 'ladder' or 'adaptive', not {config.policy!r}")
    return [0, *sizes]


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
    return _run(config, Controls.of(cancel, pause))


def _run(config: RunConfig, controls: Controls) -> Iterator[Event]:
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
    measurer = Measurer(
        config, task, Store(out_dir / STORE_NAME), record, controls, _device(config.device)
    )
    total = sum(len(plan_sizes(config, sizes)) for _ in config.models)
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
        if config.policy == "adaptive":
            policy: Policy = ZeroShotFirst(config.models, _adaptive_builder(measurer, sizes))
        else:
            policy = LadderPolicy(config.models, sizes)
        yield from _Loop(measurer, policy, total).run()
        if isinstance(policy, ZeroShotFirst) and policy.policy is not None:
            yield from _policy_stopped(measurer, policy.policy)
        yield _ending(measurer, time.time() - t0)
    finally:
        controls.stop.set()
        measurer.store.close()


def _ending(measurer: Measurer, seconds: float) -> Event:
    """RunCancelled or RunFinished, with results.json saying the same."""
    record = measurer.record
    record.seconds = seconds
    if measurer.controls.cancel.is_set():
        record.status = "cancelled"
        record.write()
        kept = measurer.computed + measurer.reused
        return RunCancelled(str(record.out_dir), "cancelled", kept=kept)
    record.status = "finished"
    record.write()
    return RunFinished(
        str(record.out_dir),
        record.ranking,
        tuple(record.failures()),
        record.seconds,
        computed=measurer.computed,
        reused=measurer.reused,
    )


class _Loop:
    """The one loop: the policy picks each point, the measurer measures it, laws are refit.

    A new point is refitted at once. Reused points are refitted together when
    the run moves on to another model (or ends), so a fully reused model costs
    one refit, not one per point. A model's weights are released when the run
    moves on to another model, so one model is in memory at a time.
    """

    def __init__(self, measurer: Measurer, policy: Policy, total: int) -> None:
        self.m = measurer
        self.policy = policy
        self.total = total
        self.taken = 0
        self.reported = 0
        self.current: Candidate | None = None
        self.seen: set[str] = set()
        self.pending: str | None = None
        """A model whose reused points are not refitted yet."""

    def run(self) -> Iterator[Event]:
        try:
            while not self.m.controls.cancel.is_set():
                step = self.policy.next_point()
                yield from self._eliminations()
                if step is None:
                    break
                self.taken += 1
                yield from self._one(*step)
            yield from self._flush()
        finally:
            self._switch(None)

    def _one(self, name: str, size: int) -> Iterator[Event]:
        if name != self.pending:
            yield from self._flush()
        rec = self.m.record.models[name]
        try:
            cand = yield from self._enter(name)
            index = self.taken + self.policy.dropped
            yield PointStarted(name, size, index, self.total)
            reused = self.m.reuse(cand, size)
            if reused is not None:
                self.pending = name
                yield reused
                self.m.record.write()
            else:
                yield from self.m.train(cand, size)
                if rec.point(size) is not None:
                    yield from refit(self.m.config, self.m.record, name)
                    self.pending = None
                    self.m.record.write()
        except ModelFailure as failure:
            yield from self._fail(rec, str(failure))
        yield from self._observe(rec, size)

    def _enter(self, name: str) -> Iterator[Event]:
        """The model's Candidate: resolved and NTK-probed on its first point."""
        if self.current is not None and self.current.rec.model == name:
            return self.current
        self._switch(None)
        if self.m.record.models[name].failed is not None:
            raise ModelFailure(self.m.record.models[name].failed or "failed")
        cand = self.m.resolve(name)
        self._switch(cand)
        if name not in self.seen:
            self.seen.add(name)
            if self.m.config.ntk.enabled and not self.m.controls.cancel.is_set():
                yield from self.m.ntk(cand)
        return cand

    def _switch(self, cand: Candidate | None) -> None:
        if self.current is not None:
            self.current.release()
        self.current = cand

    def _observe(self, rec: ModelRecord, size: int) -> Iterator[Event]:
        """Tell the policy what the point measured (or that the model is out)."""
        point = rec.point(size)
        if rec.failed is not None or point is None:
            self.policy.fail(rec.model, rec.failed or f"no point at size {size}")
            return
        tokens = point.measured.train_tokens
        params = rec.params or 1.0
        charged = 6.0 * params * tokens if tokens > 0 else None
        if size == 0:
            charged = 0.0
        self.policy.observe(rec.model, size, point.measured.loss, cost=charged)
        if isinstance(self.policy, ZeroShotFirst) and self.policy.policy is not None:
            self.m.record.policy = policy_account(self.policy.policy, self.m.config, running=True)
            self.m.record.write()
        yield from self._eliminations()

    def _eliminations(self) -> Iterator[Event]:
        # Racing eliminates in observe(), successive halving in next_point(): report
        # every elimination the policy has recorded since the last call, wherever made.
        made = self.policy.eliminated
        for e in made[self.reported :]:
            yield ModelEliminated(e.model, e.reason, e.compute_saved)
        self.reported = len(made)

    def _flush(self) -> Iterator[Event]:
        name, self.pending = self.pending, None
        if name is not None and self.m.record.models[name].failed is None:
            yield from refit(self.m.config, self.m.record, name)
            self.m.record.write()

    def _fail(self, rec: ModelRecord, reason: str) -> Iterator[Event]:
        rec.failed = reason
        if self.pending == rec.model:
            self.pending = None
        self._switch(None)
        yield ModelFailed(rec.model, reason)
        if any(e.model == rec.model for e in self.m.record.ranking):
            yield from refit(self.m.config, self.m.record, None)  # drop it from the ranking
        self.m.record.write()


def _adaptive_builder(
    measurer: Measurer, sizes: list[int]
) -> Callable[[list[str]], AdaptivePolicy]:
    """Build the adaptive policy once every model's zero-shot point is in.

    Cost is the live charge, 6 x parameters x training tokens per point
    (evaluation is left out: the ladder and full fine-tuning evaluate alike).
    Before a model's first trained point its cost per sample is guessed from its
    zero-shot point; the policy then re-measures it from every point it is charged.
    With ``adaptive.budget`` set the policy never starts a point whose estimated
    cost would take the run past that fraction of full fine-tuning.
    """
    config = measurer.config
    ad = config.adaptive

    def build(names: list[str]) -> AdaptivePolicy:
        unit = {n: _unit_cost_guess(measurer, n) for n in names}
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
        measurer.record.policy = policy_account(policy, config, running=True)
        return policy

    return build


def _policy_stopped(measurer: Measurer, policy: AdaptivePolicy) -> Iterator[Event]:
    """PolicyStopped (and ``policy`` in results.json): why, what it spent, what it saved."""
    config = measurer.config
    if measurer.controls.cancel.is_set():
        account = {**policy_account(policy, config), "stop_reason": "cancelled"}
        measurer.record.policy = account
        return
    account = policy_account(policy, config)
    measurer.record.policy = account
    measurer.record.write()
    yield PolicyStopped(
        reason=account["stop_reason"],
        cost=account["cost"],
        full_cost=account["full_cost"],
        cost_fraction=account["cost_fraction"],
        compute_saved=account["compute_saved"],
        ladder_cost=account["ladder_cost"],
        budget=config.adaptive.budget,
        eliminated=tuple((e["model"], e["reason"]) for e in account["eliminated"]),
    )


def _unit_cost_guess(measurer: Measurer, name: str) -> float:
    """Training cost per sample before any is measured: 6 x params x tokens per example.

    Tokens per example come from the model's zero-shot point (non-pad tokens over
    the test examples, which are drawn like the training ones); without one, the
    configured max_length (an upper bound).
    """
    rec = measurer.record.models[name]
    params = rec.params or 1.0
    zero = next((p for p in rec.points if p.size == 0 and p.measured.eval_tokens > 0), None)
    n_test = len(getattr(measurer.task, "test", ()) or ()) or measurer.config.data.test_size
    per_example = (
        zero.measured.eval_tokens / n_test if zero is not None else measurer.config.data.max_length
    )
    return 6.0 * params * max(per_example, 1.0)


def policy_account(
    policy: AdaptivePolicy, config: RunConfig, *, running: bool = False
) -> dict[str, Any]:
    """The policy's state as results.json records it: spend, stop reason, eliminations."""
    res = policy.result()
    return {
        "name": "adaptive",
        "config": dataclasses.asdict(res.config),
        "budget": config.adaptive.budget,
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


def _clip_ladder(task: TaskData, sizes: list[int]) -> tuple[list[int], list[str]]:
    """Drop ladder sizes the training split cannot supply, with a warning saying so."""
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
