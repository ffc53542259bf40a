"""Every figure of the flagship's targets, before and after, on all shared tables, in one run.

    .venv/bin/python benchmarks/flagship_eval.py [--before REV] [--bench DIR]

"Before" is the flagship as it was at git revision ``--before`` (loaded from git,
run through the same harness in the same process); "after" is the working tree's.
Every figure comes from ``core.bench.run_bench``, exactly what ``lensllm-tui bench``
runs:

- the LLM tables (flan, gigaword; target 1,638,400, budgets 1/8 .. 1/512: 14
  cells): mean PearCorr against ats + 5, the worst cell against ats - 2, mean
  RelAcc against 97, median rmse_log against 0.6 x ats;
- the learner tables (learners/*.csv; ``--target max --budgets 8,16,32,64``):
  mean PearCorr and RelAcc against the better of ats and subtuning, minus 1, on
  all tables and on each half (tables in file-name order, even and odd
  positions), so a figure that holds on one half only shows;
- calibration of the 90% intervals: coverage pooled over every model of every
  cell of every table (85-95%), and per table (80-98%); the interval score
  (Winkler, lower is better) and the median interval ratio, after against before;
- speed: the full default bench (every default method) over the LLM tables
  (< 30 s) and over the learner tables (< 120 s), wall seconds;
- the adaptive policy's final ranking of all candidates on the LLM tables:
  PearCorr with each model's frozen last prediction and with the flagship
  refitted on everything the policy measured.

Exit status 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.bench import DEFAULT_METHODS, TARGET_MAX, Table, run_bench  # noqa: E402
from core.errors import CurveTableError, run_script  # noqa: E402
from core.science import selectors  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"
LEARNER_BUDGETS = tuple(Fraction(1, k) for k in (8, 16, 32, 64))
BEFORE_REV = "24c515c"
"""The last main commit before the backtested flagship."""


def load_before(rev: str) -> Callable[..., Any]:
    """``predict_lensllm`` as it was at ``rev`` (its source from git, run in this process)."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:core/science/flagship.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mod = types.ModuleType("flagship_before")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(src, f"{rev}:core/science/flagship.py", "exec"), mod.__dict__)
    return mod.predict_lensllm


@contextmanager
def flagship(predict: Callable[..., Any] | None) -> Iterator[None]:
    """Run the bench's ``lensllm`` with ``predict`` (None: the working tree's) for a while."""
    saved = selectors.SELECTORS["lensllm"]
    if predict is not None:
        selectors.SELECTORS["lensllm"] = lambda c, b, t, s: list(predict(c, b, t, seed=s))
    try:
        yield
    finally:
        selectors.SELECTORS["lensllm"] = saved


def of(recs: list[dict[str, Any]], method: str, key: str) -> np.ndarray:
    return np.array(
        [np.nan if r[key] is None else r[key] for r in recs if r["method"] == method], dtype=float
    )


def pooled_coverage(recs: list[dict[str, Any]], tables: Sequence[Table]) -> tuple[float, dict]:
    """Coverage over every model of every cell (cells weighted by their models), and per table."""
    n = {t.dataset: sum(1 for c in t.curves if r_target(recs, t) in c.sizes) for t in tables}
    hit = tot = 0.0
    per: dict[str, list[float]] = {}
    for r in recs:
        if r["method"] != "lensllm" or r["coverage"] is None:
            continue
        hit += r["coverage"] * n[r["dataset"]]
        tot += n[r["dataset"]]
        per.setdefault(r["dataset"], []).append(r["coverage"])
    return hit / tot, {k: float(np.mean(v)) for k, v in per.items()}


def r_target(recs: list[dict[str, Any]], table: Table) -> int:
    return next(r["target"] for r in recs if r["dataset"] == table.dataset)


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool | None]] = []

    def add(self, target: str, before: str, after: str, ok: bool | None) -> None:
        self.rows.append((target, before, after, ok))

    def print(self) -> bool:
        w = max(len(r[0]) for r in self.rows)
        print(f"\n{'target':{w}}  {'before':>16}  {'after':>16}  result")
        for t, b, a, ok in self.rows:
            mark = "" if ok is None else ("pass" if ok else "FAIL")
            print(f"{t:{w}}  {b:>16}  {a:>16}  {mark}")
        return all(ok is not False for *_, ok in self.rows)


