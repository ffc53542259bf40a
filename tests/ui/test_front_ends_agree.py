"""The dashboard and the headless console draw one RunView: they agree on what a run did.

Each stream goes through the real headless renderer (rich, to a string) and the
real Textual dashboard (Pilot); what each one *shows* is read back from its
output (the [k/N] line and summary; the points counter, the failures panel and
the ranking table) and compared with the other and with the stream itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from core import events as ev
from core.config import AdaptiveRunConfig, DataConfig, NTKConfig, RunConfig, TrainConfig
from core.run.runner import run_events
from core.science.laws import FitResult
from lensllm_tui.app import make_app
from lensllm_tui.headless import EXIT_MODEL_FAILED, EXIT_OK, ConsoleView
from lensllm_tui.widgets import RankingTable
from tests.ui.app_helpers import dashboard, settle_dashboard


@dataclass
class Shown:
    """What one front end displays, in the terms both share."""

    settled: int
    total: int
    eliminated: set[str]
    saves: dict[str, str]
    """Eliminated model -> its compute saved as printed (``2.50e+12``)."""
    saved: str
    """The run's compute saved as printed, '' when nothing was eliminated."""
    ranking: list[tuple[str, str]]
    """(rank, model), best first."""


def headless(stream: list[ev.Event]) -> tuple[Shown, int]:
    buf = io.StringIO()
    console = ConsoleView(Console(file=buf, width=250, force_terminal=False))
    code = console.consume(iter(stream))
    out = buf.getvalue()
    # The overall bar, as a terminal shows it at the end; a log's last [k/N] line has
    # the same k, but its N was right when printed (a policy may stop after it).
    bar = console.progress.tasks[0]
    settled, total = int(bar.completed), int(bar.total or 0)
    last = re.findall(r"^\[(\d+)/(\d+)\]", out, re.M)[-1]
    assert int(last[0]) <= settled <= total <= int(last[1])
    live = re.findall(r"^eliminated (\S+): .*; saves (\S+) FLOPs", out, re.M)
    saved = re.findall(r"eliminations saved (\S+) FLOPs", out)
    ranking = re.findall(r"^│\s+(\d+)\s+│\s+(\S+)\s+│", out, re.M)
    return (
        Shown(
            settled,
            total,
            {m for m, _ in live},
            dict(live),
            saved[-1] if saved else "",
            ranking,
        ),
        code,
    )


def dashboard_shows(stream: list[ev.Event], config: RunConfig, finished: bool = True) -> Shown:
    """The real app on ``stream``; without a terminal event the source then holds the run open."""
    got: list[Shown] = []

    def source(
        cfg: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None
    ) -> Iterator[ev.Event]:
        yield from stream
        cancel.wait()

    async def go() -> None:
        app = make_app(config, event_source=source, hub_models=lambda: [], autostart=True)
        async with app.run_test(size=(200, 50)) as pilot:
            await settle_dashboard(
                pilot,
                lambda s: (
                    s.state.phase == "finished" if finished else len(s.events_seen) == len(stream)
                ),
            )
            screen = dashboard(pilot)
            eta = str(screen.query_one("#eta", Static).render())
            settled, total = (int(x) for x in re.match(r"(\d+)/(\d+) pts", eta).groups())
            panel = str(screen.query_one("#failures", Static).render())
            saves = dict(re.findall(r"^⊘ (\S+): .* \(saves (\S+) FLOPs\)$", panel, re.M))
            saved = re.findall(r"(?:eliminations saved|compute saved so far:) (\S+) FLOPs", panel)
            rows = screen.query_one(RankingTable).rows_as_text()
            got.append(
                Shown(
                    settled,
                    total,
                    set(saves),
                    saves,
                    saved[-1] if saved else "",
                    [(r[0], r[1]) for r in rows if r[0] != "—"],
                )
            )

    asyncio.run(go())
    return got[0]


def expected(stream: list[ev.Event]) -> Shown:
    """What the stream itself says both should show."""
    settled = sum(isinstance(e, ev.PointFinished | ev.PointFailed) for e in stream)
    gone = {e.model: f"{e.compute_saved:.2e}" for e in stream if isinstance(e, ev.ModelEliminated)}
    stopped = [e for e in stream if isinstance(e, ev.PolicyStopped)]
    saved = sum(e.compute_saved for e in stream if isinstance(e, ev.ModelEliminated))
    shown_saved = (
        f"{stopped[-1].compute_saved:.2e}" if stopped else (f"{saved:.2e}" if gone else "")
    )
    (end,) = [e for e in stream if isinstance(e, ev.RunFinished)]
    ranking = [(str(e.rank), e.model) for e in end.ranking]
    return Shown(settled, settled, set(gone), gone, shown_saved, ranking)


def _entries(*models: str) -> tuple[ev.RankEntry, ...]:
    return tuple(
        ev.RankEntry(i + 1, m, 2.0 + i / 10, 1.9 + i / 10, 2.1 + i / 10, 2.0 + i / 10)
        for i, m in enumerate(models)
    )


