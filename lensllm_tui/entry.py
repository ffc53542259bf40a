"""The ``lensllm-tui`` command's entry point: Ctrl-C and SIGTERM are quiet from the first instant.

Building the command line imports typer, rich and the generated flags, and a run
then imports torch: a second or more in which Python's own SIGINT handling would
print a KeyboardInterrupt traceback from inside some import, and SIGTERM would
kill the process (-15). This module and lensllm_tui.signals import only the
standard library, so both signals exit 130 quietly before the CLI is imported.
"""

from __future__ import annotations

from lensllm_tui.signals import exit_quietly_on_signals


def main() -> None:
    """Console-script entry point: quiet signals first, then the CLI and its imports."""
    exit_quietly_on_signals()
    from lensllm_tui.cli import main as cli_main

    cli_main()
