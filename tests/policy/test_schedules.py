"""The adaptive schedules: one class per name, behind the one ``pick`` the policy delegates to."""

from __future__ import annotations

import pytest

from core.config import SCHEDULES
from core.errors import AdaptiveError
from core.policy.adaptive import AdaptiveConfig, AdaptivePolicy, Estimate, per_model
from core.policy.schedules import (
    Board,
    Challenger,
    ComputeLevelling,
    Halving,
    Pick,
    SizeLevelling,
    make_schedule,
)
from core.policy.state import ModelState

LADDER = (200, 400, 800, 1600)


def drifting(best: str = "a"):
    """Predictions that keep moving (nobody converges), ``best`` predicted lowest."""
    calls: dict[str, int] = {}

    def predict(curve) -> Estimate:
        calls[curve.model] = calls.get(curve.model, 0) + 1
        base = 1.0 if curve.model == best else 1.5
        base *= 1 + 0.5 / calls[curve.model]
        return Estimate(base, base * 0.8, base * 1.25, level=0.9)

    return per_model(predict)


def policy(schedule: str, costs: dict[str, float], **config) -> AdaptivePolicy:
    cfg = AdaptiveConfig(schedule=schedule, min_points=2, max_cost_fraction=None, **config)
    return AdaptivePolicy(list(costs), LADDER, 3200, costs, drifting(), cfg)


def drive(pol: AdaptivePolicy) -> list[tuple[str, int]]:
    """Run the policy to its end, one point at a time; the points in order."""
    out = []
    while (point := pol.next_point()) is not None:
        out.append(point)
        pol.observe(*point, loss=1.0)
    return out


def test_every_configured_name_has_its_schedule() -> None:
    kinds = {"halving": Halving, "compute": ComputeLevelling, "size": SizeLevelling}
    kinds["challenger"] = Challenger
    assert set(kinds) == set(SCHEDULES)
    for name in SCHEDULES:
        made = make_schedule(name, min_points=4, eta=2, cap=0.05)
        assert type(made) is kinds[name]
        pol = AdaptivePolicy(
            ["a"], LADDER, 3200, {"a": 1.0}, drifting(), AdaptiveConfig(schedule=name)
        )
        assert type(pol.schedule) is kinds[name]
    with pytest.raises(AdaptiveError, match="unknown schedule 'fifo'"):
        make_schedule("fifo", min_points=4, eta=2, cap=None)


def test_size_levelling_climbs_in_step() -> None:
    """Warm-up by point count, then by reach; at equal reach the predicted best goes first."""
    assert drive(policy("size", {"a": 1.0, "b": 4.0})) == [
        ("a", 200),
        ("b", 200),
        ("a", 400),
        ("b", 400),
        ("a", 800),
        ("b", 800),
        ("a", 1600),
        ("b", 1600),
    ]


def test_compute_levelling_lets_the_cheap_model_climb_first() -> None:
    """After warm-up a (1 per sample) spends 1200 then 2400 before b's 800 (4800) is levelled."""
    assert drive(policy("compute", {"a": 1.0, "b": 4.0})) == [
        ("a", 200),
        ("b", 200),
        ("a", 400),
        ("b", 400),
        ("a", 800),
        ("a", 1600),
        ("b", 800),
        ("b", 1600),
    ]


def test_halving_keeps_its_round_state_on_the_schedule() -> None:
    """Four models at 1 per sample, no cap: the budget is the ladder's 4 x 3000 = 12000.

    Warm-up spends 2400 (200 and 400 each). Round 1: level max(9600 / (2 rounds x 4),
    1400) = 1400, everyone reaches 800; c and d (predicted worse, b ahead by order) are
    out. Round 2: the level rises by (12000 - 5600) / 2 to 4600 and a, b finish.
    """
    pol = policy("halving", {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0})
    points = drive(pol)
    assert points == [(m, s) for s in (200, 400, 800) for m in "abcd"] + [("a", 1600), ("b", 1600)]
    assert isinstance(pol.schedule, Halving)
    assert (pol.schedule.round, pol.schedule.level) == (2, pytest.approx(4600))
    assert [e.model for e in pol.eliminated] == ["c", "d"]
    assert pol.eliminated[0].reason.startswith("successive halving round 1: ranked 3 of 4")


class Scripted:
    """A schedule that hands out fixed points, then waits once, then stops with a reason."""

    def __init__(self, points: list[tuple[str, int]]) -> None:
        self.points = list(points)
        self.asked: list[list[str]] = []
        self.waited = False

    def pick(self, board: Board, active: list[ModelState]) -> Pick:
        self.asked.append([st.model for st in active])
        if self.points:
            return self.points.pop(0)
        if board.in_flight() and not self.waited:
            self.waited = True
            return None
        return "scripted stop"


def test_the_policy_delegates_to_its_schedule() -> None:
    """Whatever the schedule picks is handed out (and in flight); its stop reason is the run's."""
    pol = policy("size", {"a": 1.0, "b": 1.0})
    pol.schedule = Scripted([("b", 400), ("a", 200)])
    assert pol.next_point() == ("b", 400)
    assert pol.next_point() == ("a", 200)
    assert pol.in_flight() and pol.pending_cost() == pytest.approx(600)
    assert pol.next_point() is None  # waiting: not stopped while points are in flight
    assert pol.result().stop_reason == "not finished"
    pol.observe("b", 400, loss=1.0)
    pol.observe("a", 200, loss=1.0)
    assert pol.next_point() is None
    assert pol.result().stop_reason == "scripted stop"
    assert pol.next_point() is None  # stopped stays stopped, the schedule is not asked again
    assert len(pol.schedule.asked) == 4
