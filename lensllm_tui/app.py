"""Textual dashboard factory. Placeholder until the dashboard lands (issue 7)."""

from __future__ import annotations

from core.config import RunConfig


def make_app(config: RunConfig):
    raise SystemExit("the dashboard is not built yet (issue 7); use `lensllm-tui run --no-ui`")
