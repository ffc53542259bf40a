"""The NTK spectrum the LensLLM law consumes, and its F(Theta, t) term.

Kept apart from core/ntk.py (which needs torch) so that the curve science in
core/laws.py can use a spectrum, stored or replayed, with numpy alone.

Linearised training for time t under the empirical NTK Theta = U diag(lambda) U^T
leaves the residual exp(-eta Theta t) r0, whose squared norm is
F(Theta, t) = sum_k exp(-2 eta lambda_k t) (u_k . r0)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NTKSpectrum:
    """Eigenvalues (descending, >= 0) of Theta and the weights (u_k . r0)^2."""

    eigenvalues: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.eigenvalues) != len(self.weights):
            raise ValueError("eigenvalues and weights must have the same length")
        if not self.eigenvalues:
            raise ValueError("an NTK spectrum needs at least one eigenvalue")

    @classmethod
    def from_kernel(cls, theta: np.ndarray, r0: np.ndarray) -> NTKSpectrum:
        """Eigen-decompose a symmetric kernel and project the initial residual on it."""
        theta = np.asarray(theta, dtype=np.float64)
        r0 = np.asarray(r0, dtype=np.float64).reshape(-1)
        if theta.shape != (r0.size, r0.size):
            raise ValueError(f"kernel {theta.shape} does not match residual of {r0.size}")
        lam, u = np.linalg.eigh(0.5 * (theta + theta.T))
        order = np.argsort(lam)[::-1]
        lam = np.clip(lam[order], 0.0, None)  # PSD up to round-off
        w = (u[:, order].T @ r0) ** 2
        return cls(tuple(float(x) for x in lam), tuple(float(x) for x in w))

    @property
    def trace(self) -> float:
        return float(np.sum(self.eigenvalues))

    @property
    def effective_rank(self) -> float:
        """exp(entropy) of the normalised eigenvalues (Roy & Vetterli, 2007)."""
        lam = np.asarray(self.eigenvalues, dtype=np.float64)
        total = lam.sum()
        if total <= 0:
            return 0.0
        p = lam[lam > 0] / total
        return float(np.exp(-np.sum(p * np.log(p))))

    def top(self, k: int = 5) -> tuple[float, ...]:
        return tuple(self.eigenvalues[:k])

    def F(self, t: float | np.ndarray, eta: float = 1.0) -> np.ndarray:
        """F(Theta, t) = sum_k exp(-2 eta lambda_k t) (u_k . r0)^2, vectorised over t."""
        lam = np.asarray(self.eigenvalues, dtype=np.float64)
        w = np.asarray(self.weights, dtype=np.float64)
        t_arr = np.asarray(t, dtype=np.float64)
        return np.exp(-2.0 * eta * np.multiply.outer(t_arr, lam)) @ w

    def to_dict(self) -> dict[str, object]:
        return {"eigenvalues": list(self.eigenvalues), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> NTKSpectrum:
        return cls(
            tuple(float(x) for x in raw["eigenvalues"]),  # type: ignore[union-attr]
            tuple(float(x) for x in raw["weights"]),  # type: ignore[union-attr]
        )
