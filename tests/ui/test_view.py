"""RunView: the fold of the event stream both front ends draw from (no UI needed)."""

from __future__ import annotations

from core import events as ev
from core.science.phase import Transition
from lensllm_tui.view import RunView


def _started(state: RunView) -> None:
    state.apply(ev.RunStarted(("a", "b"), (100, 200), 800, "out", "builtin", 6, time=0.0))


def test_progress_that_overtakes_its_point_start_is_kept_for_it() -> None:
    # Coalesced progress can be handled before the PointStarted queued ahead of it.
    state = RunView()
    _started(state)
    state.apply(ev.PointStarted("a", 100, 1, 6, time=1.0))
    state.apply(ev.PointProgress("b", 100, 3, 5, 2.5, time=2.0))
    assert state.current == ("a", 100) and state.step == 0
    state.apply(ev.PointFinished("a", 100, ev.PointMeasurements(3.0, 1e9, 1.0), time=2.0))
    state.apply(ev.PointStarted("b", 100, 2, 6, time=2.0))
    assert (state.step, state.total_steps, state.train_loss) == (3, 5, 2.5)


def test_eta_uses_seconds_per_sample_of_trained_points() -> None:
    state = RunView()
    _started(state)
    state.apply(
        ev.PointFinished("a", 0, ev.PointMeasurements(4.0, 0.0, 5.0), time=5.0)
    )  # zero-shot: no samples
    state.apply(ev.PointFinished("a", 100, ev.PointMeasurements(3.0, 1e9, 10.0), time=15.0))
    assert state.elapsed == 15.0
    # Left: a@200, b@100, b@200 = 500 samples at 0.1 s per sample.
    assert state.eta() == 50.0
    state.apply(ev.ModelFailed("b", "cannot load", time=16.0))
    assert state.eta() == 20.0
    assert [m.name for m in state.ordered()] == ["a", "b"] and state.models["b"].status == "failed"


def test_ranking_and_finish_set_ranks_phase_and_status() -> None:
    state = RunView()
    _started(state)
    entries = (ev.RankEntry(1, "b", 2.0, 1.9, 2.1, 2.0), ev.RankEntry(2, "a", 2.5, 2.3, 2.7, 2.5))
    state.apply(ev.PhaseDetected("a", Transition(200, 0.7, ""), time=3.0))
    state.apply(ev.PhaseDetected("b", Transition(None, 0.4, ""), time=3.0))
    state.apply(ev.RankingUpdated(entries, time=3.0))
    assert [m.name for m in state.ordered()] == ["b", "a"]
    assert state.models["a"].phase == "power" and state.models["b"].phase == "pre-power"
    state.apply(ev.RunFinished("out", entries, time=4.0))
    assert state.phase == "finished" and not state.active
    assert {m.status for m in state.models.values()} == {"done"}
