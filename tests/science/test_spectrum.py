from __future__ import annotations

import numpy as np
import pytest

from core.science.spectrum import NTKSpectrum


def test_from_kernel_matches_matrix_exponential() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(6, 20))
    theta = g @ g.T
    r0 = rng.normal(size=6)
    spec = NTKSpectrum.from_kernel(theta, r0)
    assert spec.eigenvalues == tuple(sorted(spec.eigenvalues, reverse=True))
    assert spec.trace == pytest.approx(np.trace(theta))
    assert spec.F(0.0) == pytest.approx(r0 @ r0)  # no training: the full residual
    # F(t) = ||exp(-eta Theta t) r0||^2 computed directly
    lam, u = np.linalg.eigh(theta)
    t, eta = 0.01, 0.5
    direct = u @ np.diag(np.exp(-eta * lam * t)) @ u.T @ r0
    assert spec.F(t, eta) == pytest.approx(direct @ direct, rel=1e-9)
    assert np.all(np.diff(spec.F(np.linspace(0, 1, 5))) <= 0)  # training shrinks the residual


def test_effective_rank_bounds() -> None:
    flat = NTKSpectrum((1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0))
    spike = NTKSpectrum((1.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0))
    assert flat.effective_rank == pytest.approx(4.0)
    assert spike.effective_rank == pytest.approx(1.0)


def test_round_trip_and_validation() -> None:
    spec = NTKSpectrum((2.0, 1.0), (0.5, 0.25))
    assert NTKSpectrum.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        NTKSpectrum((1.0,), (1.0, 2.0))
