"""Key-press-to-redraw latency of the dashboard while a run streams events.

A key (cursor down / up in the ranking table) is sent many times through the
driver, as a terminal would send it; each sample is the time from sending the
key to the ranking table painting a line with the cursor on its new row (its
``render_line`` is wrapped to notice). Reported: p50 / p99 / max per scenario, and each scenario's p99 as a
ratio of the idle baseline measured in the same process:

- idle: a finished run; nothing streams (the baseline);
- flood: the synthetic stream with a progress event every millisecond, 250
  times the engine's rate (tests coalescing and throttling);
- engine: the real engine (core.run.runner.run_events) training the tiny zoo.

    python benchmarks/tui_latency.py [--presses 60] [--no-engine]

The machine is shared and noisy: compare ratios, not absolute milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events

from core.config import RunConfig
from lensllm_tui.app import engine_events, make_app
from lensllm_tui.screens.dashboard import DashboardScreen
from lensllm_tui.synthetic import synthetic_events
from lensllm_tui.widgets import RankingTable


def _flood(config: RunConfig, cancel: threading.Event, *, pause: threading.Event | None = None):
    """Synthetic events, a progress event every millisecond, repeated until cancelled.

    An engine reports progress about 4 times a second; this is 250 times that,
    as if a fast GPU reported every step (1 ms each, GIL released meanwhile).
    """
    while not cancel.is_set():
        for event in synthetic_events(config, cancel, pause=pause, steps=3000, delay=0.001):
            if type(event).__name__ in ("RunFinished", "RunCancelled"):
                break
            yield event


async def measure(source, config: RunConfig, presses: int, wait_finished: bool) -> list[float]:
    app = make_app(config, event_source=source, hub_models=lambda: [], autostart=True)
    painted = threading.Event()
    expected: list[int] = [-1]
    original = RankingTable.render_line

    def render_line(self, y):
        if self.cursor_row == expected[0]:
            painted.set()
        return original(self, y)

    RankingTable.render_line = render_line  # type: ignore[method-assign]
    samples: list[float] = []
    try:
        async with app.run_test(size=(120, 34)) as pilot:
            while not isinstance(app.screen, DashboardScreen):
                await pilot.pause(0.05)
            screen = app.screen
            deadline = time.monotonic() + 600
            while (
                (screen.state.phase != "finished")
                if wait_finished
                else not screen.state.done_points
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("the run did not get going in 10 minutes")
                await pilot.pause(0.05)
            table = screen.query_one(RankingTable)
            for _ in range(presses):
                await asyncio.sleep(0.05)
                key = "down" if table.cursor_row == 0 else "up"
                expected[0] = table.cursor_row + (1 if key == "down" else -1)
                painted.clear()
                t0 = time.perf_counter()
                # As a terminal driver would: the key goes in, nothing waits for idle.
                app._driver.send_message(events.Key(key, None))
                while not painted.is_set() and time.perf_counter() - t0 < 10:
                    await asyncio.sleep(0.0005)
                samples.append(time.perf_counter() - t0)
            active = screen.state.active
            if not wait_finished and not active:
                print("  (warning: the run ended before all presses were timed)")
    finally:
        RankingTable.render_line = original  # type: ignore[method-assign]
    return samples


def report(name: str, samples: list[float], base_p99: float | None) -> float:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    ratio = f"  p99 x{p99 / base_p99:.1f} of idle" if base_p99 else ""
    print(
        f"{name:7s} n={len(ms):3d}  p50 {statistics.median(ms):6.1f} ms  "
        f"p99 {p99:6.1f} ms  max {ms[-1]:6.1f} ms{ratio}"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--no-engine", action="store_true", help="skip the real-engine scenario")
    args = parser.parse_args()
    synthetic = RunConfig(out_dir="runs/bench")
    idle = asyncio.run(measure(synthetic_events, synthetic, args.presses, wait_finished=True))
    base = report("idle", idle, None)
    flood = asyncio.run(measure(_flood, synthetic, args.presses, wait_finished=False))
    report("flood", flood, base)
    if not args.no_engine:
        run_dir = tempfile.mkdtemp(prefix="lensllm-latency-")
        real = RunConfig(sizes=[100, 200, 400, 800], target=6400, out_dir=run_dir)
        samples = asyncio.run(
            measure(partial(engine_events), real, args.presses, wait_finished=False)
        )
        report("engine", samples, base)


if __name__ == "__main__":
    main()
