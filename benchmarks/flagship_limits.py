"""What the flagship's missed targets would take, against null predictors as accurate as it.

    .venv/bin/python benchmarks/flagship_limits.py [--bench DIR] [--draws N] [--seed S]

Three targets of benchmarks/flagship_eval.py have stayed missed through every
mechanism tried (benchmarks/README.md): mean PearCorr >= ats + 5 and mean RelAcc
>= 97 on the LLM tables, and 90% coverage within 80-98% in every table. They are
properties of the errors as much as of a selection rule, so this script measures
what each would take (about 25 s on 2 cores):

- Ranking. In each LLM cell a predictor's log errors split into a part every model
  shares (it ranks nothing) and each model's deviation from it. A null predictor
  that is unbiased, with deviations independent of the truth and as large as the
  flagship's in that cell, has an expected RelAcc and PearCorr; the factor the
  deviations would have to shrink by for that RelAcc to reach 97 says whether the
  target asks for a better pick or a more accurate forecast. So does the factor
  on the flagship's own errors (their pattern kept) at which each target is met.
- Level convergence. Where the flagship errs on the LLM tables, it is mostly in
  how far the curves that are worse now still fall. The slope of its misses on
  the loss each curve starts from is measured at the target and in its own
  rehearsals on the visible points (the flagship cut at its visible end / 2 ...
  / 64 and asked for the visible end): a correction could only be learnt from the
  data in hand where the two agree.
- Per-table coverage. One model's curve is cut at every budget of its table, so
  its errors persist from cell to cell. The rank correlation of the errors
  between a table's cells (across models, so any shift shared by a whole cell
  leaves it unchanged) is measured for the flagship and for ats and subtuning; a
  null predictor whose 90% intervals are exactly calibrated, with errors
  independent across models but correlated across cells as measured, then misses
  the 80-98% band in some tables by chance alone: the expected count and the
  chance of none.

Deterministic: every null draw comes from one seeded generator. Exit status 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.stats import norm, spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from flagship_eval import LEARNER_BUDGETS, SHARED  # noqa: E402

from core.bench import DEFAULT_BUDGETS, DEFAULT_TARGET, TARGET_MAX, Table, run_bench  # noqa: E402
from core.errors import run_script  # noqa: E402
from core.science.curves import Curve  # noqa: E402
from core.science.flagship import LEVEL, predict_lensllm  # noqa: E402
from core.science.metrics import coverage  # noqa: E402
from core.science.selectors import Selection  # noqa: E402

RELACC_TARGET = 0.97
BAND = (0.80, 0.98)


@dataclass(frozen=True)
class Cell:
    """One (table, budget) cell of one method: per model, the true and predicted log
    loss and, for methods with intervals, the share of models whose interval held it."""

    budget: int
    target: int
    truth: np.ndarray
    predicted: np.ndarray
    covered: float | None


@cache
def cells(table: Table, method: str) -> tuple[Cell, ...]:
    """The method's predictions in every budget cell of the table, largest budget first:
    the cells ``lensllm-tui bench`` runs (flagship_eval's budgets and targets)."""
    learner = table.dataset not in ("flan", "gigaword")
    budgets, target = (
        (LEARNER_BUDGETS, TARGET_MAX) if learner else (DEFAULT_BUDGETS, DEFAULT_TARGET)
    )
    selections: list[Selection] = []
    run_bench([table], [method], budgets, target, on_record=lambda _, sel: selections.append(sel))
    return tuple(_cell(sel, table.curves, method) for sel in selections)


def _cell(sel: Selection, curves: Sequence[Curve], method: str) -> Cell:
    by_model = {p.model: p for p in sel.predictions}
    measured = [c for c in curves if sel.target in c.sizes]
    preds = [by_model[c.model] for c in measured]
    truth = np.array([c.loss_at(sel.target) for c in measured])
    # subtuning predicts its score, the last seen loss; the others say what they predict
    guess = [p.score if method == "subtuning" else p.predicted for p in preds]
    covered = None
    if sel.level is not None:
        covered = coverage([p.low for p in preds], [p.high for p in preds], list(truth))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.array([np.nan if g is None else g for g in guess], dtype=float))
        return Cell(sel.budget, sel.target, np.log(truth), logs, covered)


def deviations(cell: Cell) -> np.ndarray:
    """Each model's log error less the cell's mean log error (nan where unpredicted)."""
    e = cell.predicted - cell.truth
    return e - np.nanmean(e[np.isfinite(e)]) if np.isfinite(e).any() else e


