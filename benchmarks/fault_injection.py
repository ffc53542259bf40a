"""Kill a real run at moments spread over its whole span, rerun it, and check nothing changed.

One uninterrupted headless run is the reference; the time of each line it
prints is its timeline: the start (imports, data, model checks) up to the
``run:`` line, the first point (the model loads, the zero-shot evaluation),
then each ``[k/N]`` line (point k is in the store; the refit and the
results.json/curves.csv writes follow), the ``Ranking`` line (the run has
finished; the tables print) and the exit (the interpreter tears torch down).

Each trial aims at one moment of that timeline, the moments taken in turn in
a seeded shuffle so that every kind is hit: during the start; during the first
point; right after point k is stored (0-20 ms after its line: between the
store's commit and the results.json write); while point k trains (a random
fraction of the reference's gap between lines k-1 and k, counted from line k-1
of the trial's own output); during the final refit and write (after the last
point's line); after the run finished (after ``Ranking``). The trial's run is
started as its own process, its output watched line by line, and at the aimed
moment it gets SIGKILL, SIGTERM or SIGINT; then it is rerun to the end with the
same --out. After each rerun, curves.csv must equal the reference's byte for
byte, results.json must say "finished" with the reference's ranking, and the
store must pass SQLite's integrity check. The table says where each kill
landed: the last line the killed run had printed and the points in its store.

    python benchmarks/fault_injection.py --trials 20 --seed 0 --models tiny:gpt2-s
    python benchmarks/fault_injection.py --trials 5 --seed 3 --keep /tmp/fi

Exit status 0 when every trial matched, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig  # noqa: E402

SIGNALS = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
"""What a trial sends: kill -9 twice as often as the polite signals."""

POINT_LINE = re.compile(r"^\[(\d+)/(\d+)\]")
STORED_JITTER = 0.02
"""A kill aimed "right after point k is stored" lands within this many seconds of its line."""


@dataclass
class Watched:
    """A run started as its own process, its output lines timed as they arrive."""

    proc: subprocess.Popen[str]
    t0: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, config: Path) -> Watched:
        proc = subprocess.Popen(
            run_cmd(config),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        started(proc.pid)
        run = cls(proc, time.monotonic())
        threading.Thread(target=run._read, daemon=True).start()
        return run

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    def seen(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.lines)

    def wait_line(self, pick: str) -> float | None:
        """Seconds from the start to the first line matching ``pick``; None if the run ended first."""
        while True:
            for at, line in self.seen():
                if milestone(line) == pick:
                    return at
            if self.proc.poll() is not None:
                time.sleep(0.05)  # the reader may still hold the last lines
                return next((at for at, ln in self.seen() if milestone(ln) == pick), None)
            time.sleep(0.002)


def milestone(line: str) -> str | None:
    """``run``, ``point k``, ``ranking``, or None: the lines a timeline is made of."""
    if line.startswith("run:"):
        return "run"
    if m := POINT_LINE.match(line):
        return f"point {int(m.group(1))}"
    if line.startswith("Ranking"):
        return "ranking"
    return None


@dataclass(frozen=True)
class Moment:
    """Where a trial aims its kill: after line ``after`` (None: the start), plus ``wait`` seconds."""

    kind: str
    after: str | None
    wait_range: tuple[float, float]


def moments(timeline: dict[str, float], exit_at: float, points: int) -> list[Moment]:
    """Every kind of moment the reference run has, with the waits its timings give."""

    def gap(a: str | None, b: str | None, end: float | None = None) -> float:
        start = timeline[a] if a is not None else 0.0
        stop = timeline[b] if b is not None else (end if end is not None else exit_at)
        return max(stop - start, 0.0)

    out = [
        Moment("start (imports, data, checks)", None, (0.0, gap(None, "run"))),
        Moment("point 1 (model load, zero-shot)", "run", (0.0, gap("run", "point 1"))),
    ]
    for k in range(1, points + 1):
        out.append(Moment(f"right after point {k} stored", f"point {k}", (0.0, STORED_JITTER)))
        if k >= 2:
            lo = STORED_JITTER
            out.append(
                Moment(
                    f"training point {k}",
                    f"point {k - 1}",
                    (lo, gap(f"point {k - 1}", f"point {k}")),
                )
            )
    last = f"point {points}"
    out.append(Moment("final refit and write", last, (STORED_JITTER, gap(last, "ranking"))))
    out.append(Moment("finished (tables, teardown)", "ranking", (0.0, gap("ranking", None) / 2)))
    return out


@dataclass
class Trial:
    aimed: str
    at: float
    signal: str
    landed: str
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
    return [sys.executable, "-m", "lensllm_tui", "run", "--no-ui", "--config", str(config)]


def started(pid: int, timeout: float = 30.0) -> None:
    """Wait until the child has exec'd the program: a signal sent between fork and exec
    is lost with the parent's handlers, which would make a trial a no-op, not a test."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if b"lensllm_tui" in cmdline.read_bytes():
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


