"""One candidate model inside a run: resolve it, reuse or describe its jobs, record results.

The runner asks for one (model, size) at a time; this module does the driver's
side of it: the model is resolved on its first point, a stored point or NTK
spectrum is reused, a new one becomes a PointJob for the executor
(core/run/executors: the weights are loaded by the worker that trains it, so a
fully reused model never loads), and what a worker measured is written to the
store in one transaction before anything else happens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from core.config import RunConfig
from core.errors import DiskError, one_line, os_error_line, unwritable
from core.events import NTKComputed, PointFinished, PointMeasurements
from core.run.executors import PointJob
from core.run.records import ModelRecord, PointRecord, RunRecord, disk_failure
from core.run.store import PointKey, Store, StoredPoint, settings_hash
from core.run.worker import Controls
from core.science.spectrum import NTKSpectrum
from core.training import models as models_mod
from core.training.data import TaskData
from core.training.models import ModelSpec


class ModelFailure(Exception):
    """This model cannot go on (load error, failed point); carries the reason."""


def point_hparams(config: RunConfig, device_kind: str) -> dict[str, Any]:
    """What, besides model, data fingerprint, size and seed, decides a point's loss."""
    train = dataclasses.asdict(config.train)
    train.pop("seed")
    return {"train": train, "data": dataclasses.asdict(config.data), "device": device_kind}


def ntk_settings(
    config: RunConfig, identity: str = "", sizes: list[int] | None = None
) -> dict[str, Any]:
    """What decides a model's NTK spectrum besides its name and the data fingerprint.

    The model's identity (config and weights) and whether the kernel is over
    LoRA adapters belong here too: a replaced folder or a LoRA run must not
    reuse a spectrum measured on other parameters.
    """
    return {
        "probe_size": config.ntk.probe_size,
        "projection_dim": config.ntk.projection_dim or "auto",
        "seed": config.ntk.seed,
        "probe_cost_examples": probe_cost_examples(config, sizes),
        "max_length": config.data.max_length,
        "model_identity": identity,
        "lora_r": config.train.lora_r if config.train.lora else 0,
    }


def probe_cost_examples(config: RunConfig, sizes: list[int] | None = None) -> float:
    """The training examples' worth of FLOPs one model's NTK probe may cost.

    A share of the ladder (every size, as clipped to the data, times the epochs);
    it is part of the spectrum's settings, so a stored spectrum is reused
    exactly when the same cap applies again.
    """
    ladder = float(sum(config.sizes if sizes is None else sizes)) * config.train.epochs
    return config.ntk.max_ladder_fraction * ladder


def check_candidate(name: str, device: str, *, lora: bool) -> ModelSpec:
    """Resolve a candidate and check it fits the device; ModelFailure with why not.

    The runner calls this for every candidate before the first point trains, so
    a typo in the last model name, an encoder-only checkpoint or a model too big
    for the device is reported at start, not after the others have trained.
    """
    try:
        spec = models_mod.resolve_model(name)
        models_mod.check_fits(spec, device, lora=lora)
    except Exception as exc:
        if (full := unwritable(exc)) is not None:  # building or caching it: the machine's fault
            raise DiskError(disk_failure(f"preparing {name}: {os_error_line(full)}", "")) from None
        raise ModelFailure(one_line(exc)) from exc
    return spec


def common_max_length(
    config: RunConfig, specs: dict[str, ModelSpec]
) -> tuple[RunConfig, list[str]]:
    """The run's max_length cut to the smallest candidate context, with a warning if cut.

    Every candidate is then scored on the same test tokens' budget: a model with
    a 32-token context would otherwise be scored on truncated text while the
    others see 256 tokens, and their losses would not compare.
    """
    limits = {n: s.context for n, s in specs.items() if s.context}
    if not limits:
        return config, []
    shortest = min(limits, key=lambda n: limits[n])
    common = min(config.data.max_length, limits[shortest])
    if common >= config.data.max_length:
        return config, []
    data = dataclasses.replace(config.data, max_length=common)
    note = (
        f"max_length cut from {config.data.max_length} to {common} tokens for every candidate,"
        f" the context of {shortest} (the smallest), so all are scored on the same test tokens"
    )
    return dataclasses.replace(config, data=data), [note]


