"""Replay evaluation: run selectors on measured curve tables and score them.

For each table, method and budget, ``select()`` sees only the points up to the
budget; the table's own column at the target is the truth the choice is
scored against (Lin et al.'s protocol, ../shared/benchmarks/README.md).
Records carry exactly ``RECORD_KEYS``; pearson, rel_acc and coverage are fractions.

Tables of different shapes run in one call: the target may be each table's
largest size (``TARGET_MAX``) and a budget a fraction of the target
(``fractions.Fraction(1, 8)``), resolved per table by ``resolve_budget``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.errors import BenchError
from core.policy.adaptive import AdaptiveConfig
from core.policy.replay import fixed_budget_cost_fraction, replay, selector_predictor, to_selection
from core.science.curves import Curve, read_wide_csv
from core.science.metrics import (
    coverage,
    interval_ratio,
    interval_score,
    pearson,
    rel_acc,
    rmse_log,
)
from core.science.prediction import Selection
from core.science.selectors import METHODS, select

DEFAULT_TARGET = 1_638_400
Budget = int | Fraction
"""A sample count, or a fraction of the table's target (rounded down to samples)."""
DEFAULT_BUDGETS: tuple[Budget, ...] = (204800, 102400, 51200, 25600, 12800, 6400, 3200)
DEFAULT_METHODS: tuple[str, ...] = METHODS
ADAPTIVE = "adaptive"
"""The budget-aware policy (core/adaptive.py): one record per table, not per budget;
its ``budget`` is the largest size it fine-tuned on."""
BENCH_METHODS: tuple[str, ...] = (*METHODS, ADAPTIVE)
NO_FINE_TUNING = ("zeroshot", "modelsize")
"""Selectors that read no fine-tuned point: their cost_fraction is 0."""
RECORD_KEYS: tuple[str, ...] = (
    "dataset",
    "method",
    "budget",
    "target",
    "ratio",
    "pearson",
    "rel_acc",
    "rmse_log",
    "coverage",
    "interval_ratio",
    "interval_score",
    "seconds",
    "cost_fraction",
)
TARGET_MAX = None
"""``target`` meaning each table's largest size column."""


@dataclass(frozen=True)
class Table:
    """One curve table to replay: its name (file stem) and its curves."""

    dataset: str
    curves: tuple[Curve, ...]

    @classmethod
    def read(cls, path: str | Path, name: str | None = None) -> Table:
        return cls(name or Path(path).stem, tuple(read_wide_csv(path)))

    @property
    def largest_size(self) -> int:
        return max((s for c in self.curves for s in c.sizes), default=0)

    @property
    def smallest_fine_tuned(self) -> int | None:
        return min((s for c in self.curves for s in c.sizes if s > 0), default=None)

    def target(self, target: int | None) -> int:
        """The target size for this table: ``target`` itself, or its largest size for None."""
        return self.largest_size if target is TARGET_MAX else int(target)


def read_tables(paths: Sequence[str | Path]) -> list[Table]:
    """Read tables named by file stem, or by as much of their path as tells them apart.

    Records are grouped by table name, so two ``flan.csv`` from different folders
    must not share one: they become ``a/flan`` and ``b/flan``. The same file
    given twice is refused (its records would count twice).
    """
    resolved = [Path(p).resolve() for p in paths]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise BenchError(f"{paths[i]}: the same table is given twice")
    names = [table_name(r, resolved) for r in resolved]
    return [Table.read(p, n) for p, n in zip(paths, names, strict=True)]


def table_name(path: Path, others: Sequence[Path]) -> str:
    """``path``'s stem, led by the fewest parent folders that no other path shares."""
    parts = (*path.parent.parts, path.stem)
    for k in range(1, len(parts) + 1):
        tail = parts[-k:]
        if all((*o.parent.parts, o.stem)[-k:] != tail for o in others if o != path):
            return "/".join(tail)
    return str(path)


