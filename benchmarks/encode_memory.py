"""Peak memory and time of encoding one example as it grows from 1 KB to 50 MB.

Each measurement runs in a fresh process (peak RSS, ``ru_maxrss``, is per
process): it builds the text, notes the peak so far, encodes the example
with the tiny GPT-2 zoo tokenizer at max_length 128, and reports how much the
peak grew and how long encoding took. The baseline, measured in the same
run, is what the encoder did before (tokenise the whole text, then cut),
up to ``--baseline-max`` bytes because past that it takes minutes and
gigabytes. Medians of ``--repeats`` runs.

    python benchmarks/encode_memory.py              # 1 KB .. 50 MB, baseline to 5 MB
    python benchmarks/encode_memory.py --baseline-max 50000000   # the whole baseline (slow)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SIZES = (1_000, 10_000, 100_000, 1_000_000, 5_000_000, 10_000_000, 50_000_000)

CHILD = """
import json, resource, sys, time
from core.training.zoo import make_tokenizer
from core.training.encoding import encode_examples
from core.training.examples import Example
size, mode = int(sys.argv[1]), sys.argv[2]
tok = make_tokenizer("gpt2")
text = ("lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (size // 50 + 1))[:size]
tok("warm up")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "bounded":
    (enc,) = encode_examples([Example("", text)], tok, "causal", 128)
    n = len(enc.input_ids)
else:  # the former encoder: the whole text through the tokenizer, then cut
    ids = tok([text], add_special_tokens=False, truncation=True, max_length=128)["input_ids"][0]
    n = len(ids) + 1
seconds = time.perf_counter() - t0
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grew_mb": grew / 1024, "seconds": seconds, "tokens": n}))
"""


def measure(size: int, mode: str, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(size), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "grew_mb": statistics.median(r["grew_mb"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-max", type=int, default=5_000_000)
    args = parser.parse_args()
    print(
        f"{'example':>10}  {'bounded: peak +MB':>17} {'s':>7}  {'baseline: peak +MB':>18} {'s':>7}  ratio mem / time"
    )
    for size in SIZES:
        new = measure(size, "bounded", args.repeats)
        line = f"{size:>10,}  {new['grew_mb']:>17.1f} {new['seconds']:>7.3f}"
        if size <= args.baseline_max:
            old = measure(size, "whole", args.repeats)
            # ru_maxrss counts KB: a growth under 0.1 MB is shown as a lower bound on the ratio
            floor = new["grew_mb"] < 0.1
            mem_ratio = old["grew_mb"] / max(new["grew_mb"], 0.1)
            time_ratio = old["seconds"] / max(new["seconds"], 1e-4)
            mem = f"{'>' if floor else ''}{mem_ratio:.0f}x"
            line += (
                f"  {old['grew_mb']:>18.1f} {old['seconds']:>7.3f}  {mem:>7} {time_ratio:>6.0f}x"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
