"""The dashboard's workers panel, driven through the real app by a stream with two workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

from textual.widgets import Static

from core import events as ev
from core.config import RunConfig
from lensllm_tui.app import make_app
from lensllm_tui.view import RunView
from lensllm_tui.widgets.workers import WorkersPanel, worker_line
from tests.ui.app_helpers import settle_dashboard

GIB = 2**30
WORKERS = (
    ev.WorkerStatus("w0", "cuda:0", "tiny:gpt2-s@400", 12, 25, 3 * GIB, 80 * GIB),
    ev.WorkerStatus("w1", "cuda:1"),
)


def test_worker_line_names_device_job_steps_and_cuda_memory() -> None:
    busy, idle = (worker_line(w) for w in WORKERS)
    assert "w0" in busy and "cuda:0" in busy and "tiny:gpt2-s@400" in busy
    assert "12/25" in busy and "mem 3.0/80.0 GiB" in busy
    assert "idle" in idle and "mem" not in idle  # no memory figure off a busy GPU job
    lost = worker_line(ev.WorkerStatus("w2", "cpu", alive=False))
    assert "lost" in lost


def test_run_view_keeps_the_latest_workers() -> None:
    view = RunView()
    view.apply(ev.WorkersUpdated("pool", WORKERS))
    view.apply(ev.PointRetried("tiny:gpt2-s", 400, 2, "worker w3 died", "w3", 8))
    assert view.executor == "pool" and view.workers == WORKERS and view.retries == 1


def _two_workers(
    config: RunConfig, cancel: threading.Event | None = None, **_: object
) -> Iterator[ev.Event]:
    yield ev.RunStarted(
        models=tuple(config.models),
        sizes=tuple(config.sizes),
        target=config.target,
        out_dir=config.out_dir or "",
        dataset="builtin",
        total_points=len(config.models) * (len(config.sizes) + 1),
    )
    yield ev.WorkersUpdated("pool", WORKERS)
    while cancel is not None and not cancel.wait(0.05):
        pass
    yield ev.RunCancelled(config.out_dir or "", kept=0)


def test_dashboard_lists_the_workers(tmp_path: Path) -> None:
    config = RunConfig(
        models=["tiny:gpt2-s", "tiny:llama-s"],
        sizes=[100, 200],
        target=800,
        out_dir=str(tmp_path / "run"),
    )

    async def go() -> None:
        app = make_app(config, event_source=_two_workers, hub_models=lambda: [], autostart=True)
        async with app.run_test(size=(100, 40)) as pilot:
            await settle_dashboard(pilot, lambda s: len(s.state.workers) == 2)
            panel = pilot.app.screen.query_one(WorkersPanel)
            text = str(panel.render())
            assert panel.display and "workers (pool)" in text
            assert "tiny:gpt2-s@400" in text and "mem 3.0/80.0 GiB" in text and "cuda:1" in text
            assert isinstance(panel, Static)
            await pilot.press("c")
            await settle_dashboard(pilot, lambda s: s.state.phase == "cancelled")

    asyncio.run(go())