def resolve_budget(budget: Budget, target: int) -> int:
    """Samples a budget allows at this target: a fraction of it rounded down, or the count."""
    if isinstance(budget, Fraction):
        return math.floor(target * budget)
    return int(budget)


def budget_label(budget: Budget, target: int) -> str:
    """Column label: the fraction as written ('1/8'), else the sample count's ratio."""
    if isinstance(budget, Fraction):
        return str(budget)
    return ratio_label(int(budget), target)


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def score(selection: Selection, curves: Sequence[Curve]) -> dict[str, float | None]:
    """PearCorr, RelAcc, rmse_log and the interval metrics of a selection against the truth.

    The interval metrics (coverage, interval_ratio, interval_score at the
    selection's level; core.science.metrics) are None for a method that gives no
    intervals. Models without a measured target loss are left out of every metric. A
    selection in which no model was scored by the method itself (every
    prediction a fallback) gets None metrics: its ranking measures the
    fallback, not the method.
    """
    truth = {c.model: c.loss_at(selection.target) for c in curves if selection.target in c.sizes}
    preds = [p for p in selection.predictions if p.model in truth]
    if not preds or not any(p.ok for p in selection.predictions):
        return dict.fromkeys(SCORE_KEYS)
    t = [truth[p.model] for p in preds]
    scores = [p.score for p in preds]
    out: dict[str, float | None] = {
        "pearson": _none_if_nan(pearson(scores, t)),
        "rel_acc": _none_if_nan(rel_acc(scores, t)),
        "rmse_log": rmse_log([p.predicted for p in preds], t),
        "coverage": None,
        "interval_ratio": None,
        "interval_score": None,
    }
    if selection.level is not None:
        low, high = [p.low for p in preds], [p.high for p in preds]
        out["coverage"] = coverage(low, high, t)
        out["interval_ratio"] = interval_ratio(low, high)
        out["interval_score"] = interval_score(low, high, t, selection.level)
    return out


SCORE_KEYS = ("pearson", "rel_acc", "rmse_log", "coverage", "interval_ratio", "interval_score")
"""What ``score`` measures; the interval three are None for a method without intervals."""


def check_plan(
    tables: Sequence[Table],
    methods: Sequence[str],
    budgets: Sequence[Budget],
    target: int | None,
) -> None:
    """Reject a benchmark plan that cannot give meaningful numbers (BenchError).

    Budgets are checked per table at that table's target: each must be positive, below
    the target, and reach at least one fine-tuned size (a budget that sees only
    zero-shot losses usually means a fraction was meant; the message says how to write one).
    """
    unknown = [m for m in methods if m not in BENCH_METHODS]
    if unknown:
        raise BenchError(
            f"unknown method {unknown[0]!r} (expected one of: {', '.join(BENCH_METHODS)})"
        )
    if not methods:
        raise BenchError("no methods to run")
    if all(m == ADAPTIVE for m in methods):
        budgets = ()  # the policy picks its own sizes: the fixed budgets do not apply
    elif not budgets:
        raise BenchError("no budgets to run")
    for b in budgets:
        if b <= 0:
            raise BenchError(f"budget must be positive, got {b}")
    for t in tables:
        tgt = t.target(target)
        have = sum(1 for c in t.curves if tgt in c.sizes)
        if have < 2:
            raise BenchError(
                f"{t.dataset}: {have} model(s) have a loss at the target {tgt}; need at least 2"
            )
        for b in budgets:
            samples = resolve_budget(b, tgt)
            shown = f"{b} of {tgt} = {samples}" if isinstance(b, Fraction) else str(b)
            if tgt <= samples:
                raise BenchError(f"target {tgt} must be above every budget (got budget {shown})")
            first = t.smallest_fine_tuned
            if first is None or samples < first:
                hint = (
                    "" if isinstance(b, Fraction) else f"; for a fraction of the target write 1/{b}"
                )
                raise BenchError(
                    f"{t.dataset}: budget {shown} is below its smallest fine-tuned size "
                    f"{first}{hint}"
                )


