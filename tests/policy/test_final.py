"""The end of an adaptive run: predictions refitted on everything measured, stale ones marked."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.policy.adaptive import Estimate, per_model
from core.policy.final import refit_result
from core.policy.replay import replay, selector_predictor
from core.science.curves import Curve
from tests.policy.test_adaptive import TARGET, law_predictor, synthetic_table


def _replayed(seed: int = 4):
    curves = synthetic_table(seed, n=6)
    return curves, replay(curves, TARGET, per_model(law_predictor(TARGET)))


def test_the_run_marks_estimates_made_before_its_last_point_stale() -> None:
    _, res = _replayed()
    eliminated = [o for o in res.outcomes if o.status == "eliminated"]
    assert eliminated and all(o.stale for o in eliminated)
    last_model = res.consumed[-1][0]
    assert not next(o for o in res.outcomes if o.model == last_model).stale


def test_refit_refreshes_every_prediction_from_all_measured_points() -> None:
    curves, res = _replayed()
    seen: list[list[str]] = []

    def pooled(cs: Sequence[Curve]) -> list[Estimate]:
        seen.append([c.model for c in cs])
        by = {c.model: c for c in curves}
        # every curve is exactly what the policy measured, nothing past it
        for c in cs:
            assert max(c.sizes) < TARGET and all(
                by[c.model].loss_at(s) == v for s, v in zip(c.sizes, c.losses, strict=True)
            )
        return [Estimate(1.0 + i, 0.9 + i, 1.1 + i) for i, _ in enumerate(cs)]

    measured = [
        Curve(
            o.model,
            o.sizes,
            tuple(next(c for c in curves if c.model == o.model).loss_at(s) for s in o.sizes),
        )
        for o in res.outcomes
    ]
    out = refit_result(res, measured, pooled)
    assert len(seen) == 1 and len(seen[0]) == len(curves)  # one pooled call, every model
    assert not any(o.stale for o in out.outcomes)
    assert [o.predicted for o in out.outcomes] == [1.0 + i for i in range(len(curves))]
    # groups kept: survivors first, then eliminated, each ordered by the refit
    status = {o.model: o.status for o in out.outcomes}
    groups = [status[m] == "eliminated" for m in out.ranking]
    assert groups == sorted(groups)
    assert out.cost == res.cost and out.consumed == res.consumed


def test_a_failed_refit_keeps_the_old_prediction_marked_stale() -> None:
    _, res = _replayed()

    def broken(cs: Sequence[Curve]) -> list[Estimate]:
        raise RuntimeError("no GPU today")

    measured = [Curve(o.model, o.sizes, (3.0,) * len(o.sizes)) for o in res.outcomes]
    out = refit_result(res, measured, broken)
    for old, new in zip(res.outcomes, out.outcomes, strict=True):
        assert new.predicted == old.predicted
        assert new.stale == (old.predicted is not None)
        if old.predicted is not None:
            assert "final refit failed: no GPU today" in new.reason


def test_replay_with_the_pooled_flagship_as_final_predictor() -> None:
    curves = synthetic_table(7, n=5)
    final = selector_predictor("lensllm", TARGET, pooled=True)
    res = replay(curves, TARGET, selector_predictor("lensllm", TARGET), final=final)
    assert all(not o.stale for o in res.outcomes if o.predicted is not None)
    assert res.ranking[0] in {o.model for o in res.outcomes if o.status != "eliminated"}
    for o in res.outcomes:
        if o.predicted is not None:
            assert o.low is not None and o.high is not None
            assert o.low <= o.predicted <= o.high
    assert res.cost_fraction == pytest.approx(
        replay(curves, TARGET, selector_predictor("lensllm", TARGET)).cost_fraction
    )
