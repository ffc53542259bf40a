"""Replay evaluation: run selectors on measured curve tables and score them.

For each table, method and budget, ``select()`` sees only the points up to the
budget; the table's own column at the target is the truth the choice is
scored against (Lin et al.'s protocol, ../shared/benchmarks/README.md).
Records carry exactly ``RECORD_KEYS``; pearson and rel_acc are fractions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BenchError
from core.policy.adaptive import AdaptiveConfig
from core.policy.replay import fixed_budget_cost_fraction, replay, selector_predictor, to_selection
from core.science.curves import Curve, read_wide_csv
from core.science.metrics import pearson, rel_acc, rmse_log
from core.science.prediction import Selection
from core.science.selectors import METHODS, select

DEFAULT_TARGET = 1_638_400
DEFAULT_BUDGETS: tuple[int, ...] = (204800, 102400, 51200, 25600, 12800, 6400, 3200)
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
    "seconds",
    "cost_fraction",
)


@dataclass(frozen=True)
class Table:
    """One curve table to replay: its name (file stem) and its curves."""

    dataset: str
    curves: tuple[Curve, ...]

    @classmethod
    def read(cls, path: str | Path, name: str | None = None) -> Table:
        return cls(name or Path(path).stem, tuple(read_wide_csv(path)))


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


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def score(selection: Selection, curves: Sequence[Curve]) -> dict[str, float | None]:
    """PearCorr, RelAcc and rmse_log of a selection against the curves' target losses.

    Models without a measured target loss are left out of every metric. A
    selection in which no model was scored by the method itself (every
    prediction a fallback) gets None metrics: its ranking measures the
    fallback, not the method.
    """
    truth = {c.model: c.loss_at(selection.target) for c in curves if selection.target in c.sizes}
    preds = [p for p in selection.predictions if p.model in truth]
    if not preds or not any(p.ok for p in selection.predictions):
        return {"pearson": None, "rel_acc": None, "rmse_log": None}
    t = [truth[p.model] for p in preds]
    scores = [p.score for p in preds]
    return {
        "pearson": _none_if_nan(pearson(scores, t)),
        "rel_acc": _none_if_nan(rel_acc(scores, t)),
        "rmse_log": rmse_log([p.predicted for p in preds], t),
    }


def check_plan(
    tables: Sequence[Table], methods: Sequence[str], budgets: Sequence[int], target: int
) -> None:
    """Reject a benchmark plan that cannot give meaningful numbers (BenchError)."""
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
        if target <= b:
            raise BenchError(f"target {target} must be above every budget (got budget {b})")
    for t in tables:
        have = sum(1 for c in t.curves if target in c.sizes)
        if have < 2:
            raise BenchError(
                f"{t.dataset}: {have} model(s) have a loss at the target {target}; need at least 2"
            )


def run_bench(
    tables: Sequence[Table],
    methods: Sequence[str] = DEFAULT_METHODS,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    target: int = DEFAULT_TARGET,
    *,
    seed: int = 0,
    on_record: Callable[[dict[str, Any], Selection], None] | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> list[dict[str, Any]]:
    """Replay every (table, method, budget) cell; one record per cell, in that order.

    ``adaptive`` runs once per table (it chooses its own sizes), with ``adaptive``
    as its thresholds (None: the defaults). Every record carries ``cost_fraction``
    (cost / full fine-tuning of every candidate at the target).

    ``on_record`` is called after each cell (progress display, logging).
    """
    check_plan(tables, methods, budgets, target)
    records: list[dict[str, Any]] = []
    for table in tables:
        for method in methods:
            if method == ADAPTIVE:
                sel, cost = run_adaptive(table, target, seed=seed, config=adaptive)
                cells = [(sel, cost)]
            else:
                cells = (
                    (
                        select(method, table.curves, budget, target, seed=seed),
                        fixed_cost_fraction(table.curves, method, budget, target),
                    )
                    for budget in budgets
                )
            for sel, cost in cells:
                rec: dict[str, Any] = {
                    "dataset": table.dataset,
                    "method": method,
                    "budget": sel.budget,
                    "target": target,
                    "ratio": sel.budget / target,
                    **score(sel, table.curves),
                    "seconds": sel.seconds,
                    "cost_fraction": cost,
                }
                rec = {k: rec[k] for k in RECORD_KEYS}
                records.append(rec)
                if on_record is not None:
                    on_record(rec, sel)
    return records


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
    table: Table, target: int, *, seed: int = 0, config: AdaptiveConfig | None = None
) -> tuple[Selection, float]:
    """Replay the adaptive policy (flagship predictor) on a table: its selection and cost_fraction.

    The flagship is called per model (see ``core.policy.replay.selector_predictor``).

    Only the models with a loss at the target take part (the others cannot be scored);
    the policy reads the table through a guard that refuses the target column.
    """
    curves = [c for c in table.curves if target in c.sizes]
    t0 = time.perf_counter()
    res = replay(curves, target, selector_predictor("lensllm", target, seed=seed), config)
    sel = to_selection(res, target, time.perf_counter() - t0)
    return sel, res.cost_fraction


def ratio_label(budget: int, target: int) -> str:
    """'1/8' for a budget that divides the target, else the ratio to 3 digits."""
    if budget > 0 and target % budget == 0:
        return f"1/{target // budget}"
    return f"{budget / target:.3g}"
