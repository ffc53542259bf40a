"""Two runs on one --out: the second is refused naming the first's PID; kill -9 frees the lock."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import RunConfig
from lensllm_tui.app import make_app
from lensllm_tui.cli import app
from tests.processes import MODEL, cli, results, stored_points, wait_until, write_config
from tests.ui.app_helpers import wait_for

pytestmark = pytest.mark.usefixtures("zoo_env")
runner = CliRunner()


def _refused(out: Path) -> str:
    res = runner.invoke(app, ["run", "--no-ui", "--resume", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    return lines[0]


def test_second_headless_run_is_refused_and_kill_9_frees_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100, 200])
    first = cli("run", "--no-ui", "--config", str(cfg))
    try:
        wait_until(lambda: stored_points(out) >= 1, what="the first run's first point")
        os.kill(first.pid, signal.SIGSTOP)  # hold it mid-run (tiny points finish fast)
        line = _refused(out)
        assert f"in use by another lensllm-tui run (PID {first.pid})" in line
        assert stored_points(out) >= 1  # the refused run touched nothing
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    kept = stored_points(out)
    res = runner.invoke(app, ["run", "--no-ui", "--resume", str(out)])
    assert res.exit_code == 0, res.output  # no stale lock after kill -9
    assert f"{kept} reused" in res.output
    assert results(out)["status"] == "finished"


def test_the_dashboard_holds_the_lock_while_it_runs(tmp_path: Path) -> None:
    """The real app on the real engine; a headless run on its directory is refused meanwhile."""
    out = tmp_path / "out"
    cfg = RunConfig.load_toml(write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100]))
    refusals: list[str] = []

    async def go() -> None:
        lens = make_app(cfg, hub_models=list, autostart=True)
        async with lens.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: stored_points(out) >= 1, 120, "a first point")
            refusals.append(_refused(out))
            screen = lens.screen
            screen.action_cancel()  # type: ignore[attr-defined]
            await wait_for(pilot, lambda: not screen.state.active, 120, "the cancel")  # type: ignore[attr-defined]

    asyncio.run(go())
    assert f"in use by another lensllm-tui run (PID {os.getpid()})" in refusals[0]
    res = runner.invoke(app, ["run", "--no-ui", "--resume", str(out)])
    assert res.exit_code == 0, res.output  # released when the dashboard's run ended
