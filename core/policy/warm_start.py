"""Zero-shot first, then the adaptive policy: how a live adaptive run starts.

The adaptive policy needs every model's cost per sample before it can weigh
one point against another, and a live run only knows that from the model's
zero-shot point (its tokens per example). So every model's zero-shot point,
which costs no training, comes first; the policy is built from what they
measured and then decides every further point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.policy.adaptive import AdaptivePolicy, Elimination


class ZeroShotFirst:
    """The zero-shot point of each model in order, then ``build(survivors)``'s choices."""

    def __init__(self, models: Sequence[str], build: Callable[[list[str]], AdaptivePolicy]) -> None:
        self._waiting = list(models)
        self._flying: set[str] = set()
        """Zero-shot points handed out and not yet observed (a runner with several workers)."""
        self._zero: dict[str, float] = {}
        self._build = build
        self.policy: AdaptivePolicy | None = None
        """The adaptive policy, once every zero-shot point is in; None before (or if all failed)."""

    def next_point(self) -> tuple[str, int] | None:
        if self._waiting:
            model = self._waiting.pop(0)
            self._flying.add(model)
            return model, 0
        if self._flying:
            return None  # the policy is built from every zero-shot point: wait for them
        if self.policy is None:
            if not self._zero:
                return None  # every model failed before its zero-shot point
            self.policy = self._build(list(self._zero))
            for name, loss in self._zero.items():
                self.policy.observe(name, 0, loss, cost=0.0)
        return self.policy.next_point()

    def observe(self, model: str, size: int, loss: float, cost: float | None = None) -> object:
        if self.policy is None:
            self._forget(model)
            self._zero[model] = loss
            return []
        return self.policy.observe(model, size, loss, cost=cost)

    def fail(self, model: str, reason: str) -> None:
        if self.policy is None:
            self._forget(model)
        else:
            self.policy.fail(model, reason)

    def _forget(self, model: str) -> None:
        if model in self._waiting:
            self._waiting.remove(model)
        self._flying.discard(model)

    @property
    def eliminated(self) -> tuple[Elimination, ...]:
        return self.policy.eliminated if self.policy is not None else ()

    @property
    def dropped(self) -> int:
        return 0  # the adaptive plan is open-ended: nothing planned is dropped
