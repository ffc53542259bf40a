"""Executors against the in-process path: start-up, per-point overhead, whole-run speed-up.

Everything is measured in ONE invocation, each figure against a baseline taken
in the same invocation (the machine may be shared: compare the ratios and
medians, not absolute seconds):

1. ``start-up``: how long each backend takes until its workers are ready
   (spawn and imports; for ray also starting a local instance). It is paid once
   per run, not per point, and is part of the run times below.
2. ``overhead``: one point of about ``--point-seconds`` seconds (tiny:gpt2-l,
   the model already loaded) trained in process by ``train_point``, against the
   same point as a job through each executor with one worker of the same torch
   thread count that already holds the model (a first job loads it). In-process
   points and jobs alternate ``--repeats`` times; prints both medians and the
   overhead of the job (target: under 10% for a 5 s point).
3. ``runs``: the default run (the tiny zoo on the default ladder with its NTK
   probes, fresh output directories, the zoo built beforehand) with ``local``
   (torch's default threads) and then ``pool`` and ``ray`` at ``--workers``
   workers of one torch thread each. Prints wall seconds, the speed-up over
   local (target: at least 1.6x at 2 workers on a 2-core machine), how busy the
   workers were (training seconds over wall x workers) and checks that every
   point's loss agrees with local to 1e-5. It also runs local once more with
   OpenMP's default wait policy (the command as a user types it), and prints
   what the cores allow: the workers' points on one thread each against local's
   on all of them bound the speed-up of the training itself.

    python benchmarks/bench_executors.py            # all three, about 6-8 minutes on 2 cores
    python benchmarks/bench_executors.py --quick    # a smaller run and point, for development
    python benchmarks/bench_executors.py runs --backends pool

Every process here runs with ``OMP_WAIT_POLICY=PASSIVE`` unless it is set: with
torch's default (spinning OpenMP threads) the quick local run took 195 s against
27 s on 2 cores shared with other jobs, which would have made local look far
worse than the pool (whose workers set it themselves). Ray is skipped with a
note when it is not installed (pip install -e '.[ray]').
"""

from __future__ import annotations

import os

# Before torch loads, here and in every process this starts (the runs, a local Ray):
# spinning OpenMP threads on a busy machine made the same local run 7x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core.config import ExecutorConfig, RunConfig
from core.run.executors import Executor, JobDone, JobFailed, PointJob, make_executor
from core.training.data import load_task
from core.training.models import load_model, resolve_model
from core.training.point import train_point

POINT_MODEL = "tiny:gpt2-l"
QUICK_MODELS = ["tiny:gpt2-s", "tiny:llama-s"]
QUICK_SIZES = [200, 400]


def ray_missing(backend: str) -> bool:
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        print("  ray: not installed (pip install -e '.[ray]'): skipped")
        return True
    return False


def ready_executor(backend: str, workers: int, threads: int, task: Any) -> tuple[Executor, float]:
    """An executor whose workers are all up, and the seconds that took."""
    start = time.perf_counter()
    ecfg = ExecutorConfig(backend=backend, workers=workers, threads=threads)
    ex = make_executor(ecfg, task, "cpu")
    while not all(s.ready for s in ex.slots):
        ex.poll(0.02)
    return ex, time.perf_counter() - start


def job_seconds(ex: Executor, job: PointJob) -> float:
    """Driver-side wall time of one job: submit, train on the worker, result back."""
    start = time.perf_counter()
    ex.submit(job)
    while True:
        for u in ex.poll(0.005):
            if isinstance(u, JobDone):
                return time.perf_counter() - start
            if isinstance(u, JobFailed):
                raise RuntimeError(u.reason)


def bench_overhead(point_seconds: float, repeats: int, backends: list[str]) -> None:
    import torch

    cfg = RunConfig()
    task = load_task(cfg.data)
    spec = resolve_model(POINT_MODEL)
    pair = load_model(spec, "cpu")
    threads = torch.get_num_threads()

    def inproc(size: int) -> float:
        """train_point called directly, from a fresh thread as the local executor calls it.

        Not from the main thread: there, on a shared machine, torch's OpenMP team
        spin-waits for descheduled threads and the same point took 10-20x longer
        (13-24 s against 1-2 s on a 2-core machine at load 12), which would make
        every executor look faster than in process.
        """
        took: list[float] = []

        def work() -> None:
            start = time.perf_counter()
            train_point(
                spec,
                task,
                size,
                cfg.train,
                cfg.data,
                device="cpu",
                model_and_tokenizer=pair,
                cancel=threading.Event(),
            )
            took.append(time.perf_counter() - start)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        return took[0]

    inproc(200)  # warm-up: tokenisation of the task, first-call costs
    size = max(50, round(400 * point_seconds / inproc(400)))
    print(
        f"per-point overhead: {POINT_MODEL} at size {size} (about {point_seconds:g} s),"
        f" {threads} torch threads, median of {repeats}"
    )
    for backend in backends:
        if ray_missing(backend):
            continue
        ex, up = ready_executor(backend, 1, threads, task)
        with ex:

            def job(i: int) -> PointJob:
                return PointJob(i, spec, size, cfg.train, cfg.data, task.fingerprint)

            first = job_seconds(ex, job(0))  # loads the model into the worker
            own, through = [], []
            for i in range(repeats):
                own.append(inproc(size))
                through.append(job_seconds(ex, job(i + 1)))
        base, med = statistics.median(own), statistics.median(through)
        paired = statistics.median(t / o - 1 for t, o in zip(through, own, strict=True))
        print(
            f"  {backend:<5} start-up {up:5.1f}s, first job {first:5.2f}s (loads the model);"
            f" in process {base:5.2f}s, as a job {med:5.2f}s:"
            f" overhead {med - base:+.2f}s = {100 * (med / base - 1):+.1f}%"
            f" (median of paired ratios {100 * paired:+.1f}%)"
        )


