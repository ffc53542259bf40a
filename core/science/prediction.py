"""What a selector says about one model and about a set of them.

Kept apart from the selectors so the flagship predictor, the policy and the
run records can all speak of predictions without importing every selector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.science.laws import FitResult


@dataclass(frozen=True)
class Prediction:
    """One model's score under a selector (lower ranks first)."""

    model: str
    score: float
    predicted: float | None = None
    """Predicted loss at the target, for methods that predict one."""
    low: float | None = None
    high: float | None = None
    """Interval around ``predicted``, for methods that give one."""
    transition: int | None = None
    """First size of the power phase, where the method finds one."""
    fit: FitResult | None = None
    ok: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "score": _finite_or_none(self.score),
            "predicted": self.predicted,
            "low": self.low,
            "high": self.high,
            "transition": self.transition,
            "fit": None if self.fit is None else self.fit.to_dict(),
            "ok": self.ok,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Selection:
    """A selector's verdict: predictions in input order and the ranking, best first."""

    method: str
    budget: int
    target: int
    predictions: tuple[Prediction, ...]
    ranking: tuple[str, ...]
    seconds: float
    level: float | None = None
    """Two-sided level of the predictions' (low, high) intervals; None: no intervals."""

    @property
    def chosen(self) -> str:
        return self.ranking[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "budget": self.budget,
            "target": self.target,
            "predictions": [p.to_dict() for p in self.predictions],
            "ranking": list(self.ranking),
            "seconds": self.seconds,
            "level": self.level,
        }


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# --- simple selectors -------------------------------------------------------------
