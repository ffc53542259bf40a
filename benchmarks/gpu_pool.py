"""The pool executor on every GPU of a box: throughput per GPU and the idle gap between points.

One prepared script for a machine with one or more GPUs (about 3 minutes on one
H100/H200): the Llama-architecture model of benchmarks/gpu_check.py (about
0.16B parameters, random init, saved and loaded back like a user's model),
a ladder of points repeated so that every worker trains several, run through
``--executor pool`` with one worker per visible GPU (``core.run.executors``,
the same jobs a run submits). Per worker it reports

- throughput: training tokens per second of point time, and model FLOPs per
  second against the device's dense bf16 peak (MFU);
- the gap between points: the worker's wall span from its first job's start to
  its last job's end, less the time inside its points, per point boundary; this
  is what the driver and the pipes cost the GPU (a fresh model load shows up
  in the first point, not in the gap);
- peak device memory in use as the worker reported it (torch.cuda.mem_get_info).

It prints one JSON object and writes it to ``--out/gpu_pool.json``. ``--tiny``
runs the same on a small model with CPU workers, which is how the test suite
keeps the script working without a GPU:

    python benchmarks/gpu_pool.py                              # every visible GPU
    CUDA_VISIBLE_DEVICES=0,1 python benchmarks/gpu_pool.py     # some of them
    python benchmarks/gpu_pool.py --tiny --device cpu --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check's model and peaks

from core.config import DataConfig, ExecutorConfig, TrainConfig
from core.run.executors import JobDone, JobFailed, JobProgress, JobStarted, PointJob, make_executor
from core.run.executors.devices import visible_gpus
from core.training.data import load_task
from core.training.models import check_device, resolve_model


def run_pool(
    task: Any, jobs: list[PointJob], workers: int, device: str, limit: float
) -> tuple[dict[int, tuple[float, float, str]], dict[int, Any], dict[str, int]]:
    """Every job through the pool: (start, end, worker) per job, results, peak memory per worker."""
    ex = make_executor(ExecutorConfig(backend="pool", workers=workers, threads=1), None, device)
    spans: dict[int, tuple[float, float, str]] = {}
    results: dict[int, Any] = {}
    memory: dict[str, int] = {}
    started: dict[int, float] = {}
    deadline = time.monotonic() + limit
    with ex:
        ex.load(task)
        for job in jobs:
            ex.submit(job)
        while len(spans) < len(jobs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(spans)} of {len(jobs)} points in {limit:.0f}s")
            for u in ex.poll(0.05):
                now = time.monotonic()
                if isinstance(u, JobStarted):
                    started[u.job_id] = now
                elif isinstance(u, JobProgress) and u.memory_used is not None:
                    memory[u.worker] = max(memory.get(u.worker, 0), u.memory_used)
                elif isinstance(u, JobFailed):
                    raise RuntimeError(f"point {u.job_id} failed on {u.worker}: {u.reason}")
                elif isinstance(u, JobDone):
                    spans[u.job_id] = (started[u.job_id], now, u.worker)
                    results[u.job_id] = u.result
    return spans, results, memory


def per_worker(
    spec: Any,
    spans: dict[int, tuple[float, float, str]],
    results: dict[int, Any],
    memory: dict[str, int],
    peak: float | None,
) -> dict[str, dict[str, Any]]:
    """Throughput over the time inside points; the gap from each point's end to the next's.

    A worker's first job also loads the model (outside the point's own seconds),
    so it is reported apart, and the gaps are taken from its end on.
    """
    out: dict[str, dict[str, Any]] = {}
    for worker in sorted({w for _, _, w in spans.values()}):
        mine = sorted((s, e, j) for j, (s, e, w) in spans.items() if w == worker)
        inside = sum(results[j].seconds for _, _, j in mine)
        tokens = sum(results[j].train_tokens for _, _, j in mine)
        flops = 6.0 * (spec.params or 0) * tokens
        first_start, first_end, first = mine[0]
        later = sum(results[j].seconds for _, _, j in mine[1:])
        boundaries = len(mine) - 1
        out[worker] = {
            "points": len(mine),
            "point_seconds": inside,
            "train_tokens_per_s": tokens / inside if inside > 0 else None,
            "model_flops_per_s": flops / inside if inside > 0 else None,
            "mfu": flops / inside / peak if peak and inside > 0 else None,
            "first_job_load_seconds": first_end - first_start - results[first].seconds,
            "gap_seconds_per_point": (mine[-1][1] - first_end - later) / boundaries
            if boundaries
            else None,
            "busy_fraction_after_first": later / (mine[-1][1] - first_end) if boundaries else None,
            "peak_memory_used_bytes": memory.get(worker),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from gpu_check import build_model, peak_flops

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a small model on CPU workers (tests)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None, help="default: one per visible GPU")
    ap.add_argument("--out", type=Path, default=Path("gpu-pool"))
    ap.add_argument("--sizes", default=None, help="ladder sizes, comma separated")
    ap.add_argument("--rounds", type=int, default=None, help="ladders per worker")
    ap.add_argument("--limit", type=float, default=480.0, help="seconds before giving up")
    args = ap.parse_args(argv)
    device = check_device(args.device)
    gpus = visible_gpus(device)
    if not args.tiny and not gpus:
        print("gpu_pool: no CUDA device here; use --tiny for the CPU check", file=sys.stderr)
        return 2
    workers = args.workers or max(len(gpus), 1)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in (args.sizes or ("8,16" if args.tiny else "256,512,1024")).split(",")]
    rounds = args.rounds or 2
    data = DataConfig(
        validation_size=8 if args.tiny else 64,
        test_size=16 if args.tiny else 128,
        max_length=32 if args.tiny else 256,
    )
    train = TrainConfig(batch_size=8 if args.tiny else 16, min_steps=2, precision="bf16")
    folder = build_model(args.out, "tiny" if args.tiny else "real", 1024 if args.tiny else 32000)
    spec = resolve_model(str(folder))
    task = load_task(data)
    jobs = [
        PointJob(i, spec, size, train, data, task.fingerprint)
        for i, size in enumerate(s for _ in range(rounds * workers) for s in sizes)
    ]
    t0 = time.perf_counter()
    spans, results, memory = run_pool(task, jobs, workers, device, args.limit)
    wall = time.perf_counter() - t0
    name = "cpu"
    peak = None
    if gpus:
        import torch

        name = torch.cuda.get_device_name(0)
        peak = peak_flops(torch.device("cuda", 0))
    report = {
        "device": name,
        "gpus": gpus,
        "workers": workers,
        "params": spec.params,
        "sizes": sizes,
        "points": len(jobs),
        "wall_seconds": wall,
        "per_worker": per_worker(spec, spans, results, memory, peak),
    }
    (args.out / "gpu_pool.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":  # spawned pool workers import this file: keep the guard
    raise SystemExit(main())