def llm_figures(
    rep: Report, llm: list[Table], before: Callable[..., Any]
) -> tuple[list[dict], list[dict]]:
    with flagship(before):
        old = run_bench(llm, ["lensllm"])
    new = run_bench(llm, ["lensllm", "ats"])
    ats_p, ats_r, ats_m = (of(new, "ats", k) for k in ("pearson", "rel_acc", "rmse_log"))
    for label, recs in (("before", old), ("after", new)):
        p = of(recs, "lensllm", "pearson")
        print(f"LLM PearCorr per cell {label}: {np.round(100 * p, 1).tolist()}")
    print(f"LLM PearCorr per cell ats:    {np.round(100 * ats_p, 1).tolist()}")
    b, a = (of(x, "lensllm", "pearson") for x in (old, new))
    goal = 100 * ats_p.mean() + 5
    rep.add(
        f"LLM mean PearCorr >= ats+5 = {goal:.1f}",
        f"{100 * b.mean():.1f}",
        f"{100 * a.mean():.1f}",
        100 * a.mean() >= goal,
    )
    wb, wa = 100 * np.min(b - ats_p), 100 * np.min(a - ats_p)
    rep.add("LLM worst cell - ats >= -2", f"{wb:+.1f}", f"{wa:+.1f}", wa >= -2)
    rb, ra = (100 * np.mean(of(x, "lensllm", "rel_acc")) for x in (old, new))
    rep.add(
        f"LLM mean RelAcc >= 97 (ats {100 * ats_r.mean():.1f})", f"{rb:.1f}", f"{ra:.1f}", ra >= 97
    )
    mb, ma = (float(np.median(of(x, "lensllm", "rmse_log"))) for x in (old, new))
    goal_m = 0.6 * float(np.median(ats_m))
    rep.add(
        f"LLM median rmse_log <= 0.6 ats = {goal_m:.4f}", f"{mb:.4f}", f"{ma:.4f}", ma <= goal_m
    )
    return old, [r for r in new if r["method"] == "lensllm"]


def learner_figures(
    rep: Report, lt: list[Table], before: Callable[..., Any]
) -> tuple[list[dict], list[dict]]:
    with flagship(before):
        old = run_bench(lt, ["lensllm"], LEARNER_BUDGETS, TARGET_MAX)
    new = run_bench(lt, ["lensllm", "ats", "subtuning"], LEARNER_BUDGETS, TARGET_MAX)
    halves = {
        "all": {t.dataset for t in lt},
        "even half": {t.dataset for t in lt[0::2]},
        "odd half": {t.dataset for t in lt[1::2]},
    }
    for name, keep in halves.items():
        o = [r for r in old if r["dataset"] in keep]
        n = [r for r in new if r["dataset"] in keep]
        for key, label in (("pearson", "PearCorr"), ("rel_acc", "RelAcc")):
            ats, sub = (100 * np.nanmean(of(n, m, key)) for m in ("ats", "subtuning"))
            goal = max(ats, sub) - 1
            b, a = (100 * np.nanmean(of(x, "lensllm", key)) for x in (o, n))
            rep.add(
                f"learners {name} ({len(keep)}) {label} >= max(ats {ats:.1f}, sub {sub:.1f}) - 1",
                f"{b:.1f}",
                f"{a:.1f}",
                a >= goal if name == "all" else None,
            )
    return old, [r for r in new if r["method"] == "lensllm"]


