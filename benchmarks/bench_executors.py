"""Executors against the in-process path: whole-run wall time, and per-point overhead.

Two measurements, each against a baseline taken in the same invocation (the
machine may be shared, so compare ratios and medians, not absolute seconds):

1. ``runs``: the default run (the tiny zoo on the default ladder, fresh
   output directories, zoo already built) with ``--executor local`` and then
   ``pool`` and ``ray`` at ``--workers`` workers of one torch thread each.
   Prints wall seconds and the speed-up over local (target: pool >= 1.6x at 2
   workers on a 2-core machine).
2. ``overhead``: one point of about ``--point-seconds`` seconds trained in
   process (train_point on a model already loaded) against the same point as a
   job through each executor with one worker holding the same model (a warm-up
   job first, so neither side pays the load). Prints the median extra seconds
   and the overhead as a percentage (target: under 10% for a 5 s point).

    python benchmarks/bench_executors.py                 # both, 2 workers
    python benchmarks/bench_executors.py runs --workers 2 --backends pool ray
    python benchmarks/bench_executors.py overhead --repeats 5

Ray is skipped with a note when it is not installed (pip install -e '.[ray]').
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import threading
import time
from pathlib import Path

from core.config import ExecutorConfig, RunConfig
from core.run.executors import JobDone, JobFailed, PointJob, make_executor
from core.run.runner import run_events
from core.training.data import load_task
from core.training.models import load_model, resolve_model
from core.training.point import train_point


def _ray_ready(workers: int, threads: int) -> bool:
    if importlib.util.find_spec("ray") is None:
        print("ray: not installed (pip install -e '.[ray]'): skipped")
        return False
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
    return True


def one_run(backend: str, workers: int, out: Path) -> float:
    """Wall seconds of the default run on ``backend`` (workers of one thread each)."""
    cfg = RunConfig(
        out_dir=str(out), executor=ExecutorConfig(backend=backend, workers=workers, threads=1)
    )
    if backend == "local":
        cfg = RunConfig(out_dir=str(out))
    start = time.perf_counter()
    events = list(run_events(cfg))
    seconds = time.perf_counter() - start
    last = events[-1]
    failed = getattr(last, "failed", ())
    assert type(last).__name__ == "RunFinished" and not failed, last
    return seconds


def bench_runs(workers: int, backends: list[str]) -> None:
    for name in RunConfig().models:
        resolve_model(name)  # build the zoo outside the timings
    root = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    base = one_run("local", 1, root / "local")
    print(f"default run, local (in-process, torch default threads): {base:7.1f}s")
    for backend in backends:
        if backend == "ray" and not _ray_ready(workers, 1):
            continue
        seconds = one_run(backend, workers, root / backend)
        print(
            f"default run, {backend} x{workers} (1 thread each):"
            f" {seconds:7.1f}s  speed-up {base / seconds:.2f}x"
        )


def _job_seconds(ex: object, job: PointJob) -> float:
    start = time.perf_counter()
    ex.submit(job)  # type: ignore[attr-defined]
    while True:
        for u in ex.poll(0.01):  # type: ignore[attr-defined]
            if isinstance(u, JobDone):
                return time.perf_counter() - start
            if isinstance(u, JobFailed):
                raise RuntimeError(u.reason)


def bench_overhead(point_seconds: float, repeats: int, backends: list[str]) -> None:
    cfg = RunConfig()
    task = load_task(cfg.data)
    spec = resolve_model("tiny:gpt2-l")
    pair = load_model(spec, "cpu")
    size = 400
    train_point(spec, task, size, cfg.train, cfg.data, device="cpu", model_and_tokenizer=pair)
    first = _inproc(spec, task, size, cfg, pair)
    size = max(50, int(size * point_seconds / first))  # about point_seconds per point
    inproc = [_inproc(spec, task, size, cfg, pair) for _ in range(repeats)]
    base = statistics.median(inproc)
    print(f"one point (tiny:gpt2-l, size {size}) in process: median {base:.2f}s of {repeats}")
    import torch

    threads = torch.get_num_threads()
    for backend in backends:
        if backend == "ray" and not _ray_ready(1, threads):
            continue
        ecfg = ExecutorConfig(backend=backend, workers=1, threads=threads)
        with make_executor(ecfg, task, "cpu") as ex:
            job = PointJob(0, spec, size, cfg.train, cfg.data, task.fingerprint)
            _job_seconds(ex, job)  # warm-up: start the worker, load the model
            runs = [
                _job_seconds(ex, PointJob(i + 1, spec, size, cfg.train, cfg.data, task.fingerprint))
                for i in range(repeats)
            ]
        med = statistics.median(runs)
        print(
            f"  through {backend:<5} (1 worker, {threads} threads): median {med:.2f}s,"
            f" overhead {med - base:+.2f}s = {100 * (med - base) / base:+.1f}%"
        )


def _inproc(spec: object, task: object, size: int, cfg: RunConfig, pair: object) -> float:
    start = time.perf_counter()
    train_point(
        spec,
        task,
        size,
        cfg.train,
        cfg.data,
        device="cpu",  # type: ignore[arg-type]
        model_and_tokenizer=pair,
        cancel=threading.Event(),
    )  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=("runs", "overhead", "all"), default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["pool", "ray"])
    parser.add_argument("--point-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.what in ("overhead", "all"):
        bench_overhead(args.point_seconds, args.repeats, ["local", *args.backends])
    if args.what in ("runs", "all"):
        bench_runs(args.workers, args.backends)


if __name__ == "__main__":  # spawned pool workers import this file: keep the guard
    main()