def _point(model: str, size: int, index: int, **kw: object) -> list[ev.Event]:
    loss = 3.0 - size / 1000
    return [
        ev.PointStarted(model, size, index, 12, time=float(index)),
        ev.PointFinished(
            model,
            size,
            ev.PointMeasurements(loss, 1e9 * size, 0.5),
            time=index + 0.5,
            **kw,  # type: ignore[arg-type]
        ),
    ]


EDITED = [
    ev.RunStarted(("a", "b", "c", "d"), (100, 200), 800, "/tmp/run", "builtin", 12, time=0.0),
    *_point("a", 0, 0, reused=True),
    *_point("a", 100, 1, reused=True),
    *_point("b", 0, 2),
    *_point("b", 100, 3),
    *_point("c", 0, 4),
    ev.PointStarted("c", 100, 5, 12, time=5.0),
    ev.PointFailed("c", 100, "loss is NaN", time=5.5),
    ev.ModelFailed("c", "point at size 100 failed: loss is NaN", time=5.5),
    *_point("d", 0, 6),
    ev.ModelEliminated("d", "80% interval lies above b's", 3.0e12, time=6.6),
    ev.LawFitted(
        "a", FitResult("lensllm", {"B": 1.0}, True), True, predicted_target=2.1, interval=(2.0, 2.2)
    ),
    ev.RankingUpdated(_entries("b", "a"), time=7.0),
    *_point("a", 200, 7, reused=True),
    *_point("b", 200, 8),
    ev.PolicyStopped("every survivor is stable", 1e12, 1e13, 0.1, compute_saved=3.0e12),
    ev.RunFinished("/tmp/run", _entries("b", "a"), (("c", "loss is NaN"),), 9.0, time=9.0),
]
"""Hand-written: reused points, a point failure that fails its model, an elimination."""


def _config(models: list[str], tmp_path: Path) -> RunConfig:
    return RunConfig(models=models, sizes=[100, 200], target=800, out_dir=str(tmp_path / "run"))


def test_both_front_ends_agree_on_an_edited_stream(tmp_path: Path) -> None:
    want = expected(EDITED)
    assert (want.settled, want.eliminated, want.saved) == (9, {"d"}, "3.00e+12")
    text, code = headless(EDITED)
    assert code == EXIT_MODEL_FAILED
    assert text == want
    assert dashboard_shows(EDITED, _config(["a", "b", "c", "d"], tmp_path)) == want


def test_an_elimination_shrinks_the_total_in_both(tmp_path: Path) -> None:
    """Two points finished and one model eliminated: 2 of 6 settled, not 2 of 9."""
    started = ev.RunStarted(("a", "b", "c"), (100, 200), 800, "/tmp/run", "builtin", 9, time=0.0)
    prefix = [
        started,
        *_point("a", 0, 0),
        *_point("b", 0, 1),
        ev.ModelEliminated("c", "dropped", 1e12, time=2.0),
    ]
    view = ConsoleView(Console(file=io.StringIO(), force_terminal=False))
    for e in prefix:
        view.on(e)
    overall = view.progress.tasks[0]
    assert (overall.completed, overall.total) == (2, 6)
    assert (view.view.settled_points, view.view.total_points) == (2, 6)
    shown = dashboard_shows(prefix, _config(["a", "b", "c"], tmp_path), finished=False)
    assert (shown.settled, shown.total) == (2, 6)
    text, _ = headless([*prefix, *_point("a", 100, 2)])
    assert (text.settled, text.total) == (3, 6)


@pytest.mark.usefixtures("zoo_env")
def test_both_front_ends_agree_on_a_recorded_engine_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real adaptive run: stored points reused, a model that cannot load, an elimination."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = RunConfig(
        models=["tiny:gpt2-s"],
        sizes=[25, 50, 100, 200],
        target=1600,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=False),
        device="cpu",
        out_dir=str(tmp_path / "run"),
    )
    list(run_events(base))  # the store now holds gpt2-s's points
    models = ["tiny:gpt2-s", "tiny:t5-s", "no-such-org/no-such-model-xyz"]
    adaptive = dataclasses.replace(
        base, models=models, policy="adaptive", adaptive=AdaptiveRunConfig(confidence=0.8)
    )
    stream = list(run_events(adaptive))
    reused = [e for e in stream if isinstance(e, ev.PointFinished) and e.reused]
    assert {e.model for e in reused} == {"tiny:gpt2-s"}
    assert [e.model for e in stream if isinstance(e, ev.ModelFailed)] == [models[2]]
    assert [e.model for e in stream if isinstance(e, ev.ModelEliminated)] == ["tiny:t5-s"]
    want = expected(stream)
    text, code = headless(stream)
    assert code in (EXIT_OK, EXIT_MODEL_FAILED)
    assert text == want
    assert dashboard_shows(stream, adaptive) == want
