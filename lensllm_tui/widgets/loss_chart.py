"""Loss against training samples, log-log, one series per model.

The pinned plotext breaks on repeated log-scale axes, so the chart plots
log10 values on linear axes and writes the real values on the ticks. Each
chart owns its plotext figure (``self.plt``); a replot is clear -> plot ->
refresh, and the caller batches and throttles replots.

Beyond the measured points the line is what is predicted, not the fitted law:
the selector's predictive median from the budget to the target with its
interval as a dotted band (``RankEntry.path``), so the line ends on the ``*``
the ranking uses. Only a selector that gives no path falls back to its law.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from textual_plotext import PlotextPlot

from lensllm_tui.view import ModelView, RunView

Series = tuple[str, list[float], list[float]]
"""(role, log10 samples, log10 loss): ``median`` and ``low``/``high`` of the predicted
path, or ``law`` where only a fitted law is known."""

COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")
"""Series colours, in model order (plotext colour names)."""

RICH_COLORS = {"orange": "dark_orange", "white": "bright_white"}
"""Where a plotext colour name differs from Rich's (the ranking table colours names)."""


def series_color(index: int) -> str:
    """The chart colour of the index-th model, as a Rich colour for the table legend."""
    name = COLORS[index % len(COLORS)]
    return RICH_COLORS.get(name, name)


def law_values(law: str, params: Mapping[str, float], sizes: np.ndarray) -> np.ndarray | None:
    """Evaluate a fitted law (from a LawFitted event) at ``sizes`` with core.science.laws.

    None when the parameters alone cannot say: a LensLLM fit whose F term
    comes from the NTK spectrum (parameters s and tau, no F) needs the
    spectrum, which events do not carry; the chart then shows the measured
    points and the predicted target without the curve.
    """
    from core.science.laws import FitResult  # numpy + scipy only; no torch

    needed = {"B", "beta", "E"} if law == "vanilla" else {"B", "beta", "E", "F"}
    if not needed <= set(params):
        return None
    fit = FitResult(law=law, params=dict(params), ok=True)
    return np.asarray(fit.predict(sizes), dtype=float)