@dataclasses.dataclass
class Candidate:
    """A model being measured: its resolved spec and its record (workers hold the weights)."""

    spec: ModelSpec
    rec: ModelRecord


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
        self.hparams = point_hparams(config, device.split(":")[0])
        self.specs: dict[str, ModelSpec] = {}
        """Candidates resolved by ``check`` (before any training), by name."""
        self.computed = 0
        self.reused = 0

    def resolve(self, name: str) -> Candidate:
        """The model's spec (checked at start) and record; ModelFailure when unresolvable."""
        spec = self.specs.get(name)
        if spec is None:
            spec = check_candidate(name, self.device, lora=self.config.train.lora)
            self.specs[name] = spec
        rec = self.record.models[name]
        rec.params = float(spec.params) if spec.params else None
        rec.family = spec.family
        return Candidate(spec, rec)

    def key(self, name: str, size: int) -> PointKey:
        """The store key of a point: the model's identity is part of its hash."""
        spec = self.specs.get(name)
        identity = spec.identity if spec is not None else ""
        hashed = settings_hash({**self.hparams, "model_identity": identity})
        return PointKey(name, self.task.fingerprint, size, self.config.train.seed, hashed)

    def stale_points(self, name: str) -> int:
        """Stored points of ``name`` on this data and seed measured on a different model.

        They have the name but not the identity (the folder was replaced, the
        snapshot moved): never reused, and the run says so.
        """
        spec = self.specs.get(name)
        if spec is None:
            return 0
        fp, seed = self.task.fingerprint, self.config.train.seed
        return sum(
            1
            for p in self.store.points(name)
            if p.key.fingerprint == fp
            and p.key.seed == seed
            and p.measured.hparams.get("model_identity") not in (None, spec.identity)
        )

    def reuse(self, cand: Candidate, size: int) -> PointFinished | None:
        """The stored point at ``size``, recorded as reused; None when there is none."""
        stored = self.store.get_point(self.key(cand.rec.model, size))
        if stored is None:
            return None
        self.reused += 1
        cand.rec.add_point(_point_record(stored, reused=True))
        return PointFinished(cand.rec.model, size, stored.measured, True)

    def point_job(self, cand: Candidate, size: int, job_id: int) -> PointJob:
        """The job that trains ``cand`` at ``size`` on whichever worker takes it."""
        cfg = self.config
        return PointJob(job_id, cand.spec, size, cfg.train, cfg.data, self.task.fingerprint)

    def ntk_job(self, cand: Candidate, job_id: int) -> PointJob:
        """The job that probes ``cand``'s NTK on the probe set, within its share of the ladder."""
        cfg = self.config
        return PointJob(
            job_id,
            cand.spec,
            0,
            cfg.train,
            cfg.data,
            self.task.fingerprint,
            ntk=cfg.ntk,
            probe_cost_examples=probe_cost_examples(cfg, self.ladder_sizes()),
        )

    def stored_spectrum(self, cand: Candidate) -> NTKComputed | None:
        """The model's NTK spectrum from the store, recorded as reused; None when absent."""
        rec = cand.rec
        settings = ntk_settings(self.config, cand.spec.identity, self.ladder_sizes())
        got = self.store.get_spectrum(rec.model, self.task.fingerprint, settings)
        if got is None:
            return None
        rec.spectrum = NTKSpectrum.from_dict(got.spectrum)
        rec.ntk = {**got.summary, "reused": True}
        return _ntk_event(rec.model, got.summary)

    def trained(
        self, cand: Candidate, size: int, measured: PointMeasurements, worker: str
    ) -> PointFinished:
        """Store a point a worker measured (one transaction, first) and record it."""
        stored = self.store.put_point(self.key(cand.rec.model, size), measured)
        self.computed += 1
        cand.rec.add_point(_point_record(stored, reused=False))
        return PointFinished(cand.rec.model, size, stored.measured, False, worker=worker)

    def ladder_sizes(self) -> list[int]:
        """The ladder as clipped to the data."""
        return list(self.record.dataset.get("sizes") or self.config.sizes)

    def ladder_examples(self) -> float:
        """Training examples one model's ladder processes: every size times the epochs."""
        return float(sum(self.ladder_sizes())) * float(self.config.train.epochs)

    def probed(self, cand: Candidate, result: Any, error: str | None) -> NTKComputed:
        """Store and record a probe's spectrum; a failed probe leaves the law's F free.

        A failed probe is reported (ok=False, with the reason) and the model goes
        on without a spectrum, so its law falls back to F free.
        """
        rec = cand.rec
        summary = _ntk_summary(result, error, self.ladder_examples())
        if not summary["ok"]:
            rec.ntk = {"ok": False, "reason": summary["reason"]}
            n, seconds = summary.get("n", 0), summary.get("seconds", 0.0)
            return NTKComputed(
                rec.model, n, math.nan, (), math.nan, seconds, ok=False, reason=summary["reason"]
            )
        spectrum = result.spectrum
        settings = ntk_settings(self.config, cand.spec.identity, self.ladder_sizes())
        self.store.put_spectrum(
            rec.model, self.task.fingerprint, settings, spectrum.to_dict(), summary
        )
        rec.spectrum = spectrum
        rec.ntk = {**summary, "reused": False}
        return _ntk_event(rec.model, summary)


def _ntk_summary(result: Any, error: str | None, ladder: float) -> dict[str, Any]:
    """The probe's summary for results.json and the store, or ok=False with the reason.

    ``ladder_fraction`` is the probe's FLOPs over the ladder's training FLOPs for the
    same model (6 x parameters x ``ladder`` examples x the probe's tokens per example).
    """
    if error is not None:
        return {"ok": False, "reason": error}
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
        "projection": result.projection,
        "num_params": result.num_params,
        "ladder_fraction": _ladder_fraction(result, ladder),
    }


def _ladder_fraction(result: Any, ladder: float) -> float | None:
    total = getattr(result, "total_params", None) or result.num_params
    per_example = result.tokens / max(result.n, 1)
    ladder_flops = 6.0 * total * ladder * per_example
    return float(result.flops / ladder_flops) if ladder_flops > 0 else None


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
