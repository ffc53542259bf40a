"""The adaptive policy's account as results.json records it: spend, stop reason, eliminations."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.config import RunConfig
from core.policy.adaptive import AdaptivePolicy, Predictor
from core.policy.final import refit_result


def policy_account(
    policy: AdaptivePolicy,
    config: RunConfig,
    *,
    running: bool = False,
    final: Predictor | None = None,
) -> dict[str, Any]:
    """The policy's state as results.json records it: spend, stop reason, eliminations.

    Each outcome's ``stale`` says its prediction was made before the run's last point
    (an eliminated model keeps the estimate it was dropped on). With ``final`` (when
    the policy has stopped) every model is first refitted by it on all the run
    measured (core.policy.final), so the outcomes' predictions are current.
    """
    res = policy.result()
    if final is not None:
        res = refit_result(res, policy.measured(), final)
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
                "stale": o.stale,
            }
            for o in res.outcomes
        ],
    }
