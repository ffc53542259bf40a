"""A run as pictures: one self-contained HTML page plus the PNGs it shows.

Built from what a run directory holds (results.json, and the store for the
per-step losses), so any finished or interrupted run can be reported without
training anything. The figures: every model's test-loss curve on log-log axes
with its fitted law carried to the target and the prediction interval, the
detected transitions, the ranking with intervals, the compute each model got
and the adaptive policy's eliminations, the NTK spectra, and the per-step
training losses. matplotlib is an optional extra (``lensllm-tui[report]``);
its object API is used (no pyplot), so nothing global changes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ReportError, one_line
from core.paths import RESULTS_NAME, STORE_NAME
from core.science.laws import FitResult
from core.science.spectrum import NTKSpectrum

REPORT_DIR = "report"
"""Where ``build_report`` writes inside the run directory unless told otherwise."""


@dataclass
class RunData:
    """What the report reads: results.json as a dict, per-step losses per model and size."""

    run_dir: Path
    results: dict[str, Any]
    steps: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    @property
    def models(self) -> list[dict[str, Any]]:
        return list(self.results.get("models") or [])

    @property
    def target(self) -> int:
        return int(self.results.get("config", {}).get("target", 0))


def load_run(run_dir: str | Path) -> RunData:
    """results.json and, when the store has them, every point's per-step losses."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_NAME
    if not path.is_file():
        raise ReportError(f"{run_dir}: no {RESULTS_NAME} (not a lensllm-tui run directory)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not readable as JSON ({one_line(exc)})") from exc
    return RunData(run_dir, results, _step_losses(run_dir, results))


def _step_losses(run_dir: Path, results: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    from core.run.store import Store

    if not (run_dir / STORE_NAME).is_file():
        return {}
    fingerprint = (results.get("dataset") or {}).get("fingerprint")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    with Store(run_dir / STORE_NAME) as store:
        for p in store.points():
            if p.measured.losses and (fingerprint is None or p.key.fingerprint == fingerprint):
                out.setdefault(p.key.model, {})[p.key.size] = p.measured.losses
    return out


# --------------------------------------------------------------------------- figures


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportError("the report needs matplotlib: pip install 'lensllm-tui[report]'") from exc
    return Figure(figsize=(width, height), layout="constrained")


def _fit(model: dict[str, Any]) -> FitResult | None:
    law = model.get("law") or {}
    if not law.get("ok") or not law.get("law"):
        return None
    spectrum = model.get("spectrum")
    return FitResult(
        law["law"],
        {k: float(v) for k, v in law["params"].items()},
        True,
        spectrum=NTKSpectrum.from_dict(spectrum) if spectrum else None,
    )


def fig_curves(run: RunData) -> Any:
    """Test loss against samples (log-log): points, fitted law to the target, interval band."""
    import numpy as np

    fig = _figure()
    ax = fig.add_subplot()
    target = run.target
    for i, m in enumerate(run.models):
        pts = [(p["size"], p["loss"]) for p in m["points"] if p["size"] > 0 and p.get("loss")]
        if not pts:
            continue
        color = f"C{i % 10}"
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "o", color=color, label=m["model"])
        fit, pred = _fit(m), m.get("prediction") or {}
        if fit is not None and target > xs[-1]:
            grid = np.geomspace(xs[0], target, 64)
            ax.plot(grid, fit.predict(grid), ":", color=color)
        low, high, mid = pred.get("low"), pred.get("high"), pred.get("predicted")
        if None not in (low, high, mid) and target > xs[-1]:
            # the interval at the target, narrowing to the last measured point
            grid = np.geomspace(xs[-1], target, 32)
            w = np.log(grid / xs[-1]) / math.log(target / xs[-1])
            base = ys[-1] + w * (mid - ys[-1])
            ax.fill_between(
                grid, base - w * (mid - low), base + w * (high - mid), color=color, alpha=0.15
            )
            ax.plot([target], [mid], "*", color=color, markersize=11)
        tr = (m.get("transition") or {}).get("size")
        if tr:
            at = dict(pts).get(tr)
            if at is not None:
                ax.plot([tr], [at], "x", color="black", markersize=10, mew=2)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain losses, not 5 x 10^0
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training samples")
    ax.set_ylabel("test loss (nats/token)")
    ax.set_title(
        f"Loss curves, fitted laws to the target {target:,} (x: transition, *: prediction)"
    )
    ax.legend(fontsize=8)
    return fig


