"""Selectors and metrics: hand-checked metrics, AtS reproduction, no peeking past the budget."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.science import selectors as select_mod
from core.science.curves import Curve, read_wide_csv
from core.science.metrics import (
    coverage,
    interval_ratio,
    interval_score,
    pearson,
    rel_acc,
    rmse_log,
)
from core.science.selectors import METHODS, ats_transition, select

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
SIZES = (0, *(200 * 2**k for k in range(14)))
TARGET = SIZES[-1]

# Published AtS numbers (README of ../shared/benchmarks, Lin et al. 2024, Table 1), %.
PUBLISHED_ATS = {
    "flan": {
        "pearson": [90.9, 73.1, 65.5, 61.1, 52.2, 50.5, 45.6],
        "rel_acc": [93.6, 93.2, 93.2, 93.2, 85.3, 93.2, 93.2],
    },
    "gigaword": {
        "pearson": [98.9, 97.6, 96.9, 92.0, 91.1, 89.1, 91.0],
        "rel_acc": [100.0, 91.4, 94.3, 100.0, 94.3, 94.3, 91.4],
    },
}
BUDGETS = (204800, 102400, 51200, 25600, 12800, 6400, 3200)


def law_curve(name: str, b: float, f: float, beta: float, e: float, params: float) -> Curve:
    d = np.asarray(SIZES, dtype=float)
    losses = b / (f + d**beta) + e
    return Curve(name, SIZES, tuple(float(v) for v in losses), params, "synthetic")


def zoo() -> list[Curve]:
    return [
        law_curve("a", 30.0, 8.0, 0.35, 1.0, 1e8),
        law_curve("b", 12.0, 3.0, 0.25, 1.2, 3e8),
        law_curve("c", 80.0, 20.0, 0.45, 0.9, 7e8),
        law_curve("d", 5.0, 1.5, 0.2, 1.5, 1.2e9),
    ]


# --- metrics by hand on a 4-model table ------------------------------------------------


def test_metrics_by_hand_on_four_models() -> None:
    truth = [2.0, 3.0, 1.0, 4.0]
    scores = [2.5, 3.0, 1.5, 3.5]
    # Pearson by its definition
    s, t = np.asarray(scores), np.asarray(truth)
    r = np.sum((s - s.mean()) * (t - t.mean())) / math.sqrt(
        np.sum((s - s.mean()) ** 2) * np.sum((t - t.mean()) ** 2)
    )
    assert pearson(scores, truth) == pytest.approx(r)
    # by hand: cov sum 3.25, sum sq 2.1875 and 5.0 -> 3.25 / sqrt(10.9375)
    assert pearson(scores, truth) == pytest.approx(0.982708, abs=1e-6)
    # chosen = lowest score = model 3 (truth 1.0, the best): RelAcc 1
    assert rel_acc(scores, truth) == 1.0
    # choose model 1 (truth 2.0): (4 - 2) / (4 - 1)
    assert rel_acc([0.5, 3.0, 1.5, 3.5], truth) == pytest.approx(2 / 3)
    # choose the worst: 0
    assert rel_acc([9.0, 9.0, 9.0, 0.1], truth) == 0.0
    # ties go to the first model, as argmin of Lin et al.'s ranks does
    assert rel_acc([1.0, 1.0, 2.0, 2.0], truth) == pytest.approx(2 / 3)
    # rmse_log over the models that predict a loss only
    got = rmse_log([2.2, None, 1.0, 4.0 * math.e], truth)
    assert got == pytest.approx(math.sqrt((math.log(1.1) ** 2 + 0 + 1.0) / 3))


def test_interval_metrics_by_hand_on_four_models() -> None:
    truth = [2.0, 3.0, 1.0, 4.0]
    low = [1.5, 3.2, 0.5, None]  # the second misses low, the fourth has no interval
    high = [2.5, 4.0, 0.9, None]  # the third misses high
    assert coverage(low, high, truth) == pytest.approx(1 / 3)
    # high / low: 2.5/1.5, 4/3.2, 0.9/0.5 -> median 1.6667
    assert interval_ratio(low, high) == pytest.approx(2.5 / 1.5)
    # at 90%, alpha = 0.1, penalty 2/alpha = 20 per unit outside:
    # model 1: width 1.0; model 2: width 0.8 + 20 * 0.2 = 4.8; model 3: 0.4 + 20 * 0.1 = 2.4
    assert interval_score(low, high, truth, 0.9) == pytest.approx((1.0 + 4.8 + 2.4) / 3)
    # at 50%, 2/alpha = 4: (1.0 + 0.8 + 0.8 + 0.4 + 0.4) / 3
    assert interval_score(low, high, truth, 0.5) == pytest.approx((1.0 + 1.6 + 0.8) / 3)
    assert coverage([None], [None], [1.0]) is None and interval_ratio([None], [None]) is None
    assert interval_score([None], [None], [1.0], 0.9) is None
    assert interval_ratio([0.0], [1.0]) == math.inf
    with pytest.raises(ValueError, match="level"):
        interval_score(low, high, truth, 1.0)


def test_metric_edge_cases() -> None:
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0  # constant scores: no information
    assert math.isnan(pearson([1.0], [2.0]))
    assert pearson([1.0, math.nan, 3.0, 2.0], [1.0, 5.0, 3.0, 2.0]) == pytest.approx(1.0)
    assert rmse_log([None, None], [1.0, 2.0]) is None
    assert rel_acc([2.0, 1.0], [3.0, 3.0]) == 1.0
    # an unscorable model (inf) ranks last and is never chosen
    assert rel_acc([math.inf, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(0.5)


# --- select() contract -----------------------------------------------------------------


def test_unknown_method_and_bad_budget_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown method 'oracle'") as exc:
        select("oracle", zoo(), 3200, TARGET)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="must be above the budget"):
        select("ats", zoo(), 3200, 3200)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "lensllm"])
def test_selection_shape_and_ranking(method: str) -> None:
    curves = zoo()
    sel = select(method, curves, 12800, TARGET)
    assert [p.model for p in sel.predictions] == [c.model for c in curves]
    assert sorted(sel.ranking) == sorted(c.model for c in curves)
    scores = {p.model: p.score for p in sel.predictions}
    assert [scores[m] for m in sel.ranking] == sorted(scores.values())
    assert sel.seconds >= 0
    assert all(p.ok for p in sel.predictions)


@pytest.mark.parametrize("method", ["rectified", "vanilla", "ats"])
def test_law_methods_predict_clean_curves_well(method: str) -> None:
    curves = zoo()
    sel = select(method, curves, 51200, TARGET)
    truth = [c.loss_at(TARGET) for c in curves]
    err = rmse_log([p.predicted for p in sel.predictions], truth)
    # the curves follow the rectified law: vanilla and AtS are misspecified for them
    assert err is not None and err < {"rectified": 0.02, "vanilla": 0.25, "ats": 0.25}[method]
    assert rel_acc([p.score for p in sel.predictions], truth) == 1.0


def test_modelsize_prefers_bigger_and_zeroshot_uses_column_zero() -> None:
    curves = zoo()
    assert select("modelsize", curves, 3200, TARGET).ranking[0] == "d"
    zs = select("zeroshot", curves, 3200, TARGET)
    assert [p.score for p in zs.predictions] == [c.losses[0] for c in curves]


@pytest.mark.parametrize("method", METHODS)
def test_selector_never_sees_past_the_budget(method: str, monkeypatch) -> None:
    budget = 6400
    clean = zoo()
    # poison every point past the budget, the target column included
    rng = np.random.default_rng(0)
    poisoned = [
        replace(
            c,
            losses=tuple(
                v if s <= budget else float(rng.uniform(0.01, 100.0))
                for s, v in zip(c.sizes, c.losses, strict=True)
            ),
        )
        for c in clean
    ]
    a, b = select(method, clean, budget, TARGET), select(method, poisoned, budget, TARGET)
    assert a.ranking == b.ranking
    assert [p.score for p in a.predictions] == [p.score for p in b.predictions]

    seen: list[int] = []
    real = select_mod.SELECTORS[method]

    def spy(curves, bud, tgt, seed):
        seen.extend(s for c in curves for s in c.sizes)
        return real(curves, bud, tgt, seed)

    monkeypatch.setitem(select_mod.SELECTORS, method, spy)
    select(method, clean, budget, TARGET)
    assert seen and max(seen) <= budget


def test_failed_fits_still_get_a_score_with_a_reason() -> None:
    short = Curve("short", (0, 200), (4.0, 3.5), 1e8)
    empty = Curve("empty", (), (), None)
    for method in ("rectified", "vanilla", "ats", "subtuning", "zeroshot", "modelsize"):
        sel = select(method, [*zoo(), short, empty], 3200, TARGET)
        by = {p.model: p for p in sel.predictions}
        assert not by["empty"].ok and by["empty"].reason
        assert sel.ranking[-1] == "empty"  # nothing to go on: ranked last
        if method in ("rectified", "vanilla"):
            assert not by["short"].ok and "too few points" in by["short"].reason
            assert by["short"].score == 3.5  # fallback: loss at the largest size seen


# --- AtS reproduction ----------------------------------------------------------------


def test_ats_transition_edge_cases() -> None:
    x = np.asarray([200.0, 400.0, 800.0])
    assert ats_transition(x, np.asarray([3.0, 2.5, 2.0])) == -1  # <= k points: keep all
    # a straight curve: nothing rejected, and the first point is still dropped (index 0)
    x = np.asarray([200.0 * 2**k for k in range(6)])
    assert ats_transition(x, 10 * x**-0.3 * (1 + 0.001 * np.sin(np.arange(6)))) == 0
    # a flat start: the stop lands on the last flat point
    y = np.where(x < 1600, 5.0, 5.0 * (x / 1600) ** -0.3) * (1 + 0.001 * np.cos(np.arange(6)))
    assert x[ats_transition(x, y) + 1] >= 1600


@pytest.mark.skipif(not (BENCH / "flan.csv").is_file(), reason="benchmark tables absent")
@pytest.mark.parametrize("dataset", ["flan", "gigaword"])
def test_ats_reproduces_published_numbers(dataset: str) -> None:
    curves = read_wide_csv(BENCH / f"{dataset}.csv")
    truth = [c.loss_at(TARGET) for c in curves]
    for i, budget in enumerate(BUDGETS):
        sel = select("ats", curves, budget, TARGET)
        scores = [p.score for p in sel.predictions]
        pc, ra = 100 * pearson(scores, truth), 100 * rel_acc(scores, truth)
        assert abs(pc - PUBLISHED_ATS[dataset]["pearson"][i]) <= 0.2, (dataset, budget, pc)
        assert abs(ra - PUBLISHED_ATS[dataset]["rel_acc"][i]) <= 0.2, (dataset, budget, ra)


# --- robustness --------------------------------------------------------------------------

positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def curve_sets(draw):
    n_models = draw(st.integers(min_value=1, max_value=4))
    out = []
    for i in range(n_models):
        n = draw(st.integers(min_value=0, max_value=9))
        start = draw(st.integers(min_value=0, max_value=1))
        sizes = tuple([0][: 1 - start] + [200 * 2**k for k in range(n)])
        losses = tuple(draw(st.lists(positive, min_size=len(sizes), max_size=len(sizes))))
        params = draw(st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e12)))
        out.append(Curve(f"m{i}", sizes, losses, params))
    return out


@settings(max_examples=20, deadline=None)
@given(curves=curve_sets(), budget_k=st.integers(min_value=0, max_value=8))
def test_no_selector_raises_on_arbitrary_positive_curves(curves, budget_k) -> None:
    budget = 200 * 2**budget_k
    for method in METHODS:
        sel = select(method, curves, budget, 1638400)
        assert len(sel.ranking) == len(curves)
        for p in sel.predictions:
            assert not math.isnan(p.score)
            assert p.ok or p.reason
            if method != "lensllm":
                assert "selector crashed" not in p.reason
