"""The ladder and the zero-shot-first start behind the policy interface the runner loops over."""

from __future__ import annotations

import math

from core.policy.adaptive import AdaptiveConfig, AdaptivePolicy, Estimate, per_model
from core.policy.ladder import LadderPolicy
from core.policy.warm_start import ZeroShotFirst


def drain(policy, loss=lambda m, s: 3.0 - s / 1000) -> list[tuple[str, int]]:
    out = []
    while (step := policy.next_point()) is not None:
        out.append(step)
        policy.observe(*step, loss(*step))
    return out


def test_ladder_runs_every_model_on_zero_then_every_size_in_order() -> None:
    assert drain(LadderPolicy(["a", "b"], [200, 400])) == [
        ("a", 0), ("a", 200), ("a", 400), ("b", 0), ("b", 200), ("b", 400),
    ]  # fmt: skip


def test_on_several_workers_a_models_largest_sizes_go_first_after_zero_shot() -> None:
    assert drain(LadderPolicy(["a", "b"], [200, 400, 800], largest_first=True)) == [
        ("a", 0), ("a", 800), ("a", 400), ("a", 200), ("b", 0), ("b", 800), ("b", 400), ("b", 200),
    ]  # fmt: skip


def test_a_failed_model_drops_the_rest_of_its_plan_and_counts_it() -> None:
    ladder = LadderPolicy(["a", "b"], [200, 400])
    assert ladder.next_point() == ("a", 0)
    ladder.observe("a", 0, 3.0)
    assert ladder.next_point() == ("a", 200)
    ladder.fail("a", "point at size 200 failed")
    assert ladder.dropped == 1  # ("a", 400) will never run
    assert drain(ladder) == [("b", 0), ("b", 200), ("b", 400)]
    assert ladder.eliminated == ()


def _power_law(curve):
    sizes = [s for s in curve.sizes if s > 0]
    if len(sizes) < 2:
        return Estimate(None, ok=False, reason="too few points")
    return Estimate(curve.losses[-1] * 0.9, curve.losses[-1] * 0.85, curve.losses[-1] * 0.95)


def test_zero_shot_first_then_the_adaptive_policy_built_from_the_survivors() -> None:
    built: list[list[str]] = []

    def build(names: list[str]) -> AdaptivePolicy:
        built.append(names)
        return AdaptivePolicy(
            names,
            [200, 400, 800],
            3200,
            {n: 1.0 for n in names},
            per_model(_power_law),
            AdaptiveConfig(min_points=2, max_cost_fraction=None),
        )

    policy = ZeroShotFirst(["a", "b", "c"], build)
    assert policy.next_point() == ("a", 0)
    policy.observe("a", 0, 3.0)
    assert policy.next_point() == ("b", 0)
    policy.fail("b", "cannot load b")
    assert policy.next_point() == ("c", 0)
    assert policy.policy is None and policy.eliminated == () and policy.dropped == 0
    policy.observe("c", 0, 3.5)
    step = policy.next_point()
    assert built == [["a", "c"]] and policy.policy is not None
    assert step is not None and step[1] > 0 and step[0] in ("a", "c")
    consumed = policy.policy.result().consumed
    assert consumed[:2] == (("a", 0), ("c", 0))  # zero-shot losses were handed over
    assert all(math.isfinite(c) for c in (policy.policy.cost,))


def test_zero_shot_first_with_every_model_failed_asks_for_nothing() -> None:
    policy = ZeroShotFirst(["a"], lambda names: (_ for _ in ()).throw(AssertionError("built")))
    assert policy.next_point() == ("a", 0)
    policy.fail("a", "cannot load a")
    assert policy.next_point() is None
