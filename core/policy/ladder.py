"""The ladder policy, and the interface every policy offers the runner.

The runner has one loop: ask the policy for the next (model, size), run it,
tell the policy what it measured (or that the model failed). The ladder is the
plain schedule behind that interface: every model, one after the other, on the
zero-shot point and then every ladder size, with nothing eliminated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from core.policy.adaptive import Elimination


class Policy(Protocol):
    """What the runner's loop needs of a schedule."""

    def next_point(self) -> tuple[str, int] | None:
        """The (model, size) to measure next, or None when the policy is done."""
        ...

    def observe(self, model: str, size: int, loss: float, cost: float | None = None) -> object:
        """A point was measured (``cost``: its training FLOPs, when known)."""
        ...

    def fail(self, model: str, reason: str) -> None:
        """A model cannot go on: it gets no further points."""
        ...

    @property
    def eliminated(self) -> tuple[Elimination, ...]:
        """Every elimination so far, in order (a front end reports each once)."""
        ...

    @property
    def dropped(self) -> int:
        """Planned points that will not run because their model failed."""
        ...


class LadderPolicy:
    """Every model on 0 then every ladder size, in order; a failed model's rest is dropped.

    With ``largest_first`` (several workers) a model's trained sizes go largest
    first, after its zero-shot point. Each size roughly doubles its point's
    time, so in ladder order a run on two workers ended with the last model's
    largest point running alone while the other worker idled; started first, it
    runs beside the smaller ones (longest processing time first, the classic
    rule for keeping parallel machines busy to the end). One worker keeps the
    ladder order, in which the curve grows as the user watches.
    """

    def __init__(
        self, models: Sequence[str], sizes: Sequence[int], *, largest_first: bool = False
    ) -> None:
        order = sorted(sizes, reverse=True) if largest_first else list(sizes)
        self._plan = deque((m, s) for m in models for s in (0, *order))
        self._dropped = 0

    def next_point(self) -> tuple[str, int] | None:
        return self._plan.popleft() if self._plan else None

    def observe(self, model: str, size: int, loss: float, cost: float | None = None) -> object:
        return None  # the ladder does not depend on what it measures

    def fail(self, model: str, reason: str) -> None:
        kept = deque(p for p in self._plan if p[0] != model)
        self._dropped += len(self._plan) - len(kept)
        self._plan = kept

    @property
    def eliminated(self) -> tuple[Elimination, ...]:
        return ()

    @property
    def dropped(self) -> int:
        return self._dropped