def run_bench(
    tables: Sequence[Table],
    methods: Sequence[str] = DEFAULT_METHODS,
    budgets: Sequence[Budget] = DEFAULT_BUDGETS,
    target: int | None = DEFAULT_TARGET,
    *,
    seed: int = 0,
    on_record: Callable[[dict[str, Any], Selection], None] | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> list[dict[str, Any]]:
    """Replay every (table, method, budget) cell; one record per cell, in that order.

    ``target`` is a size or ``TARGET_MAX`` (each table's largest size); a budget is a
    sample count or a ``Fraction`` of the table's target. ``adaptive`` runs once per
    table (it chooses its own sizes), with ``adaptive`` as its thresholds (None: the
    defaults). Every record carries ``cost_fraction`` (cost / full fine-tuning of
    every candidate at the target).

    ``on_record`` is called after each cell (progress display, logging).
    """
    check_plan(tables, methods, budgets, target)
    records: list[dict[str, Any]] = []
    for table in tables:
        tgt = table.target(target)
        for method in methods:
            for sel, cost in _cells(table, method, budgets, tgt, seed, adaptive):
                rec: dict[str, Any] = {
                    "dataset": table.dataset,
                    "method": method,
                    "budget": sel.budget,
                    "target": tgt,
                    "ratio": sel.budget / tgt,
                    **score(sel, table.curves),
                    "seconds": sel.seconds,
                    "cost_fraction": cost,
                }
                rec = {k: rec[k] for k in RECORD_KEYS}
                records.append(rec)
                if on_record is not None:
                    on_record(rec, sel)
    return records


def _cells(
    table: Table,
    method: str,
    budgets: Sequence[Budget],
    target: int,
    seed: int,
    adaptive: AdaptiveConfig | None,
) -> Iterator[tuple[Selection, float | None]]:
    """Each cell's selection and cost fraction, computed as it is asked for."""
    if method == ADAPTIVE:
        yield run_adaptive(table, target, seed=seed, config=adaptive)
        return
    for b in budgets:
        budget = resolve_budget(b, target)
        yield (
            select(method, table.curves, budget, target, seed=seed),
            fixed_cost_fraction(table.curves, method, budget, target),
        )


def fixed_cost_fraction(
    curves: Sequence[Curve], method: str, budget: int, target: int
) -> float | None:
    """Cost of a fixed-budget selector over full fine-tuning: every column up to the budget.

    Selectors that read no fine-tuned point cost 0; a table without parameter
    counts (no ``size`` column) has no cost to charge: None.
    """
    if method in NO_FINE_TUNING:
        return 0.0
    if any(c.params is None or not c.params > 0 for c in curves):
        return None
    return fixed_budget_cost_fraction(curves, budget, target)


def run_adaptive(
    table: Table,
    target: int,
    *,
    seed: int = 0,
    config: AdaptiveConfig | None = None,
    refit: bool = True,
) -> tuple[Selection, float]:
    """Replay the adaptive policy (flagship predictor) on a table: its selection and cost_fraction.

    The flagship is called per model during the run (see
    ``core.policy.replay.selector_predictor``); with ``refit`` every model's final
    prediction is the flagship's pooled over all candidates on everything the policy
    measured, so the ranking of all candidates (PearCorr) is scored on fresh
    predictions, not on the estimates eliminated models were dropped on.

    Only the models with a loss at the target take part (the others cannot be scored);
    the policy reads the table through a guard that refuses the target column.
    """
    curves = [c for c in table.curves if target in c.sizes]
    t0 = time.perf_counter()
    final = selector_predictor("lensllm", target, seed=seed, pooled=True) if refit else None
    res = replay(
        curves, target, selector_predictor("lensllm", target, seed=seed), config, final=final
    )
    sel = to_selection(res, target, time.perf_counter() - t0)
    return sel, res.cost_fraction


def ratio_label(budget: int, target: int) -> str:
    """'1/8' for a budget that divides the target, else the ratio to 3 digits."""
    if budget > 0 and target % budget == 0:
        return f"1/{target // budget}"
    return f"{budget / target:.3g}"
