"""Evaluate the flagship ``lensllm`` selector against AtS on the published curves.

    /work/main/.venv/bin/python benchmarks/flagship_eval.py [TABLE.csv ...] [--ablations]

Replays every (table, budget) cell exactly as ``lensllm-tui bench`` does (the
selector sees sizes <= budget only) and prints, per cell, PearCorr / RelAcc /
rmse_log of ``lensllm`` next to ``ats`` (the baseline, measured in the same
run), the issue-4 targets with pass/fail, the coverage of the 90% intervals
(fraction of true target losses inside [low, high]) and the median seconds per
selector call. ``--ablations`` adds the same summary for the trend without the
law's acceleration and for other Huber constants, so each part's contribution
is measured rather than asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.bench import DEFAULT_BUDGETS, DEFAULT_TARGET, Table, ratio_label  # noqa: E402
from core.science.flagship import predict_lensllm  # noqa: E402
from core.science.metrics import pearson, rel_acc, rmse_log  # noqa: E402
from core.science.selectors import select  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def cells(tables: list[Table], run) -> dict[tuple[str, int], dict[str, float]]:
    """Metrics of ``run(curves_cut, budget, target) -> (scores, predicted, low, high)`` per cell."""
    out = {}
    for t in tables:
        truth = np.array([c.loss_at(DEFAULT_TARGET) for c in t.curves])
        for b in DEFAULT_BUDGETS:
            t0 = time.perf_counter()
            scores, pred, low, high = run([c.up_to(b) for c in t.curves], b, DEFAULT_TARGET)
            sec = time.perf_counter() - t0
            cover = None
            if low is not None:
                lo = np.array([np.nan if v is None else v for v in low], dtype=float)
                hi = np.array([np.nan if v is None else v for v in high], dtype=float)
                cover = float(np.mean((truth >= lo) & (truth <= hi)))
            out[(t.dataset, b)] = {
                "pearson": 100 * pearson(scores, truth),
                "rel_acc": 100 * rel_acc(scores, truth),
                "rmse_log": rmse_log(pred, truth),
                "cover": cover,
                "seconds": sec,
            }
    return out


def via_select(method: str):
    def run(curves, budget, target):
        sel = select(method, curves, budget, target)
        p = sel.predictions
        return [x.score for x in p], [x.predicted for x in p], None, None

    return run


def flagship(**kw):
    def run(curves, budget, target):
        p = predict_lensllm(curves, budget, target, **kw)
        return (
            [x.score for x in p],
            [x.predicted for x in p],
            [x.low for x in p],
            [x.high for x in p],
        )

    return run


def summary(res: dict, base: dict) -> tuple[str, bool]:
    keys = list(res)
    p = np.array([res[k]["pearson"] for k in keys])
    bp = np.array([base[k]["pearson"] for k in keys])
    r = np.mean([res[k]["rel_acc"] for k in keys])
    br = np.mean([base[k]["rel_acc"] for k in keys])
    m = float(np.median([res[k]["rmse_log"] for k in keys]))
    bm = float(np.median([base[k]["rmse_log"] for k in keys]))
    checks = {
        f"mean PearCorr {p.mean():.2f} >= ats {bp.mean():.2f} + 3": p.mean() >= bp.mean() + 3,
        f"worst cell vs ats {np.min(p - bp):+.2f} >= -2": np.min(p - bp) >= -2,
        f"mean RelAcc {r:.2f} >= ats {br:.2f}": r >= br,
        f"median rmse_log {m:.4f} <= 0.75 x ats {bm:.4f} (ratio {m / bm:.3f})": m <= 0.75 * bm,
    }
    text = "\n".join(f"  [{'pass' if ok else 'FAIL'}] {k}" for k, ok in checks.items())
    return text, all(checks.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="*", type=Path)
    ap.add_argument("--ablations", action="store_true")
    args = ap.parse_args()
    paths = args.tables or [BENCH / "flan.csv", BENCH / "gigaword.csv"]
    tables = [Table.read(p) for p in paths]
    ats = cells(tables, via_select("ats"))
    ours = cells(tables, flagship())
    head = " ".join(f"{ratio_label(b, DEFAULT_TARGET):>6}" for b in DEFAULT_BUDGETS)
    for t in tables:
        print(f"\n{t.dataset}: lensllm vs ats        {head}")
        for metric, fmt in (
            ("pearson", "{:6.1f}"),
            ("rel_acc", "{:6.1f}"),
            ("rmse_log", "{:6.3f}"),
        ):
            for name, res in (("lensllm", ours), ("ats", ats)):
                row = " ".join(fmt.format(res[(t.dataset, b)][metric]) for b in DEFAULT_BUDGETS)
                print(f"  {name:8s} {metric:9s}   {row}")
        row = " ".join(f"{ours[(t.dataset, b)]['cover']:6.2f}" for b in DEFAULT_BUDGETS)
        print(f"  lensllm  90%-cover    {row}")
    text, ok = summary(ours, ats)
    print("\nissue-4 targets over all cells:\n" + text)
    cover = np.mean([v["cover"] for v in ours.values()])
    print(f"interval coverage (nominal 0.90): {cover:.3f}")
    sec = statistics.median(v["seconds"] for v in ours.values())
    base_sec = statistics.median(v["seconds"] for v in ats.values())
    print(f"seconds per call: lensllm {sec:.3f}, ats {base_sec:.3f} (ratio {sec / base_sec:.1f}x)")
    if args.ablations:
        for label, kw in (
            ("trend only (no law acceleration)", {"accelerate": False}),
            ("huber 1.345", {"huber": 1.345}),
            ("huber 3.0", {"huber": 3.0}),
            ("no huber (plain Kalman)", {"huber": 1e9}),
        ):
            text, _ = summary(cells(tables, flagship(**kw)), ats)
            print(f"\nablation: {label}\n{text}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
