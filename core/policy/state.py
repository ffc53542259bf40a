"""What the adaptive policy knows about each candidate: its estimate and its points so far.

Kept apart from the policy so that the schedules (core/policy/schedules.py) can
read a model's state without importing the policy that drives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STATUSES = ("active", "converged", "exhausted", "eliminated", "failed")


@dataclass(frozen=True)
class Estimate:
    """A predictor's answer for one model: predicted target loss and an interval."""

    predicted: float | None
    low: float | None = None
    high: float | None = None
    level: float = 0.9
    """Two-sided confidence the predictor gives its (low, high) interval."""
    ok: bool = True
    reason: str = ""

    @property
    def usable(self) -> bool:
        return (
            self.ok
            and self.predicted is not None
            and math.isfinite(self.predicted)
            and self.predicted > 0
        )


@dataclass
class ModelState:
    """One candidate as the policy tracks it (one of STATUSES)."""

    model: str
    unit_cost: float
    sizes: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    cost: float = 0.0
    estimate: Estimate | None = None
    moves: list[float] = field(default_factory=list)
    """|change of log predicted target loss| between successive usable fits."""
    stable: int = 0
    status: str = "active"
    reason: str = ""
    pending: dict[int, float] = field(default_factory=dict)
    """Sizes handed out by next_point and not yet observed, with their estimated cost."""
    fitted_at: int = 0
    """How many points the run had consumed when ``estimate`` was made."""

    @property
    def trained(self) -> int:
        return sum(1 for s in self.sizes if s > 0)

    @property
    def top(self) -> int:
        return max(self.sizes, default=0)

    @property
    def claimed(self) -> int:
        """Trained points plus those in flight: what the schedules level by."""
        return self.trained + sum(1 for s in self.pending if s > 0)

    @property
    def reach(self) -> int:
        """The largest size measured or in flight: the next point goes past it."""
        return max(self.top, max(self.pending, default=0))

    @property
    def predicted_or_inf(self) -> float:
        """The usable predicted target loss, or inf: how models are ordered (unknown last)."""
        est = self.estimate
        if est is None or not est.usable or est.predicted is None:
            return math.inf
        return est.predicted
