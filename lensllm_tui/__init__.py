"""Front ends (typer CLI, Textual dashboard, headless console) for lensllm-tui."""

from core import __version__

__all__ = ["__version__"]