def fig_ranking(run: RunData) -> Any:
    """Predicted loss at the target with its interval, best at the top."""
    ranking = [r for r in run.results.get("ranking") or [] if r.get("predicted_target") is not None]
    fig = _figure(7.0, 0.6 + 0.45 * max(len(ranking), 1))
    ax = fig.add_subplot()
    for row, r in enumerate(reversed(ranking)):
        mid, low, high = r["predicted_target"], r.get("low"), r.get("high")
        err = [[mid - low], [high - mid]] if None not in (low, high) else None
        ax.errorbar([mid], [row], xerr=err, fmt="o", capsize=4, color="C0")
    ax.set_yticks(range(len(ranking)), [f"{r['rank']}. {r['model']}" for r in reversed(ranking)])
    ax.set_xlabel(f"predicted test loss at {run.target:,} samples")
    ax.set_title("Ranking with prediction intervals")
    return fig


def _compute(run: RunData) -> list[tuple[str, float, str]]:
    """(model, compute spent, status) per model: the policy's account, or the points' FLOPs."""
    policy = run.results.get("policy") or {}
    if policy.get("outcomes"):
        return [
            (o["model"], float(o.get("cost") or 0.0), o.get("status", ""))
            for o in policy["outcomes"]
        ]
    return [
        (
            m["model"],
            sum(float(p.get("flops") or 0.0) for p in m["points"]),
            "failed" if m.get("failed") else "kept",
        )
        for m in run.models
    ]


def fig_compute(run: RunData) -> Any:
    """Compute each model got; eliminated models marked, with the policy's total."""
    rows = _compute(run)
    fig = _figure(7.0, 0.8 + 0.45 * max(len(rows), 1))
    ax = fig.add_subplot()
    colors = ["C3" if status == "eliminated" else "C0" for _, _, status in rows]
    ax.barh(range(len(rows)), [c for _, c, _ in rows], color=colors)
    ax.set_yticks(range(len(rows)), [f"{name} ({status})" for name, _, status in rows])
    ax.invert_yaxis()
    policy = run.results.get("policy") or {}
    if policy:
        frac = policy.get("cost_fraction")
        ax.set_title(
            f"Adaptive policy: compute per model (red: eliminated); spent {policy.get('cost', 0):.3g}"
            + (f" = {frac:.3f} of full fine-tuning" if frac is not None else "")
        )
    else:
        ax.set_title("Compute per model (ladder policy: every size for every model)")
    ax.set_xlabel("FLOPs")
    return fig


def fig_spectra(run: RunData) -> Any | None:
    """Each model's NTK eigenvalues on the probe set, largest first (log scale)."""
    with_spectrum = [m for m in run.models if m.get("spectrum")]
    if not with_spectrum:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, m in enumerate(run.models):
        if m.get("spectrum"):
            eig = sorted((e for e in m["spectrum"]["eigenvalues"] if e > 0), reverse=True)
            ax.plot(range(1, len(eig) + 1), eig, ".-", color=f"C{i % 10}", label=m["model"])
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("NTK eigenvalue")
    ax.set_title("NTK spectra on the probe set")
    ax.legend(fontsize=8)
    return fig


