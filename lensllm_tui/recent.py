"""Recent run directories, for reopening a run from the setup screen.

A run directory is any directory holding the runner's config.toml; its status
comes from results.json alone (no store, no torch), so listing stays cheap
enough to do while the setup screen mounts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.paths import CONFIG_NAME, RESULTS_NAME, RUNS_DIR


@dataclass(frozen=True)
class RecentRun:
    """One reopenable run directory and how far it got."""

    path: Path
    status: str  # "finished" | "unfinished"
    mtime: float


def run_status(path: Path) -> str:
    """'finished' when results.json says so and holds a ranking, else 'unfinished'."""
    try:
        data = json.loads((path / RESULTS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unfinished"
    if isinstance(data, dict) and data.get("status") == "finished" and data.get("ranking"):
        return "finished"
    return "unfinished"


def recent_runs(roots: list[Path], limit: int = 6) -> list[RecentRun]:
    """Run directories directly under ``roots``, newest first (by config.toml time)."""
    found: dict[Path, RecentRun] = {}
    for root in roots:
        try:
            children = list(root.iterdir())
        except OSError:
            continue
        for child in children:
            cfg = child / CONFIG_NAME
            try:
                mtime = cfg.stat().st_mtime
            except OSError:
                continue
            key = child.resolve()
            if key not in found:
                found[key] = RecentRun(child, "", mtime)
    newest = sorted(found.values(), key=lambda r: r.mtime, reverse=True)[:limit]
    return [RecentRun(r.path, run_status(r.path), r.mtime) for r in newest]


def run_roots(out_dir: str | None) -> list[Path]:
    """Where to look: ./runs/ and the parent of the configured out dir."""
    roots = [RUNS_DIR]
    if out_dir:
        parent = Path(out_dir).parent
        if parent.resolve() != roots[0].resolve():
            roots.append(parent)
    return roots
