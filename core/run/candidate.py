"""One candidate model inside a run: resolve it, probe its NTK once, measure its points.

The runner asks for one (model, size) at a time; this module does the work
for it: the model is resolved and its NTK spectrum probed on its first point,
its weights are loaded only when a point needs training (a fully reused model
never loads), a stored point is reused, a new one is trained in a worker
thread and written to the store in one transaction before anything else
happens.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from typing import Any

from core.config import RunConfig
from core.errors import Cancelled, one_line
from core.events import Event, NTKComputed, PointFailed, PointFinished, PointMeasurements
from core.run.records import ModelRecord, PointRecord, RunRecord
from core.run.store import PointKey, Store, StoredPoint, settings_hash
from core.run.worker import Controls, ProgressFn, polled
from core.science.spectrum import NTKSpectrum
from core.training import models as models_mod
from core.training.data import TaskData, make_batch
from core.training.models import ModelSpec
from core.training.point import train_point


class ModelFailure(Exception):
    """This model cannot go on (load error, failed point); carries the reason."""


def point_hparams(config: RunConfig, device_kind: str) -> dict[str, Any]:
    """What, besides model, data fingerprint, size and seed, decides a point's loss."""
    train = dataclasses.asdict(config.train)
    train.pop("seed")
    return {"train": train, "data": dataclasses.asdict(config.data), "device": device_kind}


def ntk_settings(config: RunConfig) -> dict[str, Any]:
    """What decides a model's NTK spectrum besides the model and the data fingerprint."""
    return {
        "probe_size": config.ntk.probe_size,
        "projection_dim": config.ntk.projection_dim,
        "seed": config.ntk.seed,
        "max_length": config.data.max_length,
    }


