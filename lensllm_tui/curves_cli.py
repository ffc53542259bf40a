"""`lensllm-tui bench` and `lensllm-tui fit`: curve-table commands (no training).

Registered in lensllm_tui/cli.py. Science imports (numpy, scipy, core.*)
happen inside the commands so `lensllm-tui --help` stays fast. Every bad
input ends in one `error:` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text

if TYPE_CHECKING:
    from core.bench import Table
    from core.science.prediction import Prediction, Selection

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _ints(value: str, name: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise _fail(f"{name} must be comma-separated integers, got {value!r}") from None
    if not items:
        raise _fail(f"{name} is empty")
    return items


def _read_tables(paths: list[Path]) -> list[Table]:
    from core.bench import read_tables
    from core.errors import LensError

    try:
        return read_tables(paths)
    except LensError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:  # a Curve rejected its own data
        raise _fail(str(exc)) from None


def _check_writable(path: Path) -> None:
    """One error line now if ``path`` cannot be written (a folder, read-only, missing parent)."""
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        from core.errors import os_error_line

        raise _fail(f"--json {os_error_line(exc, path)}") from None
    if not existed:
        path.unlink(missing_ok=True)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _target(value: str) -> int | None:
    """``--target``: a size, or ``max`` for each table's largest size column (None)."""
    if value.strip().lower() == "max":
        return None
    try:
        return int(value)
    except ValueError:
        raise _fail(f"--target must be an integer size or 'max', got {value!r}") from None


def _budgets(value: str, target_max: bool) -> list[Any]:
    """``--budgets``: sample counts, or fractions of the target written ``1/N``.

    With ``--target max`` a bare ``N`` is the fraction 1/N: the tables' targets
    differ, so one sample count would be a different fraction in each.
    """
    from fractions import Fraction

    items: list[Any] = []
    for raw in (v.strip() for v in value.split(",")):
        if not raw:
            continue
        num, slash, den = raw.partition("/")
        try:
            if slash:
                frac = Fraction(int(num), int(den))
                if not 0 < frac < 1:
                    raise ValueError
                items.append(frac)
            elif target_max:
                items.append(Fraction(1, int(num)))
            else:
                items.append(int(num))
        except (ValueError, ZeroDivisionError):
            raise _fail(
                f"--budgets must be comma-separated sample counts or fractions 1/N, got {raw!r}"
            ) from None
    if not items:
        raise _fail("--budgets is empty")
    return items


def bench(
    curves: Annotated[
        list[Path], typer.Argument(help="Benchmark wide-format tables (config name,0,200,...).")
    ],
    target: Annotated[
        str,
        typer.Option(
            help="Size whose loss the selectors must rank by, or 'max': each table's largest size."
        ),
    ] = "1638400",
    budgets: Annotated[
        str,
        typer.Option(
            help="Comma-separated budgets a selector may look up to: sample counts, or fractions "
            "of the target (1/8,1/16,...); with --target max a bare N means 1/N."
        ),
    ] = "204800,102400,51200,25600,12800,6400,3200",
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated selectors to compare; 'adaptive' adds the budget-aware policy (one run per table, with its cost_fraction)."
        ),
    ] = "lensllm,ats,rectified,vanilla,subtuning,zeroshot,modelsize",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the records (one per cell) here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the fits' multi-starts.")] = 0,
) -> None:
    """Replay model selection on measured curves: PearCorr, RelAcc and interval coverage."""
    from core.bench import ADAPTIVE, BenchError, check_plan

    tgt = _target(target)
    budget_list = _budgets(budgets, tgt is None)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    tables = _read_tables(curves)
    try:
        check_plan(tables, method_list, budget_list, tgt)
    except BenchError as exc:
        raise _fail(str(exc)) from None
    if json_out is not None:
        _check_writable(json_out)  # before minutes of fitting, not after
    records, notes = _run_with_progress(tables, method_list, budget_list, tgt, seed)
    fixed = [m for m in method_list if m != ADAPTIVE]
    for table in tables:
        mine = [r for r in records if r["dataset"] == table.dataset]
        if fixed:  # no empty grid for an adaptive-only run
            _print_grid(
                f"{escape(table.dataset)}: PearCorr / RelAcc / coverage (%) at target "
                f"{table.target(tgt)}",
                mine,
                fixed,
                budget_list,
                table.target(tgt),
            )
        for r in (r for r in mine if r["method"] == ADAPTIVE):
            out.print(
                Text(
                    f"{table.dataset} adaptive: RelAcc {_pct(r['rel_acc'])} PearCorr {_pct(r['pearson'])} "
                    f"cost_fraction {r['cost_fraction']:.4f} up to {r['budget']}"
                )
            )
    if len(tables) > 1 and fixed:
        title = f"mean over {len(tables)} tables: PearCorr / RelAcc / coverage (%)"
        _print_grid(title, records, fixed, budget_list, tgt)
    total_s = sum(r["seconds"] for r in records)
    out.print(
        Text(
            "rmse_log: median over budgets; coverage: share of true target losses inside the "
            f"methods' intervals; s: selector seconds; selector time {total_s:.1f} s in all"
        )
    )
    for (ds, m), note in notes.items():
        out.print(Text(f"note: {ds} {m}: {note}", style="dim"))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _fail(f"{json_out}: cannot write ({exc.strerror})") from None
        out.print(Text(f"wrote {len(records)} records to {json_out}"))


