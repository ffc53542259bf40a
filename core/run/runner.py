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
from core.errors import ConfigError, DataError, RunDirError
from core.events import (
    Event,
    ModelFailed,
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
from core.run.account import policy_account
from core.run.candidate import (
    Measurer,
    ModelFailure,
    check_candidate,
    common_max_length,
    ntk_settings,
    point_hparams,
)
from core.run.executors import Executor, make_executor, resolve_backend
from core.run.lock import lock_run_dir
from core.run.records import ModelRecord, RunRecord, existing_completeness, write_failure
from core.run.scheduler import Scheduler
from core.run.store import Store
from core.run.worker import Controls
from core.training.data import TaskData
from core.training.models import ModelSpec, check_device

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

    Configuration problems (an unavailable policy, a device this machine does
    not have) raise here, before the generator starts; a dataset that cannot be loaded raises ``DataError`` on
    the first ``next()``. Per-model problems are events (ModelFailed), never
    exceptions. The generator may be closed early: it then stops training and
    closes the store. While ``pause`` is set, training holds at its next step
    (and no new point starts) until it is cleared; cancel still stops it.
    """
    plan_sizes(config, config.sizes)  # reject an unavailable policy now, with one line
    check_device(config.device)  # and a device this machine does not have
    if resolve_backend(config.executor, config.device) == "ray":
        from core.run.executors.ray_backend import import_ray

        import_ray()  # Ray not installed: one line saying what to install, before anything runs
    return _run(config, Controls.of(cancel, pause))


def _run(config: RunConfig, controls: Controls) -> Iterator[Event]:
    t0 = time.time()
    out_dir = resolve_out_dir(config)
    lock = lock_run_dir(out_dir)  # one run per directory, for the whole run
    try:
        yield from _locked(dataclasses.replace(config, out_dir=str(out_dir)), controls, t0)
    finally:
        lock.release()


def _locked(config: RunConfig, controls: Controls, t0: float) -> Iterator[Event]:
    """The run, once its directory is locked: config.toml, the workers, then the rest.

    The executor is made first and gets the task once the data is read: its
    workers (processes importing torch and transformers, or a Ray instance)
    start up while the driver reads the data and checks the candidates,
    instead of after. On ``--device cpu`` nothing the driver has imported by
    now loads torch (``auto`` asks torch for GPUs), so a CPU pool's
    forkserver starts before the driver's own heavy imports.
    """
    out_dir = Path(config.out_dir)
    try:
        config.save_toml(out_dir / CONFIG_NAME)
    except OSError as exc:
        raise RunDirError(write_failure(exc, out_dir)) from None
    device = _device(config.device)
    executor = make_executor(config.executor, None, device)
    try:
        yield from _started(config, controls, t0, device, executor)
    finally:
        executor.close()


def _started(
    config: RunConfig, controls: Controls, t0: float, device: str, executor: Executor
) -> Iterator[Event]:
    """Data, candidates, store and record, then the loop on ``executor``."""
    from core.training import data as data_mod

    out_dir = Path(config.out_dir)
    task = data_mod.load_task(config.data)
    executor.load(task)  # the workers tokenise and get ready while the candidates are checked
    sizes, warnings = _clip_ladder(task, config.sizes)
    specs, refused = _check_candidates(config, device)
    config, cut = common_max_length(config, specs)
    previews = _encoding_previews(config, task, specs)
    warnings += _data_warnings(task, previews)
    record = RunRecord(
        config=config,
        out_dir=out_dir,
        models={m: ModelRecord(m, data=previews.get(m)) for m in config.models},
        dataset={
            "source": config.data.source,
            "format": task.format,
            "fingerprint": task.fingerprint,
            "train_examples": task.max_train_size,
            "validation_examples": len(task.validation),
            "test_examples": len(task.test),
            "test_file": config.data.test_file,
            "validation_file": config.data.validation_file,
            "stats": task.stats.to_dict(),
            "sizes": sizes,
            "max_length": config.data.max_length,
        },
        warnings=[*warnings, *cut],
        floor=existing_completeness(out_dir),
    )
    measurer = Measurer(config, task, Store(out_dir / STORE_NAME), record, controls, device)
    measurer.specs.update(specs)
    record.warnings.extend(_stale_warnings(measurer))
    warnings = record.warnings
    total = sum(len(plan_sizes(config, sizes)) for _ in config.models)
    good = [m for m in config.models if m not in refused]
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
        for name, reason in refused.items():  # every candidate was checked before training
            record.models[name].failed = reason
            yield ModelFailed(name, reason)
        record.write()
        try:
            policy = _policy(measurer, good, sizes, executor.capacity)
            yield from Scheduler(measurer, policy, total, executor).run()
        finally:
            executor.close()
        if isinstance(policy, ZeroShotFirst) and policy.policy is not None:
            yield from _policy_stopped(measurer, policy.policy)
        yield _ending(measurer, time.time() - t0)
    finally:
        controls.stop.set()
        measurer.store.close()


def _policy(measurer: Measurer, models: list[str], sizes: list[int], workers: int) -> Policy:
    if measurer.config.policy == "adaptive":
        return ZeroShotFirst(models, _adaptive_builder(measurer, sizes))
    return LadderPolicy(models, sizes, largest_first=workers > 1)


def _check_candidates(
    config: RunConfig, device: str
) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """Every candidate resolved and checked before any trains: (specs, refused with why)."""
    specs: dict[str, ModelSpec] = {}
    refused: dict[str, str] = {}
    for name in config.models:
        try:
            specs[name] = check_candidate(name, device, lora=config.train.lora)
        except ModelFailure as failure:
            refused[name] = str(failure)
    return specs, refused


def _stale_warnings(measurer: Measurer) -> list[str]:
    """One line per model whose stored points were measured on a different model."""
    out = []
    for name in measurer.specs:
        stale = measurer.stale_points(name)
        if stale:
            out.append(
                f"{name}: {stale} stored point(s) were measured on a different model"
                " (its config or weight files changed); they are not reused"
            )
    return out


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
    final = selector_predictor(config.selector, config.target, seed=config.train.seed, pooled=True)
    account = policy_account(policy, config, final=final)
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


def _encoding_previews(
    config: RunConfig, task: Any, specs: dict[str, ModelSpec]
) -> dict[str, dict[str, Any]]:
    """Per checked candidate, before training: examples cut at max_length, chat template.

    A model whose tokenizer cannot be read is left out here; it fails with its
    reason when its turn comes.
    """
    from core.training.preview import encoding_preview

    out = {}
    for name, spec in specs.items():
        try:
            out[name] = encoding_preview(spec, task, config.data)
        except Exception:
            continue
    return out


def _data_warnings(task: Any, previews: dict[str, dict[str, Any]]) -> list[str]:
    """Lines for the start of the run whenever reading dropped rows or encoding cut examples."""
    from core.training.preview import preview_line

    stats = task.stats
    lines = []
    if stats.empty or stats.duplicates or stats.held_out_overlap:
        lines.append(f"data: {stats.summary()}")
    for name, report in previews.items():
        if report.get("error") or report.get("truncated") or report.get("chat_template"):
            lines.append(preview_line(name, report))
    return lines


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
