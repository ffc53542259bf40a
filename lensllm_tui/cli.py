"""The ``lensllm-tui`` command line (typer).

Each subcommand parses options into core types, then hands over to a front
end (headless console, Textual app) or a curve command. Heavy imports (torch,
transformers, textual) happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core import __version__
from core.config import ConfigError, RunConfig

app = typer.Typer(
    name="lensllm-tui",
    help="Choose which pretrained LLM to fine-tune: progressive fine-tuning on a ladder "
    "of subsets, LensLLM scaling-law fits, and a ranking with its uncertainty.",
    no_args_is_help=True,
    add_completion=False,
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
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _int_list(value: str | None, name: str) -> list[int] | None:
    items = _csv_list(value)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        raise fail(f"{name} must be comma-separated integers, got {value!r}") from None


def _budget(value: str) -> float | None:
    """``--budget``: a fraction of full fine-tuning, or 'none' for no cap."""
    if value.strip().lower() in ("none", "off", "no"):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(
            f"--budget must be a fraction of full fine-tuning (e.g. 0.1) or 'none', got {value!r}"
        ) from None


def resume_config(run_dir: Path, config: Path | None, out: Path | None) -> Path:
    """The config.toml of a run directory to reopen; one clear line if it cannot be."""
    from core.run.records import CONFIG_NAME

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


def build_config(
    config: Path | None,
    models: str | None,
    dataset: str | None,
    sizes: str | None,
    target: int | None,
    out: Path | None,
    policy: str | None,
    data_format: str | None = None,
    device: str | None = None,
    *,
    budget: str | None = None,
    confidence: float | None = None,
    gamma: float | None = None,
    tau: int | None = None,
    schedule: str | None = None,
    data: dict[str, str | None] | None = None,
) -> RunConfig:
    """Merge a TOML config (if given) with command-line overrides into one RunConfig."""
    try:
        raw = RunConfig.load_toml(config).to_dict() if config else RunConfig().to_dict()
        if (m := _csv_list(models)) is not None:
            raw["models"] = m
        if dataset is not None:
            raw["data"]["source"] = dataset
        if data_format is not None:
            raw["data"]["format"] = data_format
        for key, value in (data or {}).items():
            if value is not None:
                raw["data"][key] = value
        if (s := _int_list(sizes, "--sizes")) is not None:
            raw["sizes"] = s
        if target is not None:
            raw["target"] = target
        if out is not None:
            raw["out_dir"] = str(out)
        if policy is not None:
            raw["policy"] = policy
        if device is not None:
            raw["device"] = device
        adaptive = raw.setdefault("adaptive", {})
        if budget is not None:
            adaptive.pop("budget", None)
            if (b := _budget(budget)) is not None:
                adaptive["budget"] = b
        settings = (("confidence", confidence), ("gamma", gamma), ("tau", tau))
        for key, value in (*settings, ("schedule", schedule)):
            if value is not None:
                adaptive[key] = value
        return RunConfig.from_dict(raw)
    except ConfigError as exc:
        raise fail(str(exc)) from None


@app.command()
def run(
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Run headless with rich progress (batch jobs, CI).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Run configuration (TOML).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated candidates: tiny:NAME, Hugging Face ids or local paths."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="'builtin', a local .jsonl/.json/.csv/.tsv/.parquet/.txt file (also .gz), a "
            "save_to_disk folder, or a hub dataset name."
        ),
    ] = None,
    data_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="'text', 'prompt_completion' (loss on completions only), 'messages' (chat, "
            "loss on assistant turns), 'alpaca' or 'auto' (from the columns).",
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Column holding the text (format 'text'; default 'text').")
    ] = None,
    sample_by: Annotated[
        str | None,
        typer.Option(help="A .txt file's examples: 'line' (default), 'paragraph' or 'document'."),
    ] = None,
    test_file: Annotated[
        Path | None,
        typer.Option(help="Your own test examples (same format); used as given, never trained on."),
    ] = None,
    validation_file: Annotated[
        Path | None,
        typer.Option(help="Your own validation examples (same format); used as given."),
    ] = None,
    sizes: Annotated[
        str | None, typer.Option(help="Comma-separated ladder of subset sizes, e.g. 200,400,800.")
    ] = None,
    target: Annotated[
        int | None, typer.Option(help="Full dataset size to predict the loss at.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory (reused points are kept); default runs/<time>."),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="'ladder' (all points) or 'adaptive' (stop early).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="'auto', 'cpu', 'cuda' or 'cuda:N'.")] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            metavar="FRACTION",
            help="Adaptive policy: spend at most this fraction of full fine-tuning (every "
            "candidate once at the target), e.g. 0.1; 'none' (default): no cap.",
        ),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(
            help="Adaptive policy: confidence of the intervals that eliminate a model "
            "(default 0.9; lower eliminates sooner)."
        ),
    ] = None,
    gamma: Annotated[
        float | None,
        typer.Option(
            help="Adaptive policy: a fit is stable when its prediction moves by at most "
            "this fraction (default 0.01)."
        ),
    ] = None,
    tau: Annotated[
        int | None,
        typer.Option(
            help="Adaptive policy: stable fits in a row before a model stops (default 2)."
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="Adaptive policy: 'halving' (successive halving on compute, the default), "
            "'challenger', 'compute' or 'size'."
        ),
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
) -> None:
    """Fine-tune every candidate on a ladder of subsets and rank them (dashboard or --no-ui)."""
    if resume is not None:
        config, out = resume_config(resume, config, out), resume
    cfg = build_config(
        config,
        models,
        dataset,
        sizes,
        target,
        out,
        policy,
        data_format,
        device,
        budget=budget,
        confidence=confidence,
        gamma=gamma,
        tau=tau,
        schedule=schedule,
        data={
            "text_column": text_column,
            "sample_by": sample_by,
            "test_file": str(test_file) if test_file else None,
            "validation_file": str(validation_file) if validation_file else None,
        },
    )
    if no_ui:
        from lensllm_tui.headless import run_headless

        raise typer.Exit(run_headless(cfg))
    from lensllm_tui.app import make_app

    make_app(cfg, autostart=autostart).run()


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
