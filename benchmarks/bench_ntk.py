"""Cost of the empirical NTK probe: seconds and peak memory against model size.

For a few tiny-to-small GPT-2 configs (built from configs, saved and loaded
back with from_pretrained, no network) this times core.training.ntk.probe_ntk on a
probe batch shaped like the default run's (32 examples, up to 128 tokens):

- exact kernel, torch.func vmap path (the default);
- exact kernel, one backward per example (the fallback);
- randomly projected kernel (k = --k), vmap path;
- the same with examples chunked so a chunk's gradients stay under 8 MiB
  (the bounded-memory setting for large models).

It prints medians over --repeats runs and the ratios against the exact vmap
run measured in the same process (timings on a shared machine are noisy:
read the ratios). Peak memory is what NTKResult reports: peak CUDA allocation
on a GPU, otherwise the peak growth of the process RSS sampled every 2 ms. So
that RSS follows what is live, the script re-executes itself with glibc's
MALLOC_MMAP_THRESHOLD_ fixed at 128 KiB: every large tensor is then its own
mapping, returned to the system when freed, instead of staying in the heap
after an earlier variant freed it.

Then it checks the budget claim of issue 6: for the default run the NTK costs
under 5% of the ladder's FLOPs. NTK FLOPs = 6 x params x probe tokens
(forward + backward) + projection + Gram (NTKResult.flops); ladder FLOPs =
6 x params x training tokens summed over all ladder sizes, with the default
config's steps (max(min_steps, ceil(epochs x size / batch)) x batch examples)
and the same mean tokens per example as the probe.

    /work/main/.venv/bin/python benchmarks/bench_ntk.py [--repeats 3] [--k 512]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import RunConfig
from core.training.ntk import probe_ntk

SIZES = {  # name: (n_embd, n_layer, n_head)
    "gpt2-32x2": (32, 2, 2),
    "gpt2-64x2": (64, 2, 2),
    "gpt2-128x4": (128, 4, 4),
    "gpt2-256x4": (256, 4, 4),
}
VOCAB = 1024


def build(name: str, root: Path) -> torch.nn.Module:
    d, layers, heads = SIZES[name]
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=d, n_layer=layers, n_head=heads, n_positions=256)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(root / name)
    return AutoModelForCausalLM.from_pretrained(root / name).eval()


def probe_batch(n: int, max_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded rows of 3/4 to full length, as a tokenised text split gives."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, max_len), generator=g)
    lengths = torch.randint(3 * max_len // 4, max_len + 1, (n,), generator=g)
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def measure(model, batch, repeats: int, **kw) -> dict[str, float | str]:
    secs, mems = [], []
    res = None
    for _ in range(repeats):
        res = probe_ntk(model, batch, **kw)
        secs.append(res.seconds)
        mems.append(res.peak_memory_bytes or 0)
    assert res is not None
    return {
        "s": statistics.median(secs),
        "mem": statistics.median(mems),
        "path": res.path,
        "flops": res.flops,
        "tokens": res.tokens,
        "params": res.num_params,
    }


def ladder_flop_ratio(cfg: RunConfig, ntk_flops: float, params: int, tokens_per_ex: float) -> float:
    t = cfg.train
    examples = 0
    for size in cfg.sizes:
        steps = max(t.min_steps, math.ceil(t.epochs * size / t.batch_size))
        examples += steps * t.batch_size
    ladder = 6.0 * params * examples * tokens_per_ex
    return ntk_flops / ladder


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=512, help="projection dimension")
    ap.add_argument("--n", type=int, default=None, help="probe size (default: config's)")
    ap.add_argument("--max-len", type=int, default=None, help="tokens per example")
    ap.add_argument("--sizes", nargs="*", default=list(SIZES)[:3], choices=list(SIZES))
    args = ap.parse_args()
    cfg = RunConfig()
    n = args.n or cfg.ntk.probe_size
    max_len = args.max_len or cfg.data.max_length
    batch = probe_batch(n, max_len)
    print(f"probe: n={n}, up to {max_len} tokens; torch threads {torch.get_num_threads()}")
    header = f"{'model':<12}{'params':>10}  {'variant':<20}{'median s':>10}{'x exact':>9}{'peak MiB':>10}{'x exact':>9}"
    print(header)
    print("-" * len(header))
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes:
            model = build(name, Path(tmp))
            probe_ntk(model, probe_batch(2, 8))  # warm-up: first vmap trace and allocator
            rows = {
                "exact / vmap": measure(model, batch, args.repeats, path="vmap"),
                "exact / backward": measure(model, batch, args.repeats, path="backward"),
                f"proj k={args.k} / vmap": measure(
                    model, batch, args.repeats, projection_dim=args.k, path="vmap"
                ),
                f"proj k={args.k} / 8 MiB": measure(
                    model,
                    batch,
                    args.repeats,
                    projection_dim=args.k,
                    path="vmap",
                    max_chunk_bytes=8 * 2**20,
                ),
            }
            base = rows["exact / vmap"]
            for variant, r in rows.items():
                print(
                    f"{name:<12}{r['params']:>10,}  {variant:<20}{r['s']:>10.3f}"
                    f"{r['s'] / base['s']:>9.2f}{r['mem'] / 2**20:>10.1f}"
                    f"{(r['mem'] / base['mem'] if base['mem'] else float('nan')):>9.2f}"
                )
            tokens_per_ex = base["tokens"] / n
            total = sum(p.numel() for p in model.parameters())
            ratios.append((name, ladder_flop_ratio(cfg, base["flops"], total, tokens_per_ex)))
            del model
    print()
    print(f"default ladder {cfg.sizes}, batch {cfg.train.batch_size}, epochs {cfg.train.epochs}:")
    for name, ratio in ratios:
        verdict = "OK" if ratio < 0.05 else "OVER"
        print(f"  {name:<12} NTK FLOPs / ladder FLOPs = {100 * ratio:.2f}%  (< 5%: {verdict})")


if __name__ == "__main__":
    main()
