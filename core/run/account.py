"""The adaptive policy's account as results.json records it: spend, stop reason, eliminations."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.config import RunConfig
from core.policy.adaptive import AdaptivePolicy


def policy_account(
    policy: AdaptivePolicy, config: RunConfig, *, running: bool = False
) -> dict[str, Any]:
    """The policy's state as results.json records it: spend, stop reason, eliminations."""
    res = policy.result()
    return {
        "name": "adaptive",
        "config": dataclasses.asdict(res.config),
        "budget": config.adaptive.budget,
        "stop_reason": "running" if running else res.stop_reason,
        "cost": res.cost,
        "full_cost": res.full_cost,
        "cost_fraction": res.cost_fraction,
        "ladder_cost": res.ladder_cost,
        "ladder_cost_fraction": res.ladder_cost / res.full_cost if res.full_cost > 0 else None,
        "compute_saved": policy.compute_saved,
        "consumed": [[m, s] for m, s in res.consumed if s > 0],
        "eliminated": [
            {"model": e.model, "reason": e.reason, "size": e.size, "compute_saved": e.compute_saved}
            for e in res.eliminated
        ],
        "outcomes": [
            {
                "model": o.model,
                "status": o.status,
                "sizes": list(o.sizes),
                "predicted": o.predicted,
                "low": o.low,
                "high": o.high,
                "cost": o.cost,
                "reason": o.reason,
            }
            for o in res.outcomes
        ],
    }
