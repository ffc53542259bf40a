"""Helpers for tests that drive executors directly: every update until jobs end, their losses."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.run.executors import Executor, JobDone, JobFailed, ProbeResult


def drain(
    ex: Executor,
    n: int,
    limit: float = 240.0,
    on_update: Callable[[Executor, object], None] | None = None,
) -> list[object]:
    """Every update until ``n`` jobs have ended (done or failed for good)."""
    updates: list[object] = []
    ended = 0
    deadline = time.monotonic() + limit
    while ended < n:
        assert time.monotonic() < deadline, f"only {ended} of {n} jobs ended: {updates[-5:]}"
        for u in ex.poll(0.1):
            updates.append(u)
            if on_update is not None:
                on_update(ex, u)
            ended += isinstance(u, JobDone | JobFailed)
    return updates


def losses(updates: list[object]) -> dict[int, float]:
    """Each finished point job's test loss (NTK probes left out), by job id."""
    return {
        u.job_id: u.result.loss  # type: ignore[attr-defined]
        for u in updates
        if isinstance(u, JobDone) and not isinstance(u.result, ProbeResult)
    }
