"""Kill a real run at random moments, rerun it, and check nothing was lost or changed.

One uninterrupted headless run is the reference. Then, TRIALS times, a fresh
run directory: ``lensllm-tui run --no-ui`` is started as its own process,
killed after a random delay (uniform over the reference's wall time, so model
loading, the NTK probe, training, the store commit and the results.json write
are all hit) with SIGKILL, SIGTERM or SIGINT, and rerun to the end with the
same --out. After each rerun, curves.csv must equal the reference's byte for
byte, results.json must say "finished" with the reference's ranking, and the
store must pass SQLite's integrity check. The rerun's "N points computed, M
reused" line shows how much the kill cost.

    python benchmarks/fault_injection.py                     # 20 trials, seed 0
    python benchmarks/fault_injection.py --trials 5 --seed 3 --keep /tmp/fi

Exit status 0 when every trial matched, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig  # noqa: E402

SIGNALS = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
"""What a trial sends: kill -9 twice as often as the polite signals."""


@dataclass
class Trial:
    delay: float
    signal: str
    killed_rc: int | None
    kept: int
    computed: int
    reused: int
    rerun_rc: int
    curves_equal: bool
    ranking_equal: bool
    store_ok: bool
    rerun_seconds: float

    @property
    def ok(self) -> bool:
        return self.rerun_rc == 0 and self.curves_equal and self.ranking_equal and self.store_ok


def write_config(path: Path, out: Path, models: list[str], sizes: list[int], ntk: bool) -> None:
    RunConfig(
        models=models,
        sizes=sizes,
        target=sizes[-1] * 16,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=ntk, probe_size=8),
        out_dir=str(out),
        device="cpu",
    ).save_toml(path)


def run_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "lensllm_tui.cli", "run", "--no-ui", "--config", str(config)]


def started(pid: int, timeout: float = 30.0) -> None:
    """Wait until the child has exec'd the program: a signal sent between fork and exec
    is lost with the parent's handlers, which would make a trial a no-op, not a test."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if b"lensllm_tui.cli" in cmdline.read_bytes():
                return
        except OSError:
            return  # already gone
        time.sleep(0.005)


def complete(config: Path) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(run_cmd(config), cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0


def stored_points(out: Path) -> int:
    db = out / "store.sqlite"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def store_ok(out: Path) -> bool:
    con = sqlite3.connect(out / "store.sqlite", timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def ranking(out: Path) -> list[str]:
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "finished", res["status"]
    return [e["model"] for e in res["ranking"]]


def trial(
    work: Path, n: int, args: argparse.Namespace, ref: Path, wall: float, rng: random.Random
) -> Trial:
    out = work / f"trial-{n:02d}"
    config = work / f"trial-{n:02d}.toml"
    write_config(config, out, args.models, args.sizes, args.ntk)
    delay = rng.uniform(0.0, wall)
    sig = rng.choice(SIGNALS)
    proc = subprocess.Popen(
        run_cmd(config), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started(proc.pid)
    time.sleep(delay)
    killed_rc = proc.poll()
    if killed_rc is None:
        proc.send_signal(sig)
        try:
            killed_rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # a polite signal not obeyed: that is a failure too
            proc.kill()
            killed_rc = proc.wait()
    kept = stored_points(out)
    rc, output, seconds = complete(config)
    m = re.search(r"(\d+) points computed, (\d+) reused", output)
    computed, reused = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
    curves = out / "curves.csv"
    equal = curves.is_file() and curves.read_bytes() == (ref / "curves.csv").read_bytes()
    try:
        same_rank = ranking(out) == ranking(ref)
    except (OSError, ValueError, AssertionError, KeyError):
        same_rank = False
    if rc != 0:
        print(output[-2000:], file=sys.stderr)
    return Trial(
        delay,
        sig.name,
        killed_rc,
        kept,
        computed,
        reused,
        rc,
        equal,
        same_rank,
        store_ok(out) if (out / "store.sqlite").exists() else False,
        seconds,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="tiny:gpt2-s,tiny:llama-s")
    ap.add_argument("--sizes", default="25,50,100")
    ap.add_argument("--no-ntk", dest="ntk", action="store_false", help="Skip the NTK probe.")
    ap.add_argument(
        "--keep", type=Path, help="Keep the run directories here (default: a temp dir)."
    )
    args = ap.parse_args()
    # Started with nohup or `&`, this script ignores SIGINT, and so would every run it
    # starts (an ignored signal survives exec): the SIGINT trials would test nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.models = [m for m in args.models.split(",") if m]
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    work = args.keep or Path(tempfile.mkdtemp(prefix="fault-injection-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    try:
        ref = work / "reference"
        write_config(work / "reference.toml", ref, args.models, args.sizes, args.ntk)
        rc, output, wall = complete(work / "reference.toml")
        if rc != 0:
            print(output, file=sys.stderr)
            return 1
        total = stored_points(ref)
        print(
            f"reference: {total} points, {wall:.1f} s wall; {args.trials} trials, seed {args.seed}"
        )
        print(
            " #  signal   at(s)  rc-at-kill  kept  rerun: computed reused  curves  ranking  store"
        )
        trials = []
        for n in range(1, args.trials + 1):
            t = trial(work, n, args, ref, wall, rng)
            trials.append(t)
            print(
                f"{n:2d}  {t.signal:<7} {t.delay:6.2f}  {t.killed_rc!s:>10}  {t.kept:4d}"
                f"  {t.computed:14d} {t.reused:6d}  {'equal' if t.curves_equal else 'DIFF':>6}"
                f"  {'same' if t.ranking_equal else 'DIFF':>7}  {'ok' if t.store_ok else 'BAD':>5}",
                flush=True,
            )
        good = sum(t.ok for t in trials)
        saved = [t.reused / total for t in trials if t.reused >= 0]
        print(
            f"{good}/{len(trials)} reruns matched the uninterrupted run (curves.csv byte-equal, "
            f"same ranking, store intact); points kept by the kill: median "
            f"{statistics.median(t.kept for t in trials)} of {total}; reused on rerun: median "
            f"{statistics.median(saved):.0%}; rerun wall median "
            f"{statistics.median(t.rerun_seconds for t in trials):.1f} s vs {wall:.1f} s uninterrupted"
        )
        return 0 if good == len(trials) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
