"""Phase transition detection on planted and straight curves."""

from __future__ import annotations

import numpy as np
import pytest

from core.science.curves import Curve
from core.science.phase import detect_transition

SIZES = [200 * 2**k for k in range(12)]


def broken(knot: int, seed: int = 0) -> list[float]:
    """Flat-ish (slope -0.02) before ``knot``, slope -0.3 after, 0.2% noise."""
    rng = np.random.default_rng(seed)
    x = np.log(np.asarray(SIZES, dtype=float))
    xk = np.log(knot)
    ly = 1.0 - 0.02 * (x - xk) - 0.28 * np.maximum(x - xk, 0.0)
    return list(np.exp(ly + rng.normal(0, 0.002, x.size)))


@pytest.mark.parametrize("knot", [1600, 6400, 25600])
def test_finds_a_planted_transition(knot: int) -> None:
    t = detect_transition((SIZES, broken(knot)))
    assert t.size == knot
    assert t.confidence > 0.5


def test_a_straight_curve_has_no_pre_power_phase() -> None:
    x = np.asarray(SIZES, dtype=float)
    t = detect_transition(Curve("m", (0, *SIZES), (5.0, *(10 * x**-0.2))))
    assert t.size == SIZES[0]
    assert "no pre-power" in t.reason


def test_a_blurred_transition_is_less_certain() -> None:
    sharp = detect_transition((SIZES, broken(3200, seed=1)))
    rng = np.random.default_rng(1)
    noisy = [v * np.exp(rng.normal(0, 0.03)) for v in broken(3200, seed=1)]
    blurred = detect_transition((SIZES, noisy))
    assert 0.0 <= blurred.confidence < sharp.confidence <= 1.0


def test_too_few_points_cannot_be_judged() -> None:
    t = detect_transition(([200, 400, 800], [3.0, 2.9, 2.8]))
    assert t.size is None and t.confidence == 0.0 and "too few" in t.reason


def test_bad_input_is_a_reason_not_an_exception() -> None:
    assert detect_transition(([200, 400], [1.0])).size is None
    assert detect_transition((["a"], [1.0])).size is None
