"""What a run has measured and concluded so far, and its files on disk.

The runner keeps one ``RunRecord`` up to date as points finish and laws are
refitted, and writes it after every point: ``results.json`` (everything a
script or a reader needs, with ``null`` for what is not known) and
``curves.csv`` (the benchmark wide format, so a run can be replayed by the
``bench`` and ``fit`` commands). Both are written to a temporary file and
renamed into place, so a crash at any moment leaves either the previous
complete file or the new complete file, never a torn one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import DISK_FULL, RunDirError, os_error_line
from core.events import PointMeasurements, RankEntry
from core.paths import CURVES_NAME, RESULTS_NAME, STORE_NAME
from core.science.curves import Curve, write_wide_csv
from core.science.phase import Transition
from core.science.prediction import Prediction
from core.science.spectrum import NTKSpectrum

RESULTS_VERSION = 1


@dataclass
class PointRecord:
    """One measured point as reported: its size, its measurements, whether it was reused."""

    size: int
    measured: PointMeasurements
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        """Flat, as results.json lists a point: size, every measurement but the per-step
        losses (they stay in the store), reused."""
        measured = dataclasses.asdict(self.measured)
        measured.pop("losses", None)
        return {"size": self.size, **measured, "reused": self.reused}


@dataclass
class ModelRecord:
    """Everything known about one candidate; ``failed`` holds the reason if it failed."""

    model: str
    params: float | None = None
    family: str = ""
    points: list[PointRecord] = field(default_factory=list)
    prediction: Prediction | None = None
    """The selector's latest verdict on this model (its law fit is ``prediction.fit``)."""
    transition: Transition | None = None
    """The phase transition detected on the curve at the latest refit."""
    ntk: dict[str, Any] | None = None
    spectrum: NTKSpectrum | None = None
    failed: str | None = None
    data: dict[str, Any] | None = None
    """How the task encodes for this model: examples cut at max_length, chat template."""

    def point(self, size: int) -> PointRecord | None:
        return next((p for p in self.points if p.size == size), None)

    def add_point(self, point: PointRecord) -> None:
        self.points = [p for p in self.points if p.size != point.size]
        self.points.append(point)
        self.points.sort(key=lambda p: p.size)

    def law_dict(self) -> dict[str, Any] | None:
        """results.json's ``law``: the fitted law, or why the selector gave none."""
        pred = self.prediction
        if pred is None:
            return None
        fit = pred.fit
        if fit is None:
            return {"law": None, "params": {}, "ok": False, "residual": None, "reason": pred.reason}
        return {
            "law": fit.law,
            "params": {k: float(v) for k, v in fit.params.items()},
            "ok": bool(fit.ok),
            "residual": fit.residual,
            "reason": fit.reason or "",
        }

    def transition_dict(self) -> dict[str, Any] | None:
        """results.json's ``transition``, with the selector's own call when it differs."""
        if self.transition is None:
            return None
        out: dict[str, Any] = self.transition.to_dict()
        pred = self.prediction
        if pred is not None and pred.transition is not None and pred.transition != out["size"]:
            out["selector_size"] = int(pred.transition)
        return out

    def prediction_dict(self, target: int) -> dict[str, Any] | None:
        pred = self.prediction
        if pred is None:
            return None
        return {
            "target": target,
            "predicted": pred.predicted,
            "low": pred.low,
            "high": pred.high,
            "score": pred.score,
            "ok": bool(pred.ok),
            "reason": pred.reason or "",
        }

    def curve(self) -> Curve:
        """The measured curve (finite, positive losses only) with the NTK spectrum if any."""
        return Curve(
            self.model,
            tuple(p.size for p in self.points),
            tuple(p.measured.loss for p in self.points),
            self.params,
            self.family,
            self.spectrum,
        ).valid()


