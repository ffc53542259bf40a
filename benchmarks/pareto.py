"""Pareto table: selection quality against compute, for the adaptive policy and fixed budgets.

For each benchmark table (../shared/benchmarks/*.csv, target 1,638,400 samples):

- ``ats`` and ``lensllm`` at the seven fixed budgets (1/8 ... 1/512 of the target), charged
  for every column up to the budget;
- ``adaptive`` (core/adaptive.py, flagship predictor, default schedule: successive halving on
  compute) at several budgets and elimination confidences, and the ``challenger`` (LUCB)
  schedule at the default budget for comparison;

each point is (cost_fraction, RelAcc, PearCorr), cost_fraction = cost / full fine-tuning
of every candidate at the target (parameters x samples).

One table is one draw: which model wins at 1/100 of the compute can hinge on a single
candidate. So every row is also replayed on ``--pools`` random candidate pools of
``--pool-size`` models from the same table (seeded): ``pools RelAcc`` is the mean RelAcc over
them and ``pools top-1`` the share of pools where the pick is the pool's true best.

Writes docs/pareto.csv, docs/pareto.md and docs/pareto.png (matplotlib, the ``bench`` extra)
and prints the table. About 2 minutes on 2 cores with the default 40 pools; ``--pools 0``
takes seconds.

    python benchmarks/pareto.py [--out docs] [--pools 40] [--jobs 2] [--tables ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.bench import (  # noqa: E402
    DEFAULT_BUDGETS,
    DEFAULT_TARGET,
    Table,
    fixed_cost_fraction,
    run_adaptive,
    score,
)
from core.policy.adaptive import AdaptiveConfig  # noqa: E402
from core.science.curves import Curve  # noqa: E402
from core.science.selectors import select  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"
CONFIDENCES = (0.5, 0.9, 0.99)
BUDGETS = (0.01, 0.02, 0.05, 0.1, 0.2)
FIELDS = (
    "dataset",
    "method",
    "setting",
    "cost_fraction",
    "rel_acc",
    "pearson",
    "largest_size",
    "pools_rel_acc",
    "pools_top1",
    "pools_max_cost",
)

Setting = tuple[str, str, object]
"""(method, label, budget in samples for a fixed selector or an AdaptiveConfig)."""


def settings(target: int) -> list[Setting]:
    out: list[Setting] = [
        (m, f"budget 1/{target // b}", b) for m in ("ats", "lensllm") for b in DEFAULT_BUDGETS
    ]
    base = AdaptiveConfig()
    out += [
        ("adaptive", f"{base.schedule}, confidence {base.confidence:g}, budget {b:g}", cfg)
        for b in BUDGETS
        for cfg in [replace(base, max_cost_fraction=b)]
    ]
    out += [
        ("adaptive", f"{base.schedule}, confidence {c:g}, budget {base.max_cost_fraction:g}", cfg)
        for c in CONFIDENCES
        if c != base.confidence
        for cfg in [replace(base, confidence=c)]
    ]
    lucb = replace(base, schedule="challenger")
    out.append(
        (
            "adaptive",
            f"challenger, confidence {base.confidence:g}, budget {base.max_cost_fraction:g}",
            lucb,
        )
    )
    return out


def run_one(curves: Sequence[Curve], setting: Setting, target: int) -> dict:
    """One row's numbers on one candidate pool (a table or a subset of it)."""
    method, _, arg = setting
    table = Table("pool", tuple(curves))
    if method == "adaptive":
        assert isinstance(arg, AdaptiveConfig)
        sel, cost = run_adaptive(table, target, config=arg)
    else:
        assert isinstance(arg, int)
        sel = select(method, table.curves, arg, target)
        cost = fixed_cost_fraction(table.curves, method, arg, target)
    m = score(sel, table.curves)
    best = min(table.curves, key=lambda c: c.loss_at(target)).model
    return {
        "cost_fraction": cost,
        "rel_acc": m["rel_acc"],
        "pearson": m["pearson"],
        "largest_size": sel.budget,
        "top1": sel.ranking[0] == best,
    }


def _job(args: tuple) -> dict:
    return run_one(*args)


def pools_of(n: int, k: int, size: int, seed: int) -> list[tuple[int, ...]]:
    """``k`` seeded random subsets of ``size`` of the indices 0..n-1 (sorted, so stable)."""
    rng = random.Random(seed)
    size = min(size, n)
    return [tuple(sorted(rng.sample(range(n), size))) for _ in range(k)]


