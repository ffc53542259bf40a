"""Law fits: recover planted parameters, fail with reasons, never raise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.science.laws import LAWS, fit_law
from core.science.spectrum import NTKSpectrum

SIZES = np.array([200 * 2**k for k in range(12)], dtype=float)


def noisy(law_fn, seed: int = 0, sigma: float = 0.003) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return law_fn(SIZES) * np.exp(rng.normal(0.0, sigma, SIZES.size))


def test_lensllm_recovers_planted_law() -> None:
    b, f, beta, e = 40.0, 8.0, 0.4, 1.2
    y = noisy(lambda d: b / (f + d**beta) + e, seed=1)
    fit = fit_law("lensllm", SIZES, y, zero_shot=b / f + e)
    assert fit.ok, fit.reason
    assert fit.params["beta"] == pytest.approx(beta, rel=0.15)
    assert fit.params["E"] == pytest.approx(e, rel=0.1)
    assert fit.params["B"] / fit.params["F"] == pytest.approx(b / f, rel=0.1)
    # extrapolation to 8x the last size stays within 2%
    target = 8 * SIZES[-1]
    truth = b / (f + target**beta) + e
    assert fit.predict([target])[0] == pytest.approx(truth, rel=0.02)
    assert fit.residual < 0.01


def test_vanilla_recovers_planted_law() -> None:
    b, beta, e = 12.0, 0.35, 0.8
    y = noisy(lambda d: b / d**beta + e, seed=2)
    fit = fit_law("vanilla", SIZES, y)
    assert fit.ok, fit.reason
    assert fit.params["beta"] == pytest.approx(beta, rel=0.15)
    assert fit.params["E"] == pytest.approx(e, rel=0.1)


def test_rectified_recovers_planted_law_with_zero_shot_point() -> None:
    b, f, beta, e = 60.0, 15.0, 0.45, 1.0
    y = noisy(lambda d: b / (f + d**beta) + e, seed=3)
    sizes = np.concatenate([[0.0], SIZES])
    losses = np.concatenate([[b / f + e], y])
    fit = fit_law("rectified", sizes, losses)
    assert fit.ok, fit.reason
    assert fit.params["A"] == pytest.approx(b / f + e, rel=0.02)
    assert fit.params["beta"] == pytest.approx(beta, rel=0.2)
    target = 8 * SIZES[-1]
    assert fit.predict([target])[0] == pytest.approx(b / (f + target**beta) + e, rel=0.03)
    # the D -> 0 limit is the zero-shot loss
    assert fit.predict([0.0])[0] == pytest.approx(b / f + e, rel=0.02)


def test_spectral_lensllm_nests_free_F_and_uses_the_spectrum() -> None:
    spec = NTKSpectrum((4.0, 1.0, 0.25), (0.5, 0.3, 0.2))
    b, beta, e = 30.0, 0.4, 1.1
    free = fit_law("lensllm", SIZES, noisy(lambda d: b / (5.0 + d**beta) + e, seed=4))
    fit = fit_law("lensllm", SIZES, noisy(lambda d: b / (5.0 + d**beta) + e, seed=4), spectrum=spec)
    assert fit.ok, fit.reason
    assert set(fit.params) == {"B", "s", "tau", "beta", "E"}
    assert fit.params["tau"] >= 0.0
    # starting from the free-F optimum (tau = 0), the spectral fit is never worse
    assert fit.residual <= free.residual + 1e-9
    assert np.all(np.isfinite(fit.predict(SIZES)))


def test_fits_are_deterministic_per_seed() -> None:
    y = noisy(lambda d: 20.0 / (3.0 + d**0.3) + 1.0, seed=5)
    for law in LAWS:
        a, b = fit_law(law, SIZES, y, seed=7), fit_law(law, SIZES, y, seed=7)
        assert a.params == b.params


@pytest.mark.parametrize(
    ("sizes", "losses", "needle"),
    [
        ([200, 400], [3.0, 2.9], "too few points"),
        ([200, 400, 800, 1600], [3.0, math.nan, 2.5, 2.4], "non-finite"),
        ([200, 400, 800, 1600], [3.0, -1.0, 2.5, 2.4], "positive"),
        ([200, 400, 800], [3.0, 2.9], "sizes but"),
    ],
)
def test_bad_input_is_a_failed_result_with_a_reason(sizes, losses, needle) -> None:
    for law in LAWS:
        fit = fit_law(law, sizes, losses)
        assert not fit.ok
        assert needle in fit.reason
        assert np.all(np.isnan(fit.predict([1e6])))
        assert fit.to_dict()["residual"] is None


def test_unknown_law_is_a_failed_result() -> None:
    fit = fit_law("chinchilla", SIZES, np.linspace(3, 2, SIZES.size))
    assert not fit.ok and "unknown law" in fit.reason


curves = st.lists(
    st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=14,
)


@settings(max_examples=25, deadline=None)
@given(losses=curves, zero=st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e3)))
def test_no_fit_raises_on_arbitrary_positive_curves(losses, zero) -> None:
    sizes = [200 * 2**k for k in range(len(losses))]
    for law in LAWS:
        fit = fit_law(law, sizes, losses, zero_shot=zero)
        assert fit.ok or fit.reason
        if fit.ok:
            assert math.isfinite(fit.residual)
            assert fit.predict(sizes).shape == (len(sizes),)


def test_a_fit_with_infinite_parameters_is_never_ok() -> None:
    """Sizes up to 1e50 drive B and F to inf in log space: a failed fit, not ok=True."""
    sizes = [1e25, 1e50, 1e125, 1e150, 1e250]
    losses = [7.34, 7.11, 9.32, 1.15, 7.29]
    fit = fit_law("lensllm", sizes, losses, seed=0)
    assert not fit.ok and "non-finite fit" in fit.reason and "B=inf" in fit.reason
    for law in LAWS:
        f = fit_law(law, sizes, losses, seed=0)
        assert not f.ok or all(math.isfinite(v) for v in (*f.params.values(), f.residual))
