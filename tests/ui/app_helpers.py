"""Shared helpers for driving the Textual app in tests (Pilot and snapshots)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.pilot import Pilot

from lensllm_tui.screens.dashboard import DashboardScreen


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], timeout: float = 20.0, what: str = ""
) -> None:
    """Let the app process messages until ``condition()`` holds (or fail loudly)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def dashboard(pilot: Pilot) -> DashboardScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen), f"expected the dashboard, got {screen!r}"
    return screen


async def settle_dashboard(pilot: Pilot, condition: Callable[[DashboardScreen], bool]) -> None:
    """Wait for the dashboard to reach a state, then force the throttled redraw."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen), what="dashboard")
    screen = dashboard(pilot)
    await wait_for(pilot, lambda: condition(screen), what="dashboard state")
    screen._dirty = True
    screen._flush()
    await pilot.pause()
    await asyncio.sleep(0)