def null_ranking(truth: np.ndarray, sd: float, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RelAcc and PearCorr of each draw of an unbiased predictor: log truth + sd x noise.

    ``noise`` is (draws, models) standard normal, shared across calls (common random
    numbers, so the expected RelAcc moves smoothly with ``sd``). The same definitions
    as core.science.metrics, vectorised over the draws.
    """
    y = np.exp(truth)
    guess = truth[None, :] + sd * noise
    chosen = y[np.argmin(guess, axis=1)]
    rel = (y.max() - chosen) / (y.max() - y.min())
    g = np.exp(guess)
    gc = g - g.mean(1, keepdims=True)
    yc = y - y.mean()
    pear = (gc @ yc) / np.sqrt((gc * gc).sum(1) * (yc @ yc))
    return rel, pear


def needed_factor(
    truths: Sequence[np.ndarray], sds: Sequence[float], noises: Sequence[np.ndarray]
) -> float:
    """The factor on every cell's deviation size at which the null's mean RelAcc reaches
    the target (bisection; 0 if even a perfect forecast would not)."""

    def mean_rel(f: float) -> float:
        return float(
            np.mean(
                [
                    null_ranking(t, f * s, n)[0].mean()
                    for t, s, n in zip(truths, sds, noises, strict=True)
                ]
            )
        )

    if mean_rel(0.0) < RELACC_TARGET:
        return 0.0
    lo, hi = 0.0, 4.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_rel(mid) >= RELACC_TARGET else (lo, mid)
    return lo


def scaled(cells_: Sequence[Cell], f: float) -> tuple[float, float]:
    """Mean RelAcc and PearCorr if every prediction's log error were ``f`` times its own."""
    rel, pear = [], []
    for c in cells_:
        guess = c.truth + f * (c.predicted - c.truth)
        ok = np.isfinite(guess)
        y, g = np.exp(c.truth[ok]), np.exp(guess[ok])
        rel.append((y.max() - y[np.argmin(g)]) / (y.max() - y.min()))
        pear.append(np.corrcoef(g, y)[0, 1] if np.ptp(g) > 0 else 1.0)
    return float(np.mean(rel)), float(np.mean(pear))


def ranking(llm: Sequence[Table], draws: int, rng: np.random.Generator) -> None:
    print("Ranking on the LLM tables: the flagship against an unbiased null predictor whose")
    print("per-model deviations are as large as the flagship's in each cell, independent of")
    print("the truth (ats's deviation size beside it).")
    print(
        f"{'cell':>16} {'dev sd':>7} {'RelAcc':>7} {'null':>6} {'PearCorr':>9} {'null':>6}"
        f" {'ats dev sd':>10}"
    )
    truths, sds, noises, rows, ours_all, ats_pear = [], [], [], [], [], []
    for table in llm:
        ours, ats = cells(table, "lensllm"), cells(table, "ats")
        ours_all += list(ours)
        for c, a in zip(ours, ats, strict=True):
            sd = float(np.nanstd(deviations(c), ddof=1))
            noise = rng.standard_normal((draws, c.truth.size))
            rel, pear = null_ranking(c.truth, sd, noise)
            actual_rel, actual_pear = scaled([c], 1.0)
            ats_pear.append(scaled([a], 1.0)[1])
            rows.append((actual_rel, rel.mean(), actual_pear, pear.mean()))
            truths.append(c.truth)
            sds.append(sd)
            noises.append(noise)
            print(
                f"{table.dataset:>9} {c.budget:>6} {sd:7.3f} {100 * actual_rel:7.1f}"
                f" {100 * rel.mean():6.1f} {100 * actual_pear:9.1f} {100 * pear.mean():6.1f}"
                f" {float(np.nanstd(deviations(a), ddof=1)):10.3f}"
            )
    m = 100 * np.array(rows).mean(0)
    print(f"{'mean':>16} {'':7} {m[0]:7.1f} {m[1]:6.1f} {m[2]:9.1f} {m[3]:6.1f}")
    f = needed_factor(truths, sds, noises)
    print(
        f"The null reaches mean RelAcc {100 * RELACC_TARGET:.0f} only with every deviation"
        f" x{f:.2f} of the flagship's (median dev sd {np.median(sds):.3f} ->"
        f" {f * np.median(sds):.3f})."
    )
    pear_goal = float(np.mean(ats_pear)) + 0.05
    grid = np.round(np.arange(1.0, -0.001, -0.05), 2)
    fits = {g: scaled(ours_all, g) for g in grid}
    first = {
        "RelAcc": next((g for g in grid if fits[g][0] >= RELACC_TARGET), None),
        "PearCorr": next((g for g in grid if fits[g][1] >= pear_goal), None),
    }
    print(
        "The flagship's own errors, each shrunk by the same factor (its pattern kept):"
        f" mean RelAcc {100 * RELACC_TARGET:.0f} first at x{first['RelAcc']},"
        f" mean PearCorr {100 * pear_goal:.1f} (ats + 5) first at x{first['PearCorr']}"
        " (factors 1, 0.95, ...)."
    )


def lag_correlations(per_table: Sequence[Sequence[Cell]], lags: int) -> np.ndarray:
    """Mean Spearman correlation, across models, of the log-error deviations of cells
    ``lag`` budgets apart (one factor of 2 per lag), over every table that has them."""
    out = np.full(lags + 1, 1.0)
    for lag in range(1, lags + 1):
        rs = []
        for cs in per_table:
            for a in range(len(cs) - lag):
                x, y = deviations(cs[a]), deviations(cs[a + lag])
                ok = np.isfinite(x) & np.isfinite(y)
                if ok.sum() > 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                    rs.append(spearmanr(x[ok], y[ok])[0])
        out[lag] = float(np.nanmean(rs)) if rs else 0.0
    return out


def null_outside(
    shapes: Sequence[tuple[int, int]], spearman: np.ndarray, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Tables outside the band in each draw of an exactly calibrated ``LEVEL`` predictor.

    ``shapes`` is (models, cells) per table. A model's standardized errors across its
    table's cells are Gaussian with the Toeplitz correlation of ``spearman`` (as
    Pearson, 2 sin(pi rho / 6)); models are independent, so nothing is shared by a
    whole table.
    """
    r = 2 * np.sin(np.pi * np.clip(spearman, -1, 1) / 6)
    zc = norm.ppf(0.5 + LEVEL / 2)
    outside = np.zeros(draws, dtype=int)
    for models, ncell in shapes:
        idx = np.abs(np.subtract.outer(np.arange(ncell), np.arange(ncell)))
        corr = r[np.minimum(idx, r.size - 1)]
        w, v = np.linalg.eigh(corr)
        root = v * np.sqrt(np.clip(w, 0, None))
        z = rng.standard_normal((draws, models, ncell)) @ root.T
        cov = (np.abs(z) <= zc).mean(axis=(1, 2))
        outside += (cov < BAND[0]) | (cov > BAND[1])
    return outside


def per_table(tables: Sequence[Table], draws: int, rng: np.random.Generator) -> None:
    print("\nPer-table coverage of the 90% intervals, every table")
    ours = [cells(t, "lensllm") for t in tables]
    shown = [np.mean([c.covered for c in cs]) for cs in ours]
    measured = sum(not BAND[0] <= v <= BAND[1] for v in shown)
    lags = max(len(cs) for cs in ours) - 1
    corr = {"lensllm": lag_correlations(ours, lags)}
    for method in ("ats", "subtuning"):
        corr[method] = lag_correlations([cells(t, method) for t in tables], lags)
    print("rank correlation of one model's log-error deviations, cells k budgets apart:")
    for method, r in corr.items():
        print(f"  {method:>9}: " + ", ".join(f"k={k} {r[k]:.2f}" for k in range(1, lags + 1)))
    shapes = [(cs[0].truth.size, len(cs)) for cs in ours]
    print(
        f"tables outside {100 * BAND[0]:.0f}-{100 * BAND[1]:.0f}%, of {len(tables)}:"
        f" flagship, measured: {measured}"
    )
    for label, r in (
        ("independent cells", np.array([1.0, 0.0])),
        ("ats's correlation", corr["ats"]),
        ("the flagship's correlation", corr["lensllm"]),
    ):
        out = null_outside(shapes, r, draws, rng)
        print(
            f"  exactly calibrated null, {label}: mean {out.mean():.1f}, 5-95%"
            f" {np.percentile(out, 5):.0f}-{np.percentile(out, 95):.0f},"
            f" P(none) {np.mean(out == 0):.3f}"
        )


def level_slope(miss: np.ndarray, level: np.ndarray, horizon: np.ndarray) -> float:
    """Least-squares slope of the misses (truth less prediction, in log loss) on the
    levels x horizon: how much less than forecast a curve that starts higher falls, per
    unit log horizon (< 0: it falls more). Each cut's rows are centred by the caller."""
    x = level * horizon
    return float(x @ miss / (x @ x)) if x @ x > 0 else 0.0


def rehearsed_levels(curves: Sequence[Curve], budget: int) -> tuple[np.ndarray, ...]:
    """The flagship itself cut at its visible end / k (k = 2 ... 64, every cut that leaves
    three curves two points) and asked for the visible end: per curve and cut, the miss,
    the level at the cut and the log horizon, each centred within its cut."""
    miss, level, horizon = [], [], []
    seen = [c.up_to(budget) for c in curves]
    end = max(s for c in seen for s in c.sizes)
    for k in (2, 4, 8, 16, 32, 64):
        cut = end // k
        ok = [c for c in seen if end in c.sizes and sum(0 < s <= cut for s in c.sizes) >= 2]
        if len(ok) < 3:
            continue
        preds = predict_lensllm([c.up_to(cut) for c in ok], cut, end)
        m = np.log([c.loss_at(end) for c in ok]) - np.log([p.score for p in preds])
        lv = np.log([c.up_to(cut).losses[-1] for c in ok])
        h = np.log(end) - np.log([max(c.up_to(cut).sizes) for c in ok])
        keep = np.isfinite(m) & np.isfinite(lv)  # a fallback ranked last has no forecast
        m, lv, h = m[keep], lv[keep], h[keep]
        if m.size < 3:
            continue
        miss.append(m - m.mean())
        level.append(lv - lv.mean())
        horizon.append(h)
    return tuple(np.concatenate(v) if v else np.empty(0) for v in (miss, level, horizon))


def level_slopes(table: Table) -> list[tuple[int, float, float]]:
    """Per budget cell: the slope of the flagship's misses at the target and in its
    rehearsals (``level_slope``)."""
    out = []
    for c in cells(table, "lensllm"):
        curves = [cv for cv in table.curves if c.target in cv.sizes]
        last = np.log([cv.up_to(c.budget).losses[-1] for cv in curves])
        h = np.log(c.target) - np.log([max(cv.up_to(c.budget).sizes) for cv in curves])
        miss = c.truth - c.predicted
        ok = np.isfinite(miss) & np.isfinite(last)
        miss, last, h = miss[ok], last[ok], h[ok]
        at = level_slope(miss - miss.mean(), last - last.mean(), h)
        out.append((c.budget, at, level_slope(*rehearsed_levels(curves, c.budget))))
    return out


def levels(llm: Sequence[Table], learners: Sequence[Table]) -> None:
    print("\nDo the curves that are worse now fall further than forecast? Slope of the")
    print("flagship's misses on the loss it starts from, per unit log horizon, at the target")
    print("and in its own rehearsals on the visible points (< 0: the worse curves fall more):")
    slopes = {t.dataset: level_slopes(t) for t in (*llm, *learners)}
    for table in llm:
        line = [f"{b} {at:+.3f}/{seen:+.3f}" for b, at, seen in slopes[table.dataset]]
        print(f"  {table.dataset:>9} (target/rehearsals): " + ", ".join(line))
    for name, tables in (("LLM tables", llm), ("learner tables", learners)):
        pairs = np.array([(at, seen) for t in tables for _, at, seen in slopes[t.dataset]])
        if len(pairs) < 3:  # a bench folder without learner tables, say
            continue
        same = np.mean(np.sign(pairs[:, 0]) == np.sign(pairs[:, 1]))
        r = np.corrcoef(pairs.T)[0, 1]
        print(
            f"  {name}: same sign in {100 * same:.0f}% of {len(pairs)} cells,"
            f" correlation of the two slopes {r:+.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=SHARED, help="the shared benchmarks folder")
    ap.add_argument("--draws", type=int, default=4000, help="null draws per figure")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    llm = [Table.read(args.bench / f"{n}.csv") for n in ("flan", "gigaword")]
    learners = [Table.read(p) for p in sorted((args.bench / "learners").glob("*.csv"))]
    ranking(llm, args.draws, rng)
    levels(llm, learners)
    per_table(llm + learners, args.draws, rng)
    return 0


if __name__ == "__main__":
    run_script(main)
