"""User text with brackets ("[train]", "[old]flan.csv") is printed as written, never as markup."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

from textual.widgets import Static
from typer.testing import CliRunner

from core import events as ev
from core.config import RunConfig
from core.science.curves import Curve, write_wide_csv
from lensllm_tui.app import make_app
from lensllm_tui.cli import app
from tests.ui.app_helpers import dashboard, settle_dashboard

cli = CliRunner()


def test_missing_dataset_named_with_brackets_is_named_as_written(tmp_path: Path) -> None:
    out = tmp_path / "[run]out"
    res = cli.invoke(
        app, ["run", "--no-ui", "--dataset", str(tmp_path / "[old]flan.csv"), "--out", str(out)]
    )
    assert res.exit_code == 2, res.output
    assert "[old]flan.csv" in res.output and "Traceback" not in res.output


def test_bench_error_and_title_keep_brackets(tmp_path: Path) -> None:
    missing = cli.invoke(app, ["bench", str(tmp_path / "[old]flan.csv")])
    assert missing.exit_code == 2 and "[old]flan.csv" in missing.output
    table = tmp_path / "[train].csv"
    sizes = (0, 100, 200, 400, 800)
    write_wide_csv(
        table,
        [
            Curve(f"[m{i}]", sizes, tuple(5.0 - i * 0.1 - s / (1000 + 100 * i) for s in sizes))
            for i in range(3)
        ],
    )
    args = ["bench", str(table), "--target", "800", "--budgets", "400", "--methods", "zeroshot"]
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "[train]: PearCorr" in res.output


def test_headless_failed_model_with_brackets_is_named_as_written(tmp_path: Path) -> None:
    args = ["run", "--no-ui", "--models", "[train]", "--sizes", "20", "--target", "80"]
    res = cli.invoke(app, [*args, "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert "model failed [train]: unknown model '[train]'" in res.output
    assert "1 model(s) failed: [train] (unknown model '[train]'" in res.output
    assert "Traceback" not in res.output


def _failing_stream(
    config: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None
) -> Iterator[ev.Event]:
    yield ev.RunStarted(
        models=("[train]",),
        sizes=(100,),
        target=800,
        out_dir="runs/[old]x",
        dataset="[old]flan.csv",
        total_points=2,
    )
    yield ev.ModelFailed("[train]", "cannot open [old]flan.csv")
    yield ev.RunFinished("runs/[old]x", (), (("[train]", "cannot open [old]flan.csv"),), 1.0)


def test_dashboard_shows_bracketed_names_and_reasons(tmp_path: Path) -> None:
    config = RunConfig(models=["[train]"], sizes=[100], target=800, out_dir="runs/[old]x")

    async def go() -> tuple[str, str]:
        lens = make_app(config, event_source=_failing_stream, hub_models=list, autostart=True)
        async with lens.run_test(size=(110, 30)) as pilot:
            await settle_dashboard(pilot, lambda s: s.state.phase == "finished")
            screen = dashboard(pilot)
            failures = str(screen.query_one("#failures", Static).render())
            status = str(screen.query_one("#run-status", Static).render())
            return failures, status

    failures, status = asyncio.run(go())
    assert "[train]: cannot open [old]flan.csv" in failures
    assert "runs/[old]x" in status