def one_run(
    out: Path, quick: bool, *executor: str, env: dict[str, str] | None = None
) -> tuple[float, dict[tuple[str, int], Any]]:
    """Wall seconds of ``lensllm-tui run --no-ui`` as a user types it, and its points.

    A fresh process each time, so every backend pays its imports as a user's run
    does (the local run once, in the driver; a CPU pool also in its forkserver,
    ray in each worker).
    """
    cmd = [sys.executable, "-m", "lensllm_tui", "run", "--no-ui", "--device", "cpu"]
    if quick:
        cmd += ["--models", ",".join(QUICK_MODELS), "--sizes", ",".join(map(str, QUICK_SIZES))]
    cmd += ["--out", str(out), *executor]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    points = {(m["model"], p["size"]): p for m in results["models"] for p in m["points"]}
    return seconds, points


def bench_runs(workers: int, backends: list[str], quick: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    models = QUICK_MODELS if quick else RunConfig().models
    sizes = QUICK_SIZES if quick else RunConfig().sizes
    for name in models:
        resolve_model(name)  # build the zoo outside the timings
    what = "a quick run" if quick else "the default run"
    print(f"{what}: {len(models)} models x {[0, *sizes]} with NTK probes, `lensllm-tui run`")
    base, want = one_run(root / "local", quick, "--executor", "local")
    local_train = sum(p["seconds"] for p in want.values())
    print(
        f"  local x1 (in process, torch default threads): {base:6.1f}s"
        f"  ({local_train:.1f}s of it training points)"
    )
    # the command as a user types it, with OpenMP's own wait policy (threads spin a while)
    plain = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    spin, _ = one_run(root / "local-spin", quick, "--executor", "local", env=plain)
    print(f"  local x1 without OMP_WAIT_POLICY (OpenMP's default): {spin:6.1f}s")
    for backend in backends:
        if ray_missing(backend):
            continue
        flags = ("--executor", backend, "--workers", str(workers), "--threads", "1")
        seconds, got = one_run(root / backend, quick, *flags)
        assert set(got) == set(want), f"{backend}: points {sorted(set(want) ^ set(got))}"
        busy = sum(p["seconds"] for p in got.values()) / (seconds * workers)
        worst = max(abs(p["loss"] - want[k]["loss"]) for k, p in got.items())
        agree = "losses agree with local" if worst <= 1e-5 else f"LOSSES DIFFER by {worst:.1e}"
        print(
            f"  {backend} x{workers} (1 thread each): {seconds:6.1f}s"
            f"  speed-up {base / seconds:.2f}x, workers busy {100 * busy:.0f}%, {agree}"
        )
        print(f"    {spin / seconds:.2f}x over the local run with OpenMP's default policy")
        # What the cores allow: the same points took `train` seconds on one thread each
        # against local_train on all of them; no schedule of `workers` one-thread workers
        # finishes the training in less than train / workers.
        train = sum(p["seconds"] for p in got.values())
        print(
            f"    its points on 1 thread: {train:.1f}s, {train / local_train:.2f}x local's;"
            f" training alone can be at most {workers * local_train / train:.2f}x faster"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=("runs", "overhead", "all"), default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["pool", "ray"])
    parser.add_argument("--point-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 models x 2 sizes, 2 s points")
    args = parser.parse_args()
    if args.quick:
        args.point_seconds, args.repeats = 2.0, min(args.repeats, 3)
    start = time.perf_counter()
    if args.what in ("overhead", "all"):
        bench_overhead(args.point_seconds, args.repeats, ["local", *args.backends])
    if args.what in ("runs", "all"):
        bench_runs(args.workers, args.backends, args.quick)
    print(f"(benchmark took {time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":  # spawned pool workers import this file: keep the guard
    main()
