"""Headless front end: rich progress and tables over the engine's event stream.

Placeholder until the engine lands (issue 5): it validates the configuration
and says what would run.
"""

from __future__ import annotations

from rich.console import Console

from core.config import RunConfig


def run_headless(config: RunConfig) -> int:
    """Run ``config`` without the dashboard; returns the process exit code."""
    console = Console()
    console.print(f"models: {', '.join(config.models)}")
    console.print(f"dataset: {config.data.source}  ladder: {config.sizes}  target: {config.target}")
    console.print("[yellow]the fine-tuning engine is not built yet (issue 5); nothing was run[/]")
    return 3
