"""Regenerate the README's screenshots: screenshots/{setup,dashboard,ranking}.svg.

Drives the real app through Textual's test harness (run_test) and saves what
the terminal shows with App.save_screenshot:

- setup.svg: the setup screen for the default tiny zoo;
- dashboard.svg: the dashboard mid-run (held after a number of finished points);
- ranking.svg: the dashboard when the run has finished.

By default the dashboard runs the real engine (core.run.runner.run_events) on a
small ladder of the tiny zoo, so the pictures show measured losses and real
fits; ``--synthetic`` replays the deterministic synthetic stream instead (no
torch, same as the snapshot tests).

    python scripts/screenshots.py [--synthetic] [--setup-only] [--out screenshots]

``--setup-only`` renders setup.svg alone (no engine run), for a change to the
setup screen that leaves the dashboard pictures as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import events as ev  # noqa: E402
from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig  # noqa: E402
from lensllm_tui.app import engine_events, make_app  # noqa: E402
from lensllm_tui.screens.dashboard import DashboardScreen  # noqa: E402
from lensllm_tui.synthetic import synthetic_events  # noqa: E402

SIZE = (120, 34)


def holding(source: Callable, after: int, release: threading.Event) -> Callable:
    """Wrap a source so it stops pulling events after ``after`` finished points until released.

    Held right after a finished point, the engine starts no next point meanwhile,
    so the mid-run picture is a real mid-run state.
    """

    def wrapped(
        config: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None
    ) -> Iterator[ev.Event]:
        done = 0
        for event in source(config, cancel, pause=pause):
            yield event
            if isinstance(event, ev.PointFinished):
                done += 1
                if done == after:
                    while not release.wait(0.05) and not cancel.is_set():
                        pass

    return wrapped


async def _wait(pilot, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the app")
        await pilot.pause(0.05)


async def shoot(
    config: RunConfig, source: Callable, out: Path, hold_after: int, setup_only: bool = False
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    app = make_app(config, hub_models=lambda: [], recent=lambda c: [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        app.save_screenshot("setup.svg", path=str(out))
    if setup_only:
        print(out / "setup.svg")
        return
    release = threading.Event()
    app = make_app(config, event_source=holding(source, hold_after, release), autostart=True)
    async with app.run_test(size=SIZE) as pilot:
        await _wait(pilot, lambda: isinstance(app.screen, DashboardScreen), 30)
        screen = app.screen
        await _wait(pilot, lambda: screen.state.done_points >= hold_after, 1200)
        await pilot.pause(0.5)
        screen._dirty = True
        screen._flush()
        await pilot.pause(0.2)
        app.save_screenshot("dashboard.svg", path=str(out))
        release.set()
        await _wait(pilot, lambda: not screen.state.active, 1800)
        screen._dirty = True
        screen._flush()
        await pilot.pause(0.2)
        app.save_screenshot("ranking.svg", path=str(out))
    for name in ("setup", "dashboard", "ranking"):
        print(out / f"{name}.svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="replay the synthetic stream")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--hold-after", type=int, default=None)
    parser.add_argument("--setup-only", action="store_true", help="render setup.svg alone")
    args = parser.parse_args()
    if args.synthetic:
        config = RunConfig(out_dir="runs/synthetic")
        source, hold = synthetic_events, args.hold_after or 10
    else:
        # Small enough to finish in minutes on a CPU: three zoo models, a short
        # ladder, short examples and a small test set and NTK probe.
        run_dir = tempfile.mkdtemp(prefix="lensllm-screenshots-")
        config = RunConfig(
            models=["tiny:gpt2-s", "tiny:llama-s", "tiny:llama-l"],
            sizes=[50, 100, 200, 400],
            target=3200,
            data=DataConfig(test_size=48, validation_size=16, max_length=64),
            train=TrainConfig(batch_size=16, min_steps=4),
            ntk=NTKConfig(probe_size=8),
            out_dir=run_dir,
        )
        source, hold = engine_events, args.hold_after or 9
    asyncio.run(shoot(config, source, args.out, hold, args.setup_only))


if __name__ == "__main__":
    main()
