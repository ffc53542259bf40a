"""The GPU path run for real: a 100M-500M real-architecture model, a short bf16 ladder, the NTK.

One prepared script for a machine with a GPU (under 8 minutes on one H100/H200):

1. a Llama-architecture model built from a config (random init, seeded), saved
   with save_pretrained and loaded back through the same path users' models take
   (resolve_model + load_model: fp32 master weights, bf16 autocast, TF32);
2. a short ladder of points through core.training.point.train_point (fused AdamW,
   pinned copies), with tokens/s, model FLOPs utilisation against the device's
   dense bf16 peak, and peak memory per point;
3. the NTK probe at that size with the default settings (32 examples, automatic
   projection: a CountSketch when the exact kernel does not fit);
4. the same points through transformers' Trainer (benchmarks/bench_train.py's
   trainer_point: same examples, steps, schedule, optimizer, precision) for a
   throughput ratio ours / Trainer.

It prints one JSON object and writes it to ``--out/gpu_check.json``. ``--tiny``
runs the same steps on a small model on the CPU, which is how the test suite
keeps the script working on machines without a GPU:

    python benchmarks/gpu_check.py                 # the real check (needs CUDA)
    python benchmarks/gpu_check.py --tiny --device cpu
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_train's Trainer point

import torch

from core.config import DataConfig, TrainConfig
from core.training.data import load_task, make_batch
from core.training.models import check_device, load_model, resolve_model
from core.training.ntk import probe_ntk
from core.training.point import train_point

PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
"""Dense bf16 tensor-core peaks (vendor data sheets, no sparsity), by device-name substring."""

SHAPES = {
    # ~0.16B parameters with a 32k vocabulary: 12 x 768 Llama blocks
    "real": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, heads=12),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, heads=2),
}


def build_model(out: Path, shape: str, vocab: int) -> Path:
    """A seeded random-init Llama with the zoo's BPE tokenizer, saved like a user's model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.training.zoo import make_tokenizer

    tok = make_tokenizer("llama")
    s = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=max(vocab, len(tok)),
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_hidden_layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["heads"],
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    folder = out / f"llama-{shape}"
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def ladder(spec: Any, task: Any, sizes: list[int], train: TrainConfig, data: DataConfig, device):
    """Each point through train_point on one loaded model: tokens/s, MFU, peak memory."""
    pair = load_model(spec, device)
    peak = peak_flops(device)
    rows = []
    for size in sizes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.synchronize(device)
        m = train_point(spec, task, size, train, data, device=device, model_and_tokenizer=pair)
        per_s = m.flops / m.seconds if m.seconds > 0 else math.nan
        rows.append(
            {
                "size": size,
                "loss": m.loss,
                "seconds": m.seconds,
                "train_tokens": m.train_tokens,
                "tokens_per_s": (m.train_tokens + m.eval_tokens) / m.seconds,
                "model_flops_per_s": per_s,
                "mfu": per_s / peak if peak else None,
                "peak_memory_bytes": peak_memory(device),
                "precision": m.hparams["precision"],
                "weights_dtype": m.hparams["weights_dtype"],
            }
        )
    return pair, rows


def ntk_at_size(pair: Any, spec: Any, task: Any, data: DataConfig, device) -> dict[str, Any]:
    model, tok = pair
    batch = make_batch(task, tok, spec.kind, 32, max_length=data.max_length)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    res = probe_ntk(model, batch, projection_dim="auto")
    return {
        "n": res.n,
        "num_params": res.num_params,
        "projection": res.projection,
        "projection_dim": res.projection_dim,
        "path": res.path,
        "seconds": res.seconds,
        "flops": res.flops,
        "peak_memory_bytes": res.peak_memory_bytes,
        "trace": float(res.theta.trace()),
    }


def trainer_ratio(spec, task, sizes, train: TrainConfig, data: DataConfig, device, ours):
    """The same points through transformers' Trainer: its training time against ours."""
    from bench_train import trainer_point

    rows = []
    for size, mine in zip(sizes, ours, strict=True):
        if size == 0:
            continue
        train_s, total_s, loss = trainer_point(spec, task, size, train, data, str(device))
        rows.append(
            {
                "size": size,
                "trainer_seconds": total_s,
                "trainer_train_seconds": train_s,
                "trainer_loss": loss,
                "ours_seconds": mine["seconds"],
                "seconds_ratio_ours_over_trainer": mine["seconds"] / total_s
                if total_s > 0
                else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a small model on the CPU (tests)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("gpu-check"))
    ap.add_argument("--sizes", default=None, help="ladder sizes, comma separated")
    ap.add_argument("--max-length", type=int, default=None)
    args = ap.parse_args(argv)
    device = torch.device(check_device(args.device))
    if not args.tiny and device.type != "cuda":
        print("gpu_check: no CUDA device here; use --tiny for the CPU check", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    shape = "tiny" if args.tiny else "real"
    sizes = [int(s) for s in (args.sizes or ("8,16" if args.tiny else "0,256,512,1024")).split(",")]
    data = DataConfig(
        validation_size=8 if args.tiny else 64,
        test_size=16 if args.tiny else 128,
        max_length=args.max_length or (32 if args.tiny else 256),
    )
    train = TrainConfig(batch_size=8 if args.tiny else 16, min_steps=2, precision="bf16")
    t0 = time.perf_counter()
    folder = build_model(args.out, shape, 1024 if args.tiny else 32000)
    spec = resolve_model(str(folder))
    task = load_task(data)
    pair, points = ladder(spec, task, sizes, train, data, device)
    ntk = ntk_at_size(pair, spec, task, data, device)
    del pair
    trainer = trainer_ratio(spec, task, sizes, train, data, device, points)
    ladder_flops = sum(6.0 * (spec.params or 0) * p["train_tokens"] for p in points)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "model": {"path": str(folder), "params": spec.params, "family": spec.family},
        "points": points,
        "ntk": {**ntk, "ladder_fraction": ntk["flops"] / ladder_flops if ladder_flops else None},
        "trainer": trainer,
        "seconds": time.perf_counter() - t0,
    }
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