@dataclass
class RunRecord:
    """The whole run's state, as written to ``results.json``."""

    config: RunConfig
    out_dir: Path
    models: dict[str, ModelRecord]
    dataset: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ranking: tuple[RankEntry, ...] = ()
    selector: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    seconds: float = 0.0
    policy: dict[str, Any] = field(default_factory=dict)
    """The adaptive policy's account (stop reason, cost, eliminations); empty on a ladder run."""
    floor: Completeness | None = field(default=None, repr=False, compare=False)
    """How complete the results.json this run found is: it is not replaced by less."""

    def failures(self) -> list[tuple[str, str]]:
        return [(m.model, m.failed) for m in self.models.values() if m.failed is not None]

    def to_dict(self) -> dict[str, Any]:
        return _finite(
            {
                "version": RESULTS_VERSION,
                "status": self.status,
                "out_dir": str(self.out_dir),
                "seconds": self.seconds,
                "config": self.config.to_dict(),
                "dataset": self.dataset,
                "warnings": list(self.warnings),
                "models": [
                    {
                        "model": m.model,
                        "params": m.params,
                        "family": m.family,
                        "failed": m.failed,
                        "points": [p.to_dict() for p in m.points],
                        "law": m.law_dict(),
                        "transition": m.transition_dict(),
                        "prediction": m.prediction_dict(self.config.target),
                        "ntk": m.ntk,
                        "data": m.data,
                        # Full spectrum (eigenvalues, weights (u_k . r0)^2) so the
                        # NTK-informed law can be refitted from results.json alone.
                        "spectrum": m.spectrum.to_dict() if m.spectrum is not None else None,
                    }
                    for m in self.models.values()
                ],
                "selector": self.selector,
                "ranking": [
                    {
                        "rank": e.rank,
                        "model": e.model,
                        "predicted_target": e.predicted_target,
                        "low": e.low,
                        "high": e.high,
                        "score": e.score,
                    }
                    for e in self.ranking
                ],
                "failures": [{"model": m, "reason": r} for m, r in self.failures()],
                "policy": self.policy or None,
            }
        )

    def write(self) -> bool:
        """Write results.json and curves.csv atomically (temp file + os.replace).

        Until this record is at least as complete as the results.json the run
        found (``floor``), nothing is written and False is returned: a reopened
        run killed in its first seconds leaves the old ranking, not an empty one.
        A finished record is complete for its configuration and always written.
        """
        doc = self.to_dict()
        floor = self.floor
        if (
            floor is not None
            and self.status != "finished"
            and not at_least(completeness(doc), floor)
        ):
            return False
        self.floor = None
        text = json.dumps(doc, indent=2, allow_nan=False)
        curves = [m.curve() for m in self.models.values() if m.points]
        try:
            atomic_write_text(self.out_dir / RESULTS_NAME, text + "\n")
            if curves:
                _atomic_write(self.out_dir / CURVES_NAME, lambda tmp: write_wide_csv(tmp, curves))
        except OSError as exc:
            raise RunDirError(write_failure(exc, self.out_dir)) from None
        return True


Completeness = tuple[int, int, int]
"""(measured points, ranked models, finished 0/1) of a results.json."""


def completeness(doc: dict[str, Any]) -> Completeness:
    """How much a results.json document holds, to compare an old one with a new one."""
    points = sum(len(m.get("points") or ()) for m in doc.get("models") or ())
    return points, len(doc.get("ranking") or ()), int(doc.get("status") == "finished")


def at_least(new: Completeness, old: Completeness) -> bool:
    return all(a >= b for a, b in zip(new, old, strict=True))


def existing_completeness(out_dir: Path) -> Completeness | None:
    """The completeness of ``out_dir``'s results.json; None when there is none to keep."""
    try:
        doc = json.loads((out_dir / RESULTS_NAME).read_text(encoding="utf-8"))
        return completeness(doc) if isinstance(doc, dict) else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def write_failure(exc: OSError, out_dir: Path) -> str:
    """One line for a write that failed mid-run, saying what is safe and what to do."""
    where = os_error_line(exc)
    if exc.errno in DISK_FULL:
        return (
            f"disk full writing the run ({where}); finished points are kept in "
            f"{out_dir / STORE_NAME}: free some space and rerun with the same --out to resume"
        )
    return f"cannot write the run ({where}); finished points are kept in {out_dir / STORE_NAME}"


def disk_failure(where: str, worker: str) -> str:
    """One line for a job that met a full or read-only disk (``where`` says which, in words)."""
    on = f" on worker {worker}" if worker else ""
    return (
        f"a write failed{on} ({where}); finished points are kept: free some space or make"
        " it writable, then rerun with the same --out to resume"
    )


TEMP_PATTERNS: tuple[str, ...] = (f".{RESULTS_NAME}.*.tmp", f".{CURVES_NAME}.*.tmp")
"""The temporary files ``write`` renames into place; any found at a run's start are orphans."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new file, never half."""
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_orphan_temps(out_dir: Path) -> list[Path]:
    """Delete the temp files a killed run left (call only while holding the run's lock)."""
    removed = []
    for pattern in TEMP_PATTERNS:
        for tmp in out_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _atomic_write(path: Path, fill: Callable[[Path], object]) -> None:
    """Create a temp file beside ``path``, ``fill`` it, flush it to disk, rename it over ``path``."""
    tmp = _temp_path(path)
    try:
        fill(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_path(path: Path) -> Path:
    """A new, empty temp file beside ``path``, created with the umask's permissions.

    ``tempfile.mkstemp`` would create it 0600 whatever the umask, and the rename
    would carry that over to results.json, unlike the run's other files.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None: results.json must be strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