def calibration(rep: Report, tables: list[Table], old: list[dict], new: list[dict]) -> None:
    cb, per_b = pooled_coverage(old, tables)
    ca, per_a = pooled_coverage(new, tables)
    rep.add(
        "coverage pooled over all tables in [85, 95]%",
        f"{100 * cb:.1f}",
        f"{100 * ca:.1f}",
        85 <= 100 * ca <= 95,
    )
    out_b = sum(not 0.80 <= v <= 0.98 for v in per_b.values())
    out_a = sum(not 0.80 <= v <= 0.98 for v in per_a.values())
    rep.add(
        f"tables with coverage outside [80, 98]% (of {len(per_a)})",
        f"{out_b}",
        f"{out_a}",
        out_a == 0,
    )
    lo_a, hi_a = min(per_a.values()), max(per_a.values())
    lo_b, hi_b = min(per_b.values()), max(per_b.values())
    rep.add(
        "per-table coverage range %",
        f"{100 * lo_b:.0f}-{100 * hi_b:.0f}",
        f"{100 * lo_a:.0f}-{100 * hi_a:.0f}",
        None,
    )
    for name in ("flan", "gigaword"):
        rep.add(
            f"  coverage {name} %",
            f"{100 * per_b[name]:.1f}",
            f"{100 * per_a[name]:.1f}",
            0.80 <= per_a[name] <= 0.98,
        )
    ratio = []
    for t in tables:
        sb = np.nanmean(
            of([r for r in old if r["dataset"] == t.dataset], "lensllm", "interval_score")
        )
        sa = np.nanmean(
            of([r for r in new if r["dataset"] == t.dataset], "lensllm", "interval_score")
        )
        ratio.append(sa / sb)
    for name, sel in (("LLM", lambda d: "lcdb" not in d), ("learners", lambda d: "lcdb" in d)):
        sb = np.nanmean(of([r for r in old if sel(r["dataset"])], "lensllm", "interval_score"))
        sa = np.nanmean(of([r for r in new if sel(r["dataset"])], "lensllm", "interval_score"))
        rep.add(f"mean interval score {name} (lower is better)", f"{sb:.4f}", f"{sa:.4f}", None)
        ib = np.nanmedian(of([r for r in old if sel(r["dataset"])], "lensllm", "interval_ratio"))
        ia = np.nanmedian(of([r for r in new if sel(r["dataset"])], "lensllm", "interval_ratio"))
        rep.add(f"median interval high/low {name}", f"{ib:.3f}", f"{ia:.3f}", None)
    rep.add("interval score after/before, median over tables", "1", f"{np.median(ratio):.3f}", None)


def speed(rep: Report, llm: list[Table], lt: list[Table], before: Callable[..., Any]) -> None:
    for name, tabs, kw, limit in (
        ("LLM", llm, {}, 30.0),
        ("learners", lt, {"budgets": LEARNER_BUDGETS, "target": TARGET_MAX}, 120.0),
    ):
        walls = []
        for pred in (before, None):
            with flagship(pred):
                t0 = time.perf_counter()
                run_bench(tabs, DEFAULT_METHODS, **kw)
                walls.append(time.perf_counter() - t0)
        rep.add(
            f"full default bench {name}, wall s < {limit:.0f}",
            f"{walls[0]:.1f}",
            f"{walls[1]:.1f}",
            walls[1] < limit,
        )


def adaptive(rep: Report, llm: list[Table]) -> None:
    from core.bench import run_adaptive, score

    for t in llm:
        target = 1_638_400
        sel, _ = run_adaptive(t, target, refit=False)
        frozen = score(sel, t.curves)["pearson"]
        sel, _ = run_adaptive(t, target)
        refit = score(sel, t.curves)["pearson"]
        rep.add(
            f"adaptive final ranking PearCorr {t.dataset} (frozen -> refit)",
            f"{100 * frozen:.1f}",
            f"{100 * refit:.1f}",
            None,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE_REV, help="git revision of the 'before' flagship")
    ap.add_argument("--bench", type=Path, default=SHARED, help="the shared benchmarks folder")
    args = ap.parse_args()
    before = load_before(args.before)
    llm = [Table.read(args.bench / f"{n}.csv") for n in ("flan", "gigaword")]
    lt = [Table.read(p) for p in sorted((args.bench / "learners").glob("*.csv"))]
    if not lt:  # every learner target would read nan and fail
        raise CurveTableError(f"{args.bench / 'learners'}: no learner tables (*.csv) there")
    rep = Report()
    llm_old, llm_new = llm_figures(rep, llm, before)
    lt_old, lt_new = learner_figures(rep, lt, before)
    calibration(rep, llm + lt, llm_old + lt_old, llm_new + lt_new)
    speed(rep, llm, lt, before)
    adaptive(rep, llm)
    return 0 if rep.print() else 1


if __name__ == "__main__":
    run_script(main)