class Candidate:
    """A model being measured: its spec, its weights (loaded on first need), its record."""

    def __init__(self, spec: ModelSpec, rec: ModelRecord, device: str) -> None:
        self.spec = spec
        self.rec = rec
        self._load = functools.partial(models_mod.load_model, spec, device)
        self._loaded: tuple[Any, Any] | None = None

    def weights(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded once; a load error is this model's failure."""
        if self._loaded is None:
            try:
                self._loaded = self._load()
            except Exception as exc:
                raise ModelFailure(one_line(exc)) from exc
        return self._loaded

    def release(self) -> None:
        """Free the weights before the next model's are loaded."""
        self._loaded = None


class Measurer:
    """What a run's points share: config, data, store, record, the controls, counters."""

    def __init__(
        self,
        config: RunConfig,
        task: TaskData,
        store: Store,
        record: RunRecord,
        controls: Controls,
        device: str,
    ) -> None:
        self.config = config
        self.task = task
        self.store = store
        self.record = record
        self.controls = controls
        self.device = device
        self.hparams_hash = settings_hash(point_hparams(config, device.split(":")[0]))
        self.computed = 0
        self.reused = 0

    def resolve(self, name: str) -> Candidate:
        """The model's spec and record; ModelFailure when it cannot be resolved."""
        rec = self.record.models[name]
        try:
            spec = models_mod.resolve_model(name)
        except Exception as exc:
            raise ModelFailure(one_line(exc)) from exc
        rec.params = float(spec.params) if spec.params else None
        rec.family = spec.family
        return Candidate(spec, rec, self.device)

    def key(self, name: str, size: int) -> PointKey:
        return PointKey(
            name, self.task.fingerprint, size, self.config.train.seed, self.hparams_hash
        )

    def reuse(self, cand: Candidate, size: int) -> PointFinished | None:
        """The stored point at ``size``, recorded as reused; None when there is none."""
        stored = self.store.get_point(self.key(cand.rec.model, size))
        if stored is None:
            return None
        self.reused += 1
        cand.rec.add_point(_point_record(stored, reused=True))
        return PointFinished(cand.rec.model, size, stored.measured, True)

    def train(self, cand: Candidate, size: int) -> Iterator[Event]:
        """Train and measure one new point in a worker thread; store it in one transaction."""
        pair = cand.weights()
        cfg = self.config

        def job(on_progress: ProgressFn) -> PointMeasurements:
            return train_point(
                cand.spec,
                self.task,
                size,
                cfg.train,
                cfg.data,
                device=self.device,
                cancel=self.controls.stop,
                pause=self.controls.pause,
                on_progress=on_progress,
                model_and_tokenizer=pair,
            )

        name = cand.rec.model
        outcome = yield from polled(
            job, self.controls, name=f"{name}@{size}", progress=(name, size)
        )
        if outcome.error is not None:
            if isinstance(outcome.error, Cancelled) or self.controls.cancel.is_set():
                return
            reason = one_line(outcome.error)
            yield PointFailed(name, size, reason)
            raise ModelFailure(f"point at size {size} failed: {reason}")
        assert outcome.result is not None
        stored = self.store.put_point(self.key(name, size), outcome.result)
        self.computed += 1
        cand.rec.add_point(_point_record(stored, reused=False))
        yield PointFinished(name, size, stored.measured, False)

    def ntk(self, cand: Candidate) -> Iterator[Event]:
        """The model's NTK spectrum on the probe set: from the store, or computed once.

        A failed probe is reported (ok=False, with the reason) and the model goes
        on without a spectrum, so its law falls back to F free.
        """
        try:
            from core.training import ntk as ntk_mod
        except ImportError:  # the NTK probe is optional
            return
        rec, cfg = cand.rec, self.config
        settings = ntk_settings(cfg)
        fp = self.task.fingerprint
        got = self.store.get_spectrum(rec.model, fp, settings)
        if got is not None:
            rec.spectrum = NTKSpectrum.from_dict(got.spectrum)
            rec.ntk = {**got.summary, "reused": True}
            yield _ntk_event(rec.model, got.summary)
            return
        model, tokenizer = cand.weights()

        def probe(on_progress: ProgressFn) -> Any:
            batch = make_batch(
                self.task,
                tokenizer,
                cand.spec.kind,
                cfg.ntk.probe_size,
                max_length=cfg.data.max_length,
            )
            return ntk_mod.probe_ntk(
                model, batch, projection_dim=cfg.ntk.projection_dim, seed=cfg.ntk.seed
            )

        outcome = yield from polled(probe, self.controls, name=f"ntk {rec.model}")
        summary = _ntk_summary(outcome.result, outcome.error)
        if not summary["ok"]:
            rec.ntk = {"ok": False, "reason": summary["reason"]}
            n, seconds = summary.get("n", 0), summary.get("seconds", 0.0)
            yield NTKComputed(
                rec.model, n, math.nan, (), math.nan, seconds, ok=False, reason=summary["reason"]
            )
            return
        spectrum = outcome.result.spectrum  # type: ignore[union-attr]
        self.store.put_spectrum(rec.model, fp, settings, spectrum.to_dict(), summary)
        rec.spectrum = spectrum
        rec.ntk = {**summary, "reused": False}
        yield _ntk_event(rec.model, summary)


def _ntk_summary(result: Any, error: BaseException | None) -> dict[str, Any]:
    """The probe's summary for results.json and the store, or ok=False with the reason."""
    if error is not None:
        return {"ok": False, "reason": one_line(error)}
    try:
        spectrum = result.spectrum
        if not all(math.isfinite(x) for x in (*spectrum.eigenvalues, *spectrum.weights)):
            raise ValueError("the NTK spectrum is not finite")
    except Exception as exc:
        return {"ok": False, "reason": one_line(exc), "n": result.n, "seconds": result.seconds}
    return {
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


def _ntk_event(model: str, summary: dict[str, Any]) -> NTKComputed:
    return NTKComputed(
        model=model,
        n=int(summary.get("n", 0)),
        trace=float(summary.get("trace", math.nan)),
        top_eigenvalues=tuple(float(x) for x in summary.get("top_eigenvalues", ())),
        effective_rank=float(summary.get("effective_rank", math.nan)),
        seconds=float(summary.get("seconds", 0.0)),
    )


def _point_record(stored: StoredPoint, *, reused: bool) -> PointRecord:
    return PointRecord(stored.key.size, stored.measured, reused)