def _run_with_progress(
    tables: list[Table], methods: list[str], budgets: list[Any], target: int | None, seed: int
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    """Every cell's record, with a transient progress bar and the first failure note per method."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from core.bench import ADAPTIVE, BenchError, ratio_label, run_bench

    notes: dict[tuple[str, str], str] = {}
    per_table = sum(1 if m == ADAPTIVE else len(budgets) for m in methods)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("bench", total=len(tables) * per_table)

        def on_record(rec: dict[str, Any], sel: Selection) -> None:
            failed = [p for p in sel.predictions if not p.ok]
            if failed and (rec["dataset"], rec["method"]) not in notes:
                notes[(rec["dataset"], rec["method"])] = (
                    f"{len(failed)}/{len(sel.predictions)} models at budget {rec['budget']}: "
                    f"{failed[0].reason}"
                )
            label = ratio_label(rec["budget"], rec["target"])
            progress.update(
                task, advance=1, description=f"{rec['dataset']} {rec['method']} {label}"
            )

        try:
            records = run_bench(tables, methods, budgets, target, seed=seed, on_record=on_record)
        except (BenchError, ValueError) as exc:
            raise _fail(str(exc).splitlines()[0]) from None
    return records, notes


def _mean(values: list[float | None]) -> float | None:
    have = [v for v in values if v is not None]
    return sum(have) / len(have) if have else None


def _print_grid(
    title: str,
    records: list[dict[str, Any]],
    methods: list[str],
    budgets: list[Any],
    target: int | None,
) -> None:
    """One rich table, a column per budget: PearCorr, RelAcc and (with intervals) coverage.

    Over several tables each cell is the mean over them (the budgets' columns line up
    across tables because a budget is the same sample count or fraction in each).
    """
    from core.bench import budget_label

    rt = RichTable(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    rt.add_column("method", no_wrap=True)
    rt.add_column("metric", no_wrap=True)
    for b in budgets:
        rt.add_column(budget_label(b, target or 0), justify="right", no_wrap=True)
    rt.add_column("rmse_log", justify="right", no_wrap=True)
    rt.add_column("s", justify="right", no_wrap=True)
    width = len(budgets)
    for m in methods:
        recs = [r for r in records if r["method"] == m]
        # records run table by table, budget by budget: column j is every width-th record
        cols = [recs[j::width] for j in range(width)]

        def row(key: str, cols: list[list[dict[str, Any]]] = cols) -> list[str]:
            return [_pct(_mean([r[key] for r in col])) for col in cols]

        rm = sorted(r["rmse_log"] for r in recs if r["rmse_log"] is not None)
        rmse = f"{rm[len(rm) // 2]:.3f}" if rm else "—"
        secs = f"{sum(r['seconds'] for r in recs):.2f}"
        has_cover = any(r["coverage"] is not None for r in recs)
        rt.add_row(m, "PearCorr", *row("pearson"), rmse, secs)
        rt.add_row("", "RelAcc", *row("rel_acc"), "", "", end_section=not has_cover)
        if has_cover:
            rt.add_row("", "coverage", *row("coverage"), "", "", end_section=True)
    # the full table or none: below this width rich would truncate every cell
    Console(width=max(out.width, 30 + 8 * width + 20)).print(rt)


def fit(
    curves: Annotated[Path, typer.Argument(help="A benchmark wide-format table.")],
    budget: Annotated[
        int | None,
        typer.Option(help="Fit only sizes up to this; default: every size below the target."),
    ] = None,
    target: Annotated[
        int | None, typer.Option(help="Size to predict the loss at; default: the largest size.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Only this model (default: every model in the table).")
    ] = None,
    method: Annotated[
        str, typer.Option(help="Selector whose fit to show: lensllm, rectified, vanilla or ats.")
    ] = "lensllm",
    plot: Annotated[bool, typer.Option(help="Draw a terminal plot per model.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for the fits' multi-starts.")] = 0,
) -> None:
    """Fit each model's curve: parameters, phase transition, predicted target loss, plot."""
    from core.science.selectors import METHODS, select

    if method not in METHODS:
        raise _fail(f"unknown method {method!r} (expected one of: {', '.join(METHODS)})")
    (table,) = _read_tables([curves])
    all_curves = list(table.curves)
    if model is not None:
        all_curves = [c for c in all_curves if c.model == model]
        if not all_curves:
            names = ", ".join(c.model for c in table.curves[:5])
            raise _fail(f"no model {model!r} in {curves} (have: {names}, ...)")
    sizes = sorted({s for c in all_curves for s in c.sizes if s > 0})
    if not sizes:
        raise _fail(f"{curves}: no fine-tuned points (only zero-shot losses)")
    tgt = target if target is not None else sizes[-1]
    if budget is None:
        below = [s for s in sizes if s < tgt]
        if not below:
            raise _fail(f"no measured size below the target {tgt} to fit")
        budget = below[-1]
    if budget <= 0:
        raise _fail(f"budget must be positive, got {budget}")
    if tgt <= budget:
        raise _fail(f"target {tgt} must be above the budget {budget}")
    try:
        sel = select(method, all_curves, budget, tgt, seed=seed)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    by_model = {c.model: c for c in all_curves}
    for p in sel.predictions:
        _show_prediction(p, by_model[p.model], budget, tgt, plot)
    out.print(Text(f"ranking by {method} (best first): " + ", ".join(sel.ranking)))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _show_prediction(p: Prediction, curve: Any, budget: int, target: int, plot: bool) -> None:
    out.rule(Text(p.model, style="bold"))
    if p.fit is not None and p.fit.ok:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in p.fit.params.items())
        out.print(Text(f"law {p.fit.law}: {params}  (rms log residual {_fmt(p.fit.residual, 3)})"))
    elif p.fit is not None:
        out.print(Text(f"law {p.fit.law}: fit failed: {p.fit.reason}"))
    out.print(Text(f"transition (first power-phase size): {p.transition if p.transition else '—'}"))
    truth = curve.loss_at(target) if target in curve.sizes else None
    interval = (
        f" [{_fmt(p.low)}, {_fmt(p.high)}]" if p.low is not None or p.high is not None else ""
    )
    measured = f"  measured {_fmt(truth)}" if truth is not None else ""
    out.print(Text(f"predicted loss at {target}: {_fmt(p.predicted)}{interval}{measured}"))
    if not p.ok:
        out.print(Text(f"failed: {p.reason}", style="yellow"))
    if plot:
        out.print(Text.from_ansi(_plot(p, curve, budget, target)))


