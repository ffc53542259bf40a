"""Pareto table: selection quality against compute, for the adaptive policy and fixed budgets.

For each benchmark table (../shared/benchmarks/*.csv, target 1,638,400 samples):

- ``ats`` and ``lensllm`` at the seven fixed budgets (1/8 ... 1/512 of the target), charged
  for every column up to the budget;
- ``adaptive`` (core/adaptive.py, flagship predictor) at several elimination confidences
  under the default 5% budget, and at several budgets under the default confidence;

each point is (cost_fraction, RelAcc, PearCorr), cost_fraction = cost / full fine-tuning
of every candidate at the target (parameters x samples). Writes docs/pareto.csv,
docs/pareto.md and docs/pareto.png (matplotlib, the ``bench`` extra) and prints the table.

    python benchmarks/pareto.py [--out docs] [--tables ../shared/benchmarks/flan.csv ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.adaptive import AdaptiveConfig  # noqa: E402
from core.bench import (  # noqa: E402
    DEFAULT_BUDGETS,
    DEFAULT_TARGET,
    Table,
    run_adaptive,
    run_bench,
    score,
)

SHARED = ROOT.parent / "shared" / "benchmarks"
CONFIDENCES = (0.5, 0.8, 0.9, 0.95, 0.99)
BUDGETS = (0.01, 0.02, 0.05, 0.1, 0.2)
FIELDS = ("dataset", "method", "setting", "cost_fraction", "rel_acc", "pearson", "largest_size")


def rows_for(table: Table, target: int) -> list[dict]:
    rows: list[dict] = []
    for rec in run_bench([table], ["ats", "lensllm"], DEFAULT_BUDGETS, target):
        rows.append(
            {
                "dataset": table.dataset,
                "method": rec["method"],
                "setting": f"budget 1/{target // rec['budget']}",
                "cost_fraction": rec["cost_fraction"],
                "rel_acc": rec["rel_acc"],
                "pearson": rec["pearson"],
                "largest_size": rec["budget"],
            }
        )
    base = AdaptiveConfig()
    settings = [
        (f"confidence {c:g}, budget {base.max_cost_fraction:g}", replace(base, confidence=c))
        for c in CONFIDENCES
    ] + [
        (f"confidence {base.confidence:g}, budget {b:g}", replace(base, max_cost_fraction=b))
        for b in BUDGETS
        if b != base.max_cost_fraction
    ]
    for label, cfg in settings:
        sel, cost = run_adaptive(table, target, config=cfg)
        m = score(sel, table.curves)
        rows.append(
            {
                "dataset": table.dataset,
                "method": "adaptive",
                "setting": label,
                "cost_fraction": cost,
                "rel_acc": m["rel_acc"],
                "pearson": m["pearson"],
                "largest_size": sel.budget,
            }
        )
    return rows


def fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.4f}"


def write_markdown(rows: list[dict], path: Path) -> str:
    lines = [
        "| dataset | method | setting | cost_fraction | RelAcc % | PearCorr % | largest size |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['setting']} | {fmt(r['cost_fraction'], False)} "
            f"| {fmt(r['rel_acc'])} | {fmt(r['pearson'])} | {r['largest_size']} |"
        )
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.5 * len(datasets), 7), squeeze=False)
    style = {
        "ats": ("tab:gray", "s", "ats, fixed budgets"),
        "lensllm": ("tab:blue", "o", "lensllm, fixed budgets"),
        "adaptive": ("tab:red", "*", "adaptive"),
    }
    for j, ds in enumerate(datasets):
        for i, (metric, name) in enumerate((("rel_acc", "RelAcc %"), ("pearson", "PearCorr %"))):
            ax = axes[i][j]
            for method, (color, marker, label) in style.items():
                pts = sorted(
                    (r["cost_fraction"], 100 * r[metric])
                    for r in rows
                    if r["dataset"] == ds and r["method"] == method and r[metric] is not None
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
                    linestyle="-" if method != "adaptive" else "none",
                    markersize=10 if method == "adaptive" else 6,
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
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict] = []
    for p in args.tables:
        rows.extend(rows_for(Table.read(p), args.target))
    with (args.out / "pareto.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(write_markdown(rows, args.out / "pareto.md"))
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        conf = [
            r["rel_acc"]
            for r in rows
            if r["dataset"] == ds
            and r["method"] == "adaptive"
            and r["setting"].endswith(f"budget {AdaptiveConfig().max_cost_fraction:g}")
        ]
        print(
            f"{ds}: adaptive at the default budget, RelAcc mean over confidences "
            f"{', '.join(f'{c:g}' for c in CONFIDENCES)}: {100 * sum(conf) / len(conf):.1f}%"
        )
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