def fig_steps(run: RunData) -> Any | None:
    """Per-step training loss (and validation checks) of each model's largest trained point."""
    curves = {m: pts for m, pts in run.steps.items() if any(v.get("train") for v in pts.values())}
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, m in enumerate(run.models):
        sizes = [s for s, v in curves.get(m["model"], {}).items() if v.get("train")]
        if not sizes:
            continue
        size = max(sizes)
        losses = curves[m["model"]][size]
        steps, values = zip(*losses["train"], strict=True)
        ax.plot(steps, values, color=f"C{i % 10}", label=f"{m['model']} @ {size}")
        if losses.get("validation"):
            vs, vv = zip(*losses["validation"], strict=True)
            ax.plot(vs, vv, "s--", color=f"C{i % 10}", markersize=4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (squares: validation)")
    ax.set_title("Per-step losses of each model's largest point (from the store)")
    ax.legend(fontsize=8)
    return fig


FIGURES: tuple[tuple[str, str, str, Callable[[RunData], Any]], ...] = (
    (
        "curves",
        "Loss curves and predictions",
        "Measured test loss per ladder size (dots), each model's fitted law carried to the"
        " target (dotted), the selector's prediction at the target (star) with its interval,"
        " drawn as a band narrowing back to the last measured point, and the detected"
        " pre-power to power transition (x). The selector's prediction need not lie on the"
        " law: it weighs the law against the curve's recent trend.",
        fig_curves,
    ),
    ("ranking", "Ranking with intervals", "Predicted loss at the target, best first.", fig_ranking),
    (
        "compute",
        "Compute and eliminations",
        "Compute each model was given (the adaptive policy's charge, or the points' FLOPs).",
        fig_compute,
    ),
    ("spectra", "NTK spectra", "Empirical NTK eigenvalues on the probe set.", fig_spectra),
    (
        "steps",
        "Per-step losses",
        "Training loss at every optimizer step of each model's largest point, with the"
        " validation checks where they ran.",
        fig_steps,
    ),
)
"""(id, heading, caption, builder) of every figure, in page order; a builder may return None."""


# --------------------------------------------------------------------------- page


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` (PNGs embedded) and the PNGs into ``out_dir``; return the page."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / REPORT_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the report folder ({one_line(exc)})") from exc
    sections = []
    for name, heading, caption, build in FIGURES:
        fig = build(run)
        if fig is None:
            continue
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        png = buf.getvalue()
        (out / f"{name}.png").write_bytes(png)
        data = base64.b64encode(png).decode("ascii")
        sections.append(
            f'<figure id="{name}"><h2>{html.escape(heading)}</h2>'
            f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    page = out / "report.html"
    page.write_text(_page(run, sections), encoding="utf-8")
    return page


def _page(run: RunData, sections: list[str]) -> str:
    r = run.results
    esc = html.escape
    ds = r.get("dataset") or {}
    stats = ds.get("stats") or {}
    rows = "".join(
        f"<tr><td>{e['rank']}</td><td>{esc(e['model'])}</td><td>{_num(e.get('predicted_target'))}</td>"
        f"<td>{_num(e.get('low'))} - {_num(e.get('high'))}</td></tr>"
        for e in r.get("ranking") or []
    )
    gone = "".join(
        f"<li>{esc(e['model'])}: {esc(e['reason'])}</li>"
        for e in (r.get("policy") or {}).get("eliminated") or []
    )
    warnings = "".join(f"<li>{esc(w)}</li>" for w in r.get("warnings") or [])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lensllm-tui report: {esc(str(run.run_dir))}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}</style></head>
<body><h1>lensllm-tui run report</h1>
<p>{esc(str(run.run_dir))}: status <b>{esc(str(r.get("status")))}</b>; {len(run.models)} models on
{esc(str(ds.get("source")))} ({esc(str(ds.get("format", "")))}), ladder {esc(str(ds.get("sizes")))},
target {run.target:,}; {stats.get("rows", "?")} rows read, {stats.get("duplicates", 0)} duplicates dropped.</p>
{f"<ul>{warnings}</ul>" if warnings else ""}
<table id="ranking-table"><tr><th>rank</th><th>model</th><th>predicted</th><th>interval</th></tr>{rows}</table>
{f'<h2>Eliminated</h2><ul id="eliminated">{gone}</ul>' if gone else ""}
{"".join(sections)}
</body></html>
"""


def _num(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) else "-"
