"""The adaptive policy: never peeks at the target, charges cost right, keeps the true best."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import least_squares

from core.policy.adaptive import (
    AdaptiveConfig,
    AdaptiveError,
    AdaptivePolicy,
    Estimate,
    TargetColumnRead,
    interval_at,
    per_model,
)
from core.policy.replay import TableGuard, fixed_budget_cost_fraction, replay
from core.science.curves import Curve

LADDER = (200, 400, 800, 1600, 3200, 6400, 12800)
TARGET = 102400


def law(d: np.ndarray, b: float, beta: float, e: float) -> np.ndarray:
    return b / d**beta + e


def synthetic_table(seed: int, n: int = 6, noise: float = 0.005) -> list[Curve]:
    """Curves B / D^beta + E with asymptotes E at least 0.3 apart, 0.5% noise, target column."""
    rng = np.random.default_rng(seed)
    es = 1.0 + 0.3 * rng.permutation(n) + rng.uniform(0, 0.05, n)
    sizes = (0, *LADDER, TARGET)
    out = []
    for i in range(n):
        b = rng.uniform(5, 40)
        beta = rng.uniform(0.3, 0.6)
        d = np.asarray((*LADDER, TARGET), dtype=float)
        y = law(d, b, beta, es[i]) * np.exp(rng.normal(0, noise, d.size))
        y[-1] = law(np.asarray([TARGET], float), b, beta, es[i])[0]  # the truth, noise-free
        zero = float(es[i] + b / 50**beta)
        params = float(rng.choice([1e8, 3e8, 1e9, 3e9]))
        out.append(Curve(f"m{i}", sizes, (zero, *map(float, y)), params))
    return out


def law_predictor(target: int, level: float = 0.9):
    """A stand-in for the flagship: fit B/D^beta + E in log space, interval from residuals.

    The half-width adds a term growing with the extrapolation distance, the part of
    the error the residuals cannot see.
    """
    z = 1.6448536269514722  # 90% two-sided

    def predict(curve: Curve) -> Estimate:
        d = np.asarray([s for s in curve.sizes if s > 0], float)
        y = np.asarray([v for s, v in zip(curve.sizes, curve.losses, strict=True) if s > 0])
        if d.size < 3:
            return Estimate(None, ok=False, reason="too few points")

        def res(p: np.ndarray) -> np.ndarray:
            return np.log(law(d, math.exp(p[0]), p[1], p[2])) - np.log(y)

        fit = least_squares(
            res, x0=[math.log(10.0), 0.4, 0.5 * y.min()], bounds=([-5, 0.01, 0], [10, 2, y.min()])
        )
        pred = float(law(np.asarray([target], float), math.exp(fit.x[0]), *fit.x[1:])[0])
        sd = math.sqrt(float(np.mean(fit.fun**2)) + (0.03 * math.log2(target / d[-1])) ** 2)
        return Estimate(pred, pred * math.exp(-z * sd), pred * math.exp(z * sd), level=level)

    return predict


def true_best(curves: list[Curve]) -> str:
    return min(curves, key=lambda c: c.loss_at(TARGET)).model


def test_guard_refuses_target_column_and_logs_reads() -> None:
    curves = synthetic_table(0)
    guard = TableGuard(curves, TARGET)
    assert guard.read("m0", 200) == curves[0].loss_at(200)
    with pytest.raises(TargetColumnRead):
        guard.read("m0", TARGET)
    assert guard.reads == [("m0", 200)]


def test_replay_never_reads_the_target_column(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    original = TableGuard.read

    def spy(self: TableGuard, model: str, size: int) -> float:
        reads.append(size)
        return original(self, model, size)

    monkeypatch.setattr(TableGuard, "read", spy)
    res = replay(
        synthetic_table(1), TARGET, per_model(law_predictor(TARGET)), AdaptiveConfig(gamma=1e-9)
    )
    assert reads and max(reads) < TARGET
    assert all(s < TARGET for _, s in res.consumed)


def test_policy_refuses_a_point_at_the_target() -> None:
    pol = AdaptivePolicy(["a"], LADDER, TARGET, {"a": 1.0}, per_model(law_predictor(TARGET)))
    with pytest.raises(TargetColumnRead):
        pol.observe("a", TARGET, 1.0)


def constant_predictor(values: dict[str, tuple[float, float, float]]):
    return lambda c: Estimate(*values[c.model], level=0.9)


def test_cost_accounting_by_hand() -> None:
    """Three models, params 1, 2 and 5, ladder 200/400/800, target 1600.

    'a' and 'b' are tied (overlapping intervals); 'c' is far above from its first
    judged fit and is eliminated once it has min_points=2 points. Nobody stabilises
    (the predictions move), so 'a' and 'b' run the whole ladder.
    """
    calls = {"a": 0, "b": 0, "c": 0}

    def predictor(curve: Curve) -> Estimate:
        calls[curve.model] += 1
        k = calls[curve.model]
        base = {"a": 1.0, "b": 1.05, "c": 3.0}[curve.model] * (1 + 0.5 / k)  # keeps moving
        return Estimate(base, base * 0.8, base * 1.25, level=0.9)

    curves = [
        Curve("a", (0, 200, 400, 800, 1600), (3, 2, 1.8, 1.6, 1.0), 1.0),
        Curve("b", (0, 200, 400, 800, 1600), (3, 2, 1.8, 1.6, 1.1), 2.0),
        Curve("c", (0, 200, 400, 800, 1600), (3, 2.5, 2.4, 2.3, 2.0), 5.0),
    ]
    res = replay(
        curves,
        1600,
        per_model(predictor),
        AdaptiveConfig(min_points=2, confidence=0.9, max_cost_fraction=None, schedule="challenger"),
    )
    assert [e.model for e in res.eliminated] == ["c"]
    # a, b: 200 + 400 + 800 each; c: 200 + 400, then out.
    assert res.cost == pytest.approx(1 * 1400 + 2 * 1400 + 5 * 600)
    assert res.full_cost == pytest.approx((1 + 2 + 5) * 1600)
    assert res.cost_fraction == pytest.approx(7200 / 12800)
    assert res.ladder_cost == pytest.approx(8 * 1400)
    assert res.eliminated[0].compute_saved == pytest.approx(5 * 800)
    assert res.largest_size == 800
    assert res.ranking[-1] == "c"
    assert fixed_budget_cost_fraction(curves, 400, 1600) == pytest.approx(8 * 600 / 12800)


def test_successive_halving_by_hand() -> None:
    """Four models, costs per sample 1, 1, 2, 4; ladder 200..3200; target 6400; budget 0.5.

    full = 8 x 6400 = 51200, so the budget is 25600. Warm-up (min_points=2): every
    model gets 200 and 400 (a, b 600 each, c 1200, d 2400: 4800). Round 1: two
    rounds are left for 4 survivors, so the level is (25600 - 4800) / (2 x 4) = 2600:
    a and b reach 800 (1400 each); c's 800 (2800) and d's 800 (5600) do not fit.
    Halving keeps the best 2 by prediction: c and d are out. Round 2: the level rises
    by (25600 - 6400) / (1 x 2) = 9600 to 12200, enough for a and b to finish the
    ladder (6200 each). The predictions keep moving, so nobody converges early.
    """
    calls = {"a": 0, "b": 0, "c": 0, "d": 0}

    def predictor(curve: Curve) -> Estimate:
        calls[curve.model] += 1
        base = {"a": 1.0, "b": 1.1, "c": 1.2, "d": 1.3}[curve.model]
        base *= 1 + 0.5 / calls[curve.model]
        return Estimate(base, base * 0.8, base * 1.25, level=0.9)

    ladder = (200, 400, 800, 1600, 3200)
    sizes = (0, *ladder, 6400)
    curves = [
        Curve(m, sizes, (3.0, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5), float(p))
        for m, p in zip("abcd", (1, 1, 2, 4), strict=True)
    ]
    res = replay(
        curves,
        6400,
        per_model(predictor),
        AdaptiveConfig(min_points=2, max_cost_fraction=0.5, schedule="halving", eta=2),
    )
    trained = [(m, s) for m, s in res.consumed if s > 0]
    assert trained == [
        *[(m, 200) for m in "abcd"],
        *[(m, 400) for m in "abcd"],
        ("a", 800),
        ("b", 800),
        ("a", 1600),
        ("b", 1600),
        ("a", 3200),
        ("b", 3200),
    ]
    assert [e.model for e in res.eliminated] == ["c", "d"]
    assert "ranked 3 of 4" in res.eliminated[0].reason
    assert res.eliminated[0].compute_saved == pytest.approx(2 * (800 + 1600 + 3200))
    assert res.eliminated[1].compute_saved == pytest.approx(4 * (800 + 1600 + 3200))
    assert res.cost == pytest.approx(6200 + 6200 + 1200 + 2400)
    assert res.cost_fraction == pytest.approx(16000 / 51200)
    assert res.best == "a" and res.ranking[:2] == ("a", "b")


def test_reported_cost_overrides_the_table_charge() -> None:
    """On a live run the runner reports FLOPs per point; those are what is charged."""
    pol = AdaptivePolicy(
        ["a"], (200, 400), 800, {"a": 6.0 * 10 * 50}, per_model(lambda c: Estimate(1.0))
    )
    pol.observe("a", 0, 3.0, cost=0.0)
    pol.observe("a", 200, 2.0, cost=123.0)
    assert pol.full_cost == pytest.approx(123.0 / 200 * 800)  # cost per sample re-measured
    pol.observe("a", 400, 1.9)  # unreported: charged at the measured cost per sample
    assert pol.cost == pytest.approx(123.0 + 123.0 / 200 * 400)


def test_interval_rescaling_widens_with_confidence() -> None:
    est = Estimate(2.0, 1.8, 2.3, level=0.9)
    assert interval_at(est, 0.9) == pytest.approx((1.8, 2.3))
    lo, hi = interval_at(est, 0.99)
    assert lo < 1.8 and hi > 2.3
    lo, hi = interval_at(est, 0.5)
    assert 1.8 < lo < 2.0 < hi < 2.3


@settings(max_examples=60, deadline=None)
@given(
    truths=st.lists(st.floats(1.0, 5.0), min_size=2, max_size=6, unique=True),
    data=st.data(),
)
def test_honest_intervals_never_eliminate_the_true_best(truths: list[float], data) -> None:
    """If every interval contains the truth, the true best can never be eliminated.

    Centres and widths are arbitrary (hypothesis picks them per fit), so this checks
    the racing logic (which ends it compares, the rescaling) independently of any
    predictor's quality. Racing only: successive halving drops by rank, by design.
    """
    models = [f"m{i}" for i in range(len(truths))]
    truth = dict(zip(models, truths, strict=True))

    def predictor(curve: Curve) -> Estimate:
        t = truth[curve.model]
        lo = t * data.draw(st.floats(0.5, 1.0))
        hi = t * data.draw(st.floats(1.0, 2.0))
        centre = data.draw(st.floats(lo, hi))
        return Estimate(centre, lo, hi, level=0.8)

    pol = AdaptivePolicy(
        models,
        LADDER,
        TARGET,
        {m: 1.0 + i for i, m in enumerate(models)},
        per_model(predictor),
        AdaptiveConfig(confidence=0.8, min_points=2, schedule="challenger"),
    )
    while (step := pol.next_point()) is not None:
        pol.observe(step[0], step[1], 1.0)
    best = min(truth, key=truth.__getitem__)
    assert best not in {e.model for e in pol.result().eliminated}


@pytest.mark.parametrize("schedule", ["halving", "challenger", "compute", "size"])
@pytest.mark.parametrize("seed", range(6))
def test_fitted_law_elimination_keeps_the_true_best(seed: int, schedule: str) -> None:
    """Seeded sweep over synthetic tables with well-separated asymptotes, every schedule.

    No budget cap: the ladder here is short next to the target, so a 5% budget would
    stop the policy before any model can be judged.
    """
    curves = synthetic_table(seed)
    cfg = AdaptiveConfig(confidence=0.9, schedule=schedule, max_cost_fraction=None)
    res = replay(curves, TARGET, per_model(law_predictor(TARGET)), cfg)
    best = true_best(curves)
    assert best not in {e.model for e in res.eliminated}
    assert res.best == best
    assert res.eliminated, "well-separated curves should let the policy drop someone"
    assert res.cost < res.ladder_cost


def test_replay_is_deterministic() -> None:
    curves = synthetic_table(3)
    a = replay(curves, TARGET, per_model(law_predictor(TARGET)))
    b = replay(curves, TARGET, per_model(law_predictor(TARGET)))
    assert a == b


def test_budget_cap_is_never_exceeded() -> None:
    curves = synthetic_table(4)
    res = replay(
        curves,
        TARGET,
        per_model(law_predictor(TARGET)),
        AdaptiveConfig(gamma=1e-9, max_cost_fraction=0.02),
    )
    assert res.cost_fraction <= 0.02
    assert "budget" in res.stop_reason


def test_predictor_failure_is_a_result_not_a_crash() -> None:
    def broken(curve: Curve) -> Estimate:
        raise RuntimeError("boom")

    res = replay(synthetic_table(5, n=3), TARGET, per_model(broken))
    assert len(res.ranking) == 3
    assert all(o.predicted is None for o in res.outcomes)
    assert "predictor failed: boom" in res.outcomes[0].reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gamma": 0.0},
        {"gamma": 1.5},
        {"tau": 0},
        {"confidence": 1.0},
        {"min_points": 1},
        {"max_cost_fraction": 0.0},
        {"schedule": "random"},
        {"eta": 1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(AdaptiveError):
        AdaptiveConfig(**kwargs)


def test_policy_rejects_bad_setup() -> None:
    with pytest.raises(AdaptiveError, match="cost per sample"):
        AdaptivePolicy(["a"], LADDER, TARGET, {}, per_model(law_predictor(TARGET)))
    with pytest.raises(AdaptiveError, match="below the target"):
        AdaptivePolicy(["a"], (TARGET,), TARGET, {"a": 1.0}, per_model(law_predictor(TARGET)))


def test_bench_records_carry_cost_fraction() -> None:
    from core.bench import RECORD_KEYS, Table, run_bench

    curves = synthetic_table(6, n=4)
    recs = run_bench(
        [Table("synth", tuple(curves))], ["ats", "zeroshot", "adaptive"], [800], TARGET
    )
    assert all(tuple(r) == RECORD_KEYS for r in recs) and "cost_fraction" in RECORD_KEYS
    ats, zeroshot, adaptive = recs
    params = sum(c.params for c in curves)  # type: ignore[misc]
    by_hand = sum(c.params * (200 + 400 + 800) for c in curves) / (params * TARGET)  # type: ignore[operator]
    assert ats["cost_fraction"] == pytest.approx(by_hand)
    assert zeroshot["cost_fraction"] == 0.0
    assert adaptive["method"] == "adaptive" and 0 < adaptive["cost_fraction"] <= 1
    assert adaptive["budget"] < TARGET and adaptive["ratio"] == adaptive["budget"] / TARGET
