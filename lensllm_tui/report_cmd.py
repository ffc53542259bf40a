"""``lensllm-tui report RUN_DIR``: a run's figures as one HTML page, and a TensorBoard export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import LensError, one_line


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holds results.json).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write report.html and its PNGs; default RUN_DIR/report."),
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also export the run as TensorBoard event files (RUN_DIR/tensorboard; "
            "view with: tensorboard --logdir RUN_DIR/tensorboard).",
        ),
    ] = False,
    html: Annotated[
        bool, typer.Option("--html/--no-html", help="Write the HTML report (default yes).")
    ] = True,
) -> None:
    """Write a self-contained HTML report of a run: curves, ranking, compute, NTK spectra."""
    from core.run.report import build_report
    from core.run.tensorboard import export_tensorboard

    console, err = Console(), Console(stderr=True)
    try:
        if html:
            page = build_report(run_dir, out)
            console.print(f"report: {escape(str(page))}", highlight=False, soft_wrap=True)
        if tensorboard:
            logdir = export_tensorboard(run_dir)
            console.print(
                f"tensorboard: {escape(str(logdir))} (tensorboard --logdir {escape(str(logdir))})",
                highlight=False,
                soft_wrap=True,
            )
    except LensError as exc:
        err.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
