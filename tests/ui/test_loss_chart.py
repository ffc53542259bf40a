"""The chart draws what is predicted: the median to the target with its interval, not the law."""

from __future__ import annotations

import asyncio
import math

from textual.app import App, ComposeResult

from core import events as ev
from core.events import PointMeasurements
from core.science.curves import Curve
from core.science.laws import FitResult
from core.science.predictive import predictive_paths
from core.science.selectors import select
from lensllm_tui.view import RunView
from lensllm_tui.widgets.loss_chart import LossChart, predicted_series

SIZES = (200, 400, 800, 1600)
TARGET = 12800
LOSSES = {
    "a": (3.0, 2.8, 2.62, 2.45),
    "b": (3.2, 2.9, 2.6, 2.33),
    "c": (2.9, 2.82, 2.75, 2.69),
}


def _view() -> RunView:
    """A view fed a run's events, with the ranking carrying the real selector's paths."""
    view = RunView()
    view.apply(ev.RunStarted(tuple(LOSSES), SIZES, TARGET, "out", "builtin", 12))
    for model, losses in LOSSES.items():
        for size, loss in zip(SIZES, losses, strict=True):
            view.apply(ev.PointFinished(model, size, PointMeasurements(loss, 1.0, 0.1)))
        # a law that disagrees with the prediction: the chart must not draw it
        curve = ((200.0, losses[0]), (float(TARGET), 0.5))
        view.apply(ev.LawFitted(model, FitResult("lensllm", {"B": 1.0}, True), True, curve=curve))
    curves = [Curve(m, SIZES, losses) for m, losses in LOSSES.items()]
    sel = select("lensllm", curves, budget=1600, target=TARGET)
    paths = predictive_paths("lensllm", curves, 1600, TARGET)
    by = {p.model: p for p in sel.predictions}
    entries = tuple(
        ev.RankEntry(i, m, by[m].predicted, by[m].low, by[m].high, by[m].score, paths[m])
        for i, m in enumerate(sel.ranking, start=1)
    )
    view.apply(ev.RankingUpdated(entries))
    return view


def test_the_line_ends_at_the_ranked_prediction_with_a_band() -> None:
    view = _view()
    for m in view.models.values():
        series = {role: (xs, ys) for role, xs, ys in predicted_series(m, TARGET, 2.0)}
        assert set(series) == {"median", "low", "high"}  # no "law"
        xs, ys = series["median"]
        assert xs[0] == math.log10(1600) and ys[0] == math.log10(m.points[1600])
        assert xs[-1] == math.log10(TARGET)
        assert math.isclose(10 ** ys[-1], m.predicted, rel_tol=1e-12)
        assert math.isclose(10 ** series["low"][1][-1], m.low, rel_tol=1e-12)
        assert math.isclose(10 ** series["high"][1][-1], m.high, rel_tol=1e-12)
        assert 10 ** series["low"][1][-1] < 10 ** ys[-1] < 10 ** series["high"][1][-1]


def test_without_a_path_the_law_is_drawn() -> None:
    view = RunView()
    view.apply(ev.RunStarted(("a",), SIZES, TARGET, "out", "builtin", 4))
    view.apply(ev.PointFinished("a", 200, PointMeasurements(3.0, 1.0, 0.1)))
    curve = ((200.0, 3.0), (float(TARGET), 2.0))
    view.apply(ev.LawFitted("a", FitResult("vanilla", {}, True), True, curve=curve))
    assert [role for role, _, _ in predicted_series(view.models["a"], TARGET, 2.0)] == ["law"]


def test_the_dashboard_chart_renders_the_prediction() -> None:
    view = _view()

    class ChartApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LossChart(id="chart")

    async def go() -> None:
        app = ChartApp()
        async with app.run_test(size=(110, 30)) as pilot:
            chart = app.query_one(LossChart)
            chart.show(view)
            await pilot.pause()
            text = str(chart.render())
            assert "predicted median" in text and "*" in text and "12.8k" in text

    asyncio.run(go())
