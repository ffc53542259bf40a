"""The ``lensllm-tui`` command line (typer).

Each subcommand parses options into core types, then hands over to a front
end (headless console, Textual app) or a curve command. Heavy imports (torch,
transformers, textual) happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from core import __version__
from core.config import ConfigError, RunConfig
from lensllm_tui import flags
from lensllm_tui.environment import epilog
from lensllm_tui.resume import resume_settings

app = typer.Typer(
    name="lensllm-tui",
    help="Choose which pretrained LLM to fine-tune: progressive fine-tuning on a ladder "
    "of subsets, LensLLM scaling-law fits, and a ranking with its uncertainty.",
    epilog=epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lensllm-tui {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Choose which pretrained LLM to fine-tune, at a fraction of the cost."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear error line and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def resume_config(run_dir: Path, config: Path | None, out: Path | None) -> Path:
    """The config.toml of a run directory to reopen; one clear line if it cannot be."""
    from core.paths import CONFIG_NAME

    if config is not None:
        raise fail("--resume reopens a run with its own config.toml; drop --config")
    if out is not None and out.resolve() != run_dir.resolve():
        raise fail("--resume writes into the run directory it reopens; drop --out")
    if not run_dir.is_dir():
        raise fail(f"--resume: no run directory at {run_dir}")
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        raise fail(f"--resume: {run_dir} has no {CONFIG_NAME} (not a lensllm-tui run directory)")
    return path


def build_config(config: Path | None, settings: dict[str, Any] | None = None) -> RunConfig:
    """A TOML config (if given) with command-line settings laid over it, as one RunConfig.

    ``settings`` is TOML-shaped (``{"train": {"batch_size": 8}}``); whatever it
    holds replaces the file's value, key by key, and the whole goes through the
    same checks as a file would.
    """
    try:
        raw = RunConfig.load_toml(config).to_dict() if config else RunConfig().to_dict()
        for key, value in (settings or {}).items():
            if isinstance(value, dict):
                raw.setdefault(key, {}).update(value)
            else:
                raw[key] = value
        return RunConfig.from_dict(raw)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def run(
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Run headless with rich progress (batch jobs, CI).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Run configuration (TOML).")
    ] = None,
    autostart: Annotated[
        bool,
        typer.Option("--autostart", help="Dashboard: skip the setup screen and start at once."),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Reopen a run directory: finished points are reused, missing ones trained.",
        ),
    ] = None,
    extend: Annotated[
        bool,
        typer.Option(
            "--extend",
            help="With --resume: add the --models and --sizes given to the run (never removes).",
        ),
    ] = False,
    **settings: Any,
) -> None:
    """Fine-tune every candidate on a ladder of subsets and rank them (dashboard or --no-ui).

    Every key of the TOML config is also a flag (below, by table); a flag given
    overrides the --config file's value.
    """
    try:
        given = flags.overrides(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if extend and resume is None:
        raise fail("--extend adds models or sizes to a run reopened with --resume DIR")
    if resume is not None:
        out = given.get("out_dir")
        config = resume_config(resume, config, Path(out) if out is not None else None)
        try:
            given = resume_settings(RunConfig.load_toml(config), given, str(resume), extend=extend)
        except ConfigError as exc:
            raise fail(str(exc)) from None
        given["out_dir"] = str(resume)
    cfg = build_config(config, given)
    from lensllm_tui.signals import exit_now

    if no_ui:
        from lensllm_tui.headless import run_headless

        code = run_headless(cfg)
    else:
        from lensllm_tui.app import make_app

        lens = make_app(cfg, autostart=autostart)
        lens.run()
        code = lens.return_code or 0
    # Everything is written; exit now rather than through seconds of torch teardown,
    # during which Python resets the signals and a Ctrl-C or SIGTERM kills (-2, -15).
    exit_now(code)
    raise typer.Exit(code)


def _with_config_flags(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with one keyword option per configuration key in place of ``**settings``."""
    fixed = [
        p
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    command.__signature__ = inspect.Signature([*fixed, *flags.parameters()])  # type: ignore[attr-defined]
    return command


app.command(epilog=epilog())(_with_config_flags(run))


@app.command()
def models(
    hub_only: Annotated[
        bool, typer.Option("--hub-only", help="Only the models in the local Hugging Face cache.")
    ] = False,
) -> None:
    """List candidate models: the built-in tiny zoo and the local Hugging Face cache."""
    from lensllm_tui.models_cmd import list_models

    raise typer.Exit(list_models(Console(), hub_only=hub_only))


from lensllm_tui import curves_cli  # noqa: E402  (curve-table commands: bench, fit)

app.command()(curves_cli.bench)
app.command()(curves_cli.fit)

from lensllm_tui import report_cmd  # noqa: E402  (run reports: HTML, TensorBoard)

app.command()(report_cmd.report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
