"""The app's screens: setup (choose the run) and dashboard (watch it)."""

from lensllm_tui.screens.dashboard import DashboardScreen
from lensllm_tui.screens.setup import SetupScreen

__all__ = ["DashboardScreen", "SetupScreen"]