def _plot(p: Prediction, curve: Any, budget: int, target: int) -> str:
    """Points and fitted law on log10-log10 values with labelled ticks.

    Uses a private plotext figure object rather than plotext's module-level
    one, and plots log10 values on linear axes: plotext's own log axes break
    when a figure is redrawn (see the design notes).
    """
    import numpy as np
    from plotext._figure import _figure_class

    fig = _figure_class()
    fig.plot_size(72, 18)
    fig.theme("clear")
    pts = [(s, v) for s, v in zip(curve.sizes, curve.losses, strict=True) if s > 0]
    seen = [(s, v) for s, v in pts if s <= budget]
    held = [(s, v) for s, v in pts if s > budget]
    lo = min(s for s, _ in pts) if pts else 100
    hi = max(target, *(s for s, _ in pts)) if pts else target
    if p.fit is not None and p.fit.ok:
        xs = np.geomspace(lo, hi, 80)
        ys = p.fit.predict(xs)
        good = np.isfinite(ys) & (ys > 0)
        if good.any():
            fig.plot(list(np.log10(xs[good])), list(np.log10(ys[good])))
    if seen:
        fig.scatter(
            [math.log10(s) for s, _ in seen],
            [math.log10(v) for _, v in seen],
            marker="dot",
        )
    if held:
        fig.scatter(
            [math.log10(s) for s, _ in held],
            [math.log10(v) for _, v in held],
            marker="x",
        )
    if p.predicted is not None and p.predicted > 0:
        fig.scatter([math.log10(target)], [math.log10(p.predicted)], marker="+")
    xt = list(range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1))
    fig.xticks(xt, [f"1e{k}" for k in xt])
    fig.xlim(xt[0], xt[-1])
    ys_all = [v for _, v in pts] + ([p.predicted] if p.predicted else [])
    if ys_all:
        ylo, yhi = math.log10(min(ys_all)), math.log10(max(ys_all))
        ticks = list(np.linspace(ylo, yhi, 5)) if yhi > ylo else [ylo]
        fig.yticks(ticks, [f"{10**t:.3g}" for t in ticks])
    fig.xlabel("training samples (log)")
    fig.ylabel("test loss (log)")
    # no plotext legend: it sits on the top-left corner, where the first points are
    caption = "• seen   x held out   + prediction   line: fitted law"
    return fig.build() + "\n" + caption