def reference(config: Path) -> tuple[dict[str, float], float, str]:
    """The uninterrupted run: its milestones' times, its wall time, its output."""
    run = Watched.start(config)
    run.proc.wait()
    exit_at = time.monotonic() - run.t0
    time.sleep(0.1)
    lines = run.seen()
    timeline = {}
    for at, line in lines:
        if (name := milestone(line)) is not None:
            timeline.setdefault(name, at)
    return timeline, exit_at, "\n".join(ln for _, ln in lines) if run.proc.returncode else ""


def landed(seen: list[tuple[float, str]], kill_at: float, kept: int) -> str:
    """The last milestone printed before the kill, how long before it, and the points stored."""
    before = [(at, milestone(ln)) for at, ln in seen if at <= kill_at and milestone(ln)]
    if not before:
        return f"before run: (+{kill_at:.2f}s), {kept} stored"
    at, name = before[-1]
    return f"{name} +{(kill_at - at) * 1000:.0f}ms, {kept} stored"


def trial(
    work: Path, n: int, args: argparse.Namespace, ref: Path, moment: Moment, rng: random.Random
) -> Trial:
    out = work / f"trial-{n:02d}"
    config = work / f"trial-{n:02d}.toml"
    write_config(config, out, args.models, args.sizes, args.ntk)
    sig = rng.choice(SIGNALS)
    wait = rng.uniform(*moment.wait_range)
    run = Watched.start(config)
    base = 0.0 if moment.after is None else run.wait_line(moment.after)
    killed_rc = run.proc.poll()
    kill_at = -1.0
    if base is not None and killed_rc is None:
        target = run.t0 + base + wait
        while time.monotonic() < target and run.proc.poll() is None:
            time.sleep(min(0.002, max(target - time.monotonic(), 0.0)))
        killed_rc = run.proc.poll()
        if killed_rc is None:
            kill_at = time.monotonic() - run.t0
            run.proc.send_signal(sig)
    try:
        killed_rc = run.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # a polite signal not obeyed: that is a failure too
        run.proc.kill()
        killed_rc = run.proc.wait()
    time.sleep(0.05)
    kept = stored_points(out)
    where = landed(run.seen(), kill_at, kept) if kill_at >= 0 else "ended before the kill"
    if kill_at >= 0 and killed_rc in (0, 1):  # the signal found the process already gone
        where = f"exited first ({where})"
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
        moment.kind,
        kill_at,
        sig.name,
        where,
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


def report(trials: list[Trial], total: int, wall: float) -> None:
    good = sum(t.ok for t in trials)
    by_kind: dict[str, list[Trial]] = collections.defaultdict(list)
    for t in trials:
        by_kind[t.aimed].append(t)
    print("\nby moment aimed at:")
    for kind, ts in by_kind.items():
        print(f"  {kind:<34} {sum(t.ok for t in ts)}/{len(ts)} matched")
    saved = [t.reused / total for t in trials if t.reused >= 0]
    print(
        f"{good}/{len(trials)} reruns matched the uninterrupted run (curves.csv byte-equal, "
        f"same ranking, store intact); points kept by the kill: median "
        f"{statistics.median(t.kept for t in trials)} of {total}; reused on rerun: median "
        f"{statistics.median(saved):.0%}; rerun wall median "
        f"{statistics.median(t.rerun_seconds for t in trials):.1f} s vs {wall:.1f} s uninterrupted"
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
        timeline, wall, failed = reference(work / "reference.toml")
        if failed:
            print(failed, file=sys.stderr)
            return 1
        total = stored_points(ref)
        kinds = moments(timeline, wall, total)
        print(
            f"reference: {total} points, {wall:.1f} s wall (run: at {timeline['run']:.1f} s, "
            f"last point at {timeline[f'point {total}']:.1f} s); {len(kinds)} kinds of moment; "
            f"{args.trials} trials, seed {args.seed}"
        )
        print(
            f" #  {'aimed at':<32} signal   at(s)  {'landed (last line before the kill)':<36}"
            "  rc    rerun: computed reused  curves  ranking  store"
        )
        order: list[Moment] = []
        trials = []
        for n in range(1, args.trials + 1):
            if not order:
                order = rng.sample(kinds, len(kinds))  # every kind once per round, shuffled
            t = trial(work, n, args, ref, order.pop(), rng)
            trials.append(t)
            print(
                f"{n:2d}  {t.aimed:<32} {t.signal:<7} {t.at:6.2f}  {t.landed:<36}"
                f"  {t.killed_rc!s:>4}  {t.computed:14d} {t.reused:6d}"
                f"  {'equal' if t.curves_equal else 'DIFF':>6}"
                f"  {'same' if t.ranking_equal else 'DIFF':>7}  {'ok' if t.store_ok else 'BAD':>5}",
                flush=True,
            )
        report(trials, total, wall)
        return 0 if all(t.ok for t in trials) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