def rows_for(table: Table, target: int, pools: int, pool_size: int, jobs: int) -> list[dict]:
    curves = [c for c in table.curves if target in c.sizes]
    subsets = pools_of(len(curves), pools, pool_size, seed=0)
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        for setting in settings(target):
            work = [(curves, setting, target)] + [
                ([curves[i] for i in idx], setting, target) for idx in subsets
            ]
            full, *sub = list(ex.map(_job, work))
            row = {
                "dataset": table.dataset,
                "method": setting[0],
                "setting": setting[1],
                **{k: full[k] for k in ("cost_fraction", "rel_acc", "pearson", "largest_size")},
                "pools_rel_acc": sum(r["rel_acc"] for r in sub) / len(sub) if sub else None,
                "pools_top1": sum(r["top1"] for r in sub) / len(sub) if sub else None,
                "pools_max_cost": max(r["cost_fraction"] for r in sub) if sub else None,
            }
            rows.append(row)
            print(
                f"{table.dataset:10s} {row['method']:8s} {row['setting']:45s} "
                f"cost {row['cost_fraction']:.4f} RelAcc {fmt(row['rel_acc'])} "
                f"pools {fmt(row['pools_rel_acc'])}",
                flush=True,
            )
    return rows


def fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.4f}"


def write_markdown(rows: list[dict], path: Path) -> str:
    lines = [
        "| dataset | method | setting | cost_fraction | RelAcc % | PearCorr % | largest size "
        "| pools RelAcc % | pools top-1 % | pools max cost |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['setting']} | {fmt(r['cost_fraction'], False)} "
            f"| {fmt(r['rel_acc'])} | {fmt(r['pearson'])} | {r['largest_size']} "
            f"| {fmt(r['pools_rel_acc'])} | {fmt(r['pools_top1'])} "
            f"| {fmt(r['pools_max_cost'], False)} |"
        )
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    metrics = [("rel_acc", "RelAcc %"), ("pearson", "PearCorr %")]
    if any(r.get("pools_rel_acc") is not None for r in rows):
        metrics.append(("pools_rel_acc", "RelAcc %, mean over random pools"))
    fig, axes = plt.subplots(
        len(metrics),
        len(datasets),
        figsize=(5.5 * len(datasets), 3.5 * len(metrics)),
        squeeze=False,
    )
    style = {
        "ats": ("tab:gray", "s", "ats, fixed budgets"),
        "lensllm": ("tab:blue", "o", "lensllm, fixed budgets"),
        "adaptive": ("tab:red", "*", "adaptive (successive halving)"),
        "challenger": ("tab:orange", "X", "adaptive (challenger / LUCB)"),
    }

    def kind(r: dict) -> str:
        if r["method"] == "adaptive" and r["setting"].startswith("challenger"):
            return "challenger"
        return r["method"]

    for j, ds in enumerate(datasets):
        for i, (metric, name) in enumerate(metrics):
            ax = axes[i][j]
            for method, (color, marker, label) in style.items():
                pts = sorted(
                    (r["cost_fraction"], 100 * r[metric])
                    for r in rows
                    if r["dataset"] == ds and kind(r) == method and r[metric] is not None
                )
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker=marker,
                    color=color,
                    label=label,
                    linestyle="-" if method in ("ats", "lensllm") else "none",
                    markersize=6 if method in ("ats", "lensllm") else 10,
                )
            ax.axvline(0.05, color="tab:green", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_xlabel("cost / full fine-tuning (params x samples)")
            ax.set_ylabel(name)
            ax.set_title(f"{ds}: {name} vs compute")
            ax.grid(True, alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument(
        "--tables", type=Path, nargs="+", default=[SHARED / "flan.csv", SHARED / "gigaword.csv"]
    )
    ap.add_argument("--target", type=int, default=DEFAULT_TARGET)
    ap.add_argument("--pools", type=int, default=40, help="random candidate pools per table")
    ap.add_argument("--pool-size", type=int, default=15, help="candidates per pool")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict] = []
    for p in args.tables:
        rows.extend(rows_for(Table.read(p), args.target, args.pools, args.pool_size, args.jobs))
    with (args.out / "pareto.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(write_markdown(rows, args.out / "pareto.md"))
    default = AdaptiveConfig()
    label = f"{default.schedule}, confidence {default.confidence:g}, budget {default.max_cost_fraction:g}"
    picked = [r for r in rows if r["method"] == "adaptive" and r["setting"] == label]
    for r in picked:
        print(
            f"{r['dataset']}: adaptive at the defaults: RelAcc {fmt(r['rel_acc'])}% at cost "
            f"{r['cost_fraction']:.4f}; over {args.pools} pools of {args.pool_size}: mean RelAcc "
            f"{fmt(r['pools_rel_acc'])}%, top-1 {fmt(r['pools_top1'])}%"
        )
    if picked:
        mean = sum(r["rel_acc"] for r in picked) / len(picked)
        print(f"adaptive at the defaults, RelAcc mean over the tables: {100 * mean:.1f}%")
    try:
        plot(rows, args.out / "pareto.png")
        print(f"wrote {args.out / 'pareto.png'}")
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no PNG written")
    print(
        f"wrote {args.out / 'pareto.csv'} and {args.out / 'pareto.md'} in {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