def _fmt_size(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _nice_loss_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Up to ``n`` round loss values spread evenly (in log space) over [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        return []
    if hi <= lo:
        hi = lo * 1.1
    raw = np.geomspace(lo, hi, n)
    out: list[float] = []
    for v in raw:
        digits = max(0, 2 - math.floor(math.log10(v)))
        r = round(float(v), digits)
        if r > 0 and r not in out:
            out.append(r)
    return out


class LossChart(PlotextPlot):
    """Test loss vs training samples for every model, with fitted laws and transitions."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._state: RunView | None = None
        self.highlight: str | None = None

    def show(self, state: RunView, highlight: str | None = None) -> None:
        """Replot from ``state`` (clear -> plot -> refresh); the caller batches calls."""
        self._state = state
        self.highlight = highlight
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        state = self._state
        title = "test loss vs samples, log-log · o measured  X phase change  * at target"
        if state is not None and any(m.path for m in state.models.values()):
            title += "  — predicted median, ·· interval"
        plt.title(title)
        plt.xlabel("samples")
        if state is None or not state.models:
            plt.xticks([], [])
            plt.yticks([], [])
            self.refresh()
            return
        sizes = [s for s in state.sizes if s > 0] or [1]
        target = state.target or max(sizes)
        x_lo, x_hi = math.log10(min(sizes)) - 0.1, math.log10(max(target, max(sizes))) + 0.1
        losses: list[float] = []
        models = list(state.models.values())
        order = [m for m in models if m.name != self.highlight]
        if self.highlight in state.models:
            order.append(state.models[self.highlight])  # drawn last: in front
        for m in order:
            losses.extend(self._plot_model(m, models.index(m), sizes, target, x_lo))
        finite = [v for v in losses if math.isfinite(v) and v > 0]
        if target:
            plt.vertical_line(math.log10(target), color="gray")
        xt = sorted({*sizes, target})
        xt = self._thin(xt)
        plt.xticks([math.log10(v) for v in xt], [_fmt_size(v) for v in xt])
        plt.xlim(x_lo, x_hi)
        if finite:
            lo, hi = min(finite), max(finite)
            yt = _nice_loss_ticks(lo, hi, n=max(2, min(5, (self.size.height - 4) // 3)))
            plt.yticks([math.log10(v) for v in yt], [f"{v:g}" for v in yt])
            pad = max(0.02, 0.08 * (math.log10(hi) - math.log10(lo)))
            plt.ylim(math.log10(lo) - pad, math.log10(hi) + pad)
        self.refresh()

    def _thin(self, ticks: Sequence[int]) -> list[int]:
        """Drop ticks that would collide on a narrow chart, keeping both ends."""
        width = max(20, self.size.width - 8)
        span = math.log10(max(ticks)) - math.log10(min(ticks)) or 1.0
        kept: list[int] = []
        for v in ticks:
            if not kept or (math.log10(v) - math.log10(kept[-1])) / span * width >= 6:
                kept.append(v)
        if kept[-1] != ticks[-1]:
            kept[-1] = ticks[-1]
        return kept

    def _plot_model(
        self, m: ModelView, index: int, sizes: Sequence[int], target: int, x_lo: float
    ) -> list[float]:
        plt = self.plt
        faded = self.highlight is not None and m.name != self.highlight
        color = "gray" if faded else COLORS[index % len(COLORS)]
        used: list[float] = []
        pts = sorted((s, v) for s, v in m.points.items() if s > 0 and v > 0)
        for role, xs, ys in predicted_series(m, target, x_lo):
            marker = "braille" if role in ("median", "law") else "dot"
            plt.plot(xs, ys, color=color, marker=marker)
            used.extend(10**y for y in ys)
        if pts:
            plt.scatter(
                [math.log10(s) for s, _ in pts],
                [math.log10(v) for _, v in pts],
                color=color,
                marker="o",
            )
            used.extend(v for _, v in pts)
        if m.transition is not None and m.transition in m.points:
            v = m.points[m.transition]
            plt.scatter([math.log10(m.transition)], [math.log10(v)], color=color, marker="X")
        if math.isfinite(m.predicted) and m.predicted > 0 and target:
            plt.scatter([math.log10(target)], [math.log10(m.predicted)], color=color, marker="*")
            used.append(m.predicted)
        return used


def predicted_series(m: ModelView, target: int, x_lo: float) -> list[Series]:
    """What the chart draws beyond a model's points, in log10 coordinates.

    With a predicted path: the median from the last measured point to the target
    and the interval's two edges (where the selector gives one). Without one,
    the fitted law as the engine sampled it (or evaluated here), when it is ok.
    """
    path = [p for p in m.path if p[0] > 0 and math.isfinite(p[1]) and p[1] > 0]
    if path:
        measured = sorted((s, v) for s, v in m.points.items() if 0 < s < path[0][0] and v > 0)
        start = [measured[-1]] if measured else []
        xs = [math.log10(s) for s, _ in start] + [math.log10(p[0]) for p in path]
        ys = [math.log10(v) for _, v in start] + [math.log10(p[1]) for p in path]
        out: list[Series] = [("median", xs, ys)]
        for role, col in (("low", 2), ("high", 3)):
            edge = [p for p in path if math.isfinite(p[col]) and p[col] > 0]
            if edge:
                ex = [math.log10(s) for s, _ in start] + [math.log10(p[0]) for p in edge]
                ey = [math.log10(v) for _, v in start] + [math.log10(p[col]) for p in edge]
                out.append((role, ex, ey))
        return out
    if not (m.fit_ok and (m.curve or m.params)):
        return []
    if m.curve:  # sampled by the engine, which holds the NTK spectrum
        grid = np.array([x for x, _ in m.curve], dtype=float)
        ys = np.array([y for _, y in m.curve], dtype=float)
    else:
        grid = np.geomspace(10**x_lo, target, 60)
        values = law_values(m.law, m.params, grid)
        if values is None:
            return []
        ys = values
    ok = np.isfinite(ys) & (ys > 0)
    if not ok.any():
        return []
    return [("law", np.log10(grid[ok]).tolist(), np.log10(ys[ok]).tolist())]
