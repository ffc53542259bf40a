"""Does the NTK help? The lensllm law with F from the spectrum vs the same law with F free.

Runs (or resumes) a real ladder on the tiny zoo through core.run.runner.run_events:
the default run's models and data, the default ladder plus one more (smaller) size, the
NTK probe once per model. Then, for each budget, it fits the ``lensllm`` law to
every model's points at sizes <= budget (zero-shot included) twice:

- NTK-informed: ``fit_law("lensllm", ..., spectrum=<the model's NTK spectrum>)``,
  F = s * F(Theta, tau D) from the probe (core.science.laws);
- F free: ``fit_law("lensllm", ...)`` without a spectrum (the Rectified form),

predicts each measured size above the budget, and compares:

- accuracy: RMSE over models of log(predicted) - log(measured) loss;
- ranking at the predicted size: Spearman rho and Pearson r of predicted vs
  measured losses, whether the predicted best is the measured best (top-1),
  and rel_acc = (worst - chosen) / (worst - best) of the measured losses.

The run directory is a normal run (resumable: a second call reuses every
stored point and spectrum), so the comparison can be repeated without
retraining with --no-run. A negative answer is reported as measured.

    /work/main/.venv/bin/python benchmarks/ntk_vs_free.py --out runs/ntk_vs_free

Measured 2026-11-23 (zoo v1, default data, ladder 50..400 because the full
default ladder did not fit the time on a loaded 2-core machine;
``--sizes 50 100 200 400``), fitting up to 200 and predicting 400 for the
four default models: RMSE log 0.0180 (NTK) vs 0.0100 (F free), Spearman 0.80
vs 1.00, top-1 right for both. A true negative on this small, flat setting:
on the gpt2 models the NTK term (tau > 0) over-predicts the gain; on the llama
models the fit chose tau = 0 and equals the free-F law.

Measured again 2026-11-23 on zoo v3 with the full default ladder plus 100
(``--out /tmp/ntkfull``, idle 2-core machine, 57 s): NTK-informed vs F free,
RMSE log / Spearman / top-1 right --
budget 400 -> 800: 0.0189 / 0.80 / yes vs 0.0014 / 0.80 / yes;
budget 400 -> 1600: 0.0912 / -0.20 / no vs 0.0067 / 0.80 / no;
budget 800 -> 1600: 0.0050 / 1.00 / yes vs 0.0031 / 0.80 / no.
The NTK term is less accurate in all 3 cells, ranks better in one and worse
in one; the probe costs 2.0% of the ladder's FLOPs (10.9% of its seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import DEFAULT_MODELS, DEFAULT_SIZES, RunConfig
from core.science.laws import fit_law
from core.science.spectrum import NTKSpectrum

EXTRA_SIZE = DEFAULT_SIZES[0] // 2
"""One more ladder size, below the default ladder: the default data's train split
(1878 examples) cannot hold one above it."""


def run_ladder(cfg: RunConfig) -> None:
    """Drive the real runner to completion, printing one line per finished unit of work."""
    from core.events import ModelFailed, NTKComputed, PointFailed, PointFinished, RunFinished
    from core.run.runner import run_events

    t0 = time.time()
    for ev in run_events(cfg):
        stamp = f"[{time.time() - t0:7.1f}s]"
        if isinstance(ev, NTKComputed):
            status = "ok" if ev.ok else f"FAILED: {ev.reason}"
            print(f"{stamp} NTK {ev.model}: trace {ev.trace:.4g}, {ev.seconds:.1f}s, {status}")
        elif isinstance(ev, PointFinished):
            print(f"{stamp} {ev.model} D={ev.size}: loss {ev.loss:.4f}")
        elif isinstance(ev, (PointFailed, ModelFailed)):
            print(f"{stamp} {type(ev).__name__} {ev.model}: {ev.reason}")
        elif isinstance(ev, RunFinished):
            print(f"{stamp} run finished")
        sys.stdout.flush()


def load_run(out: Path) -> tuple[dict[str, dict[int, float]], dict[str, NTKSpectrum], dict]:
    """Measured points (model -> size -> loss) and NTK spectra, from results.json and the store."""
    from core.paths import STORE_NAME
    from core.run.runner import ntk_settings
    from core.run.store import Store

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    cfg = RunConfig.from_dict(results["config"])
    points: dict[str, dict[int, float]] = {}
    spectra: dict[str, NTKSpectrum] = {}
    fp = results["dataset"]["fingerprint"]
    with Store(out / STORE_NAME) as store:
        for m in results["models"]:
            pts = {int(p["size"]): float(p["loss"]) for p in m["points"] if p["loss"] is not None}
            points[m["model"]] = pts
            got = store.get_spectrum(m["model"], fp, ntk_settings(cfg))
            if got is not None and got.summary.get("ok", True):
                spectra[m["model"]] = NTKSpectrum.from_dict(got.spectrum)
    return points, spectra, results


def rel_acc(pred: np.ndarray, true: np.ndarray) -> float:
    chosen = true[int(np.argmin(pred))]
    worst, best = true.max(), true.min()
    return 1.0 if worst == best else float((worst - chosen) / (worst - best))


def compare(
    points: dict[str, dict[int, float]],
    spectra: dict[str, NTKSpectrum],
    budgets: list[int],
    seed: int = 0,
) -> list[dict[str, object]]:
    """One row per (budget, predicted size, variant) with accuracy and ranking metrics."""
    models = [m for m in points if m in spectra]
    rows = []
    for budget in budgets:
        above = sorted(
            {s for m in models for s in points[m] if s > budget}
            & set.intersection(*(set(points[m]) for m in models))
        )
        fits = {}
        for m in models:
            sizes = [s for s in sorted(points[m]) if s <= budget]
            losses = [points[m][s] for s in sizes]
            fits[m] = {
                "ntk": fit_law("lensllm", sizes, losses, spectrum=spectra[m], seed=seed),
                "free": fit_law("lensllm", sizes, losses, seed=seed),
            }
        for target in above:
            true = np.array([points[m][target] for m in models])
            for variant in ("ntk", "free"):
                pred = np.array([float(fits[m][variant].predict(target)[0]) for m in models])
                ok = np.isfinite(pred) & (pred > 0)
                failed = [m for m, good in zip(models, ok, strict=True) if not good]
                row: dict[str, object] = {
                    "budget": budget,
                    "target": target,
                    "variant": variant,
                    "n_models": int(ok.sum()),
                    "failed": failed,
                    "per_model": {
                        m: (None if not good else float(p))
                        for m, p, good in zip(models, pred, ok, strict=True)
                    },
                }
                if ok.sum() >= 2:
                    err = np.log(pred[ok]) - np.log(true[ok])
                    row["rmse_log"] = float(np.sqrt(np.mean(err**2)))
                    row["spearman"] = float(spearmanr(pred[ok], true[ok]).statistic)
                    row["pearson"] = float(pearsonr(pred[ok], true[ok]).statistic)
                    row["top1"] = bool(np.argmin(pred[ok]) == np.argmin(true[ok]))
                    row["rel_acc"] = rel_acc(pred[ok], true[ok])
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/ntk_vs_free", help="run directory (resumable)")
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    ap.add_argument("--sizes", nargs="*", type=int, default=[*DEFAULT_SIZES, EXTRA_SIZE])
    ap.add_argument("--budgets", nargs="*", type=int, default=None)
    ap.add_argument("--no-run", action="store_true", help="only analyse an existing run")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.no_run:
        cfg = RunConfig(
            models=args.models,
            sizes=args.sizes,
            target=2 * max(args.sizes),
            out_dir=str(out),
        )
        run_ladder(cfg)
    points, spectra, results = load_run(out)
    missing = sorted(set(points) - set(spectra))
    if missing:
        print(f"no NTK spectrum (left out of the comparison): {', '.join(missing)}")
    planned = {0, *results["dataset"]["sizes"]}
    partial = sorted(m for m in points if not planned <= set(points[m]))
    if partial:  # an interrupted run: compare the models whose ladder is complete
        print(f"ladder incomplete (left out of the comparison): {', '.join(partial)}")
        for m in partial:
            spectra.pop(m, None)
    sizes = sorted({s for pts in points.values() for s in pts if s > 0})
    budgets = args.budgets or [s for s in sizes[:-1] if s >= sizes[min(2, len(sizes) - 1)]]
    rows = compare(points, spectra, budgets)

    print()
    print("models compared:", ", ".join(m for m in points if m in spectra))
    print("measured losses:")
    for m, pts in points.items():
        print(f"  {m:<14}" + "  ".join(f"D={s}: {pts[s]:.4f}" for s in sorted(pts)))
    ntk_flops = sum(float((m.get("ntk") or {}).get("flops") or 0.0) for m in results["models"])
    ladder_flops = sum(float(p["flops"] or 0.0) for m in results["models"] for p in m["points"])
    ntk_secs = sum(float((m.get("ntk") or {}).get("seconds") or 0.0) for m in results["models"])
    ladder_secs = sum(float(p["seconds"] or 0.0) for m in results["models"] for p in m["points"])
    if ladder_flops > 0:
        print(
            f"NTK cost: {100 * ntk_flops / ladder_flops:.2f}% of the ladder's FLOPs, "
            f"{100 * ntk_secs / max(ladder_secs, 1e-9):.1f}% of its seconds "
            f"({ntk_secs:.1f}s vs {ladder_secs:.1f}s)"
        )
    print()
    head = f"{'budget':>7}{'predict':>9}  {'F':<6}{'models':>7}{'RMSE log':>10}{'spearman':>10}{'pearson':>9}{'top1':>6}{'rel_acc':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:

        def fmt(key: str, spec: str, r: dict = r) -> str:
            v = r.get(key)
            return (
                "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)
            )

        print(
            f"{r['budget']:>7}{r['target']:>9}  {r['variant']:<6}{r['n_models']:>7}"
            f"{fmt('rmse_log', '.4f'):>10}{fmt('spearman', '.3f'):>10}{fmt('pearson', '.3f'):>9}"
            f"{fmt('top1', ''):>6}{fmt('rel_acc', '.3f'):>9}"
        )
    wins = [
        (a["budget"], a["target"], a.get("rmse_log"), b.get("rmse_log"))
        for a, b in zip(rows[::2], rows[1::2], strict=True)
    ]
    better = sum(1 for *_, x, y in wins if x is not None and y is not None and x < y)
    print(f"\nNTK-informed more accurate (lower RMSE log) in {better} of {len(wins)} cells")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
