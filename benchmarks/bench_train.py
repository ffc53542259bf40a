"""Fine-tuning throughput: core.training.point.train_point against transformers' Trainer.

Both run the same points in one process, interleaved repeat by repeat so they
see the same machine load: the same zoo model (loaded from the same saved
directory), the same tokenised examples, batch size, number of optimizer
steps, peak learning rate, warm-up then cosine decay, AdamW (fused, betas
0.9/0.95, no weight decay), gradient clipping at 1.0, precision, and then the
test-split loss. Subset sizes are multiples of the batch size so that both
process exactly the same examples once, hence the same tokens.

A "point" is what the runner does per ladder rung: train, then measure the
test loss. Throughput is reported for the whole point and for training alone
(train_point's loop via core.training.loop.optimize, Trainer.train()). Model loading
is outside both timers. Medians over --repeats; ratio = ours / Trainer.

    python benchmarks/bench_train.py                      # default: 3 repeats
    python benchmarks/bench_train.py --models tiny:gpt2-s --sizes 256 --repeats 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from core.config import DataConfig, TrainConfig
from core.training.data import load_task
from core.training.hub import quiet_progress
from core.training.loop import batches_for, evaluate, optimize, resolve_precision
from core.training.models import load_model, resolve_model
from core.training.point import planned_steps, train_point

CLOCK = time.perf_counter
"""Wall clock by default; ``--clock cpu`` (process CPU time) on a shared CPU box,
where other jobs' load would otherwise decide the ratio. Never use it on CUDA."""


def trainer_point(spec, task, size, cfg: TrainConfig, data_cfg: DataConfig, device: str):
    """One point through transformers.Trainer; returns (train_s, total_s, test_loss)."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model, tok = load_model(spec, device)
    enc = task.encode(tok, spec.kind, data_cfg.max_length)
    rows = [
        {
            "input_ids": list(e.input_ids),
            "attention_mask": [1] * len(e.input_ids),
            "labels": list(e.labels),
        }
        for e in enc["train"][:size]
    ]
    test = [
        {
            "input_ids": list(e.input_ids),
            "attention_mask": [1] * len(e.input_ids),
            "labels": list(e.labels),
        }
        for e in enc["test"]
    ]
    steps = planned_steps(size, cfg)
    dtype = resolve_precision(cfg.precision, torch.device(device))
    args = TrainingArguments(
        output_dir="/tmp/bench-trainer-out",
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(cfg.batch_size * 2, 32),
        max_steps=steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(cfg.warmup_ratio * steps),
        weight_decay=cfg.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.95,
        max_grad_norm=cfg.max_grad_norm,
        optim="adamw_torch_fused",
        bf16=dtype is torch.bfloat16,
        use_cpu=device == "cpu",
        seed=cfg.seed,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    collator = DataCollatorForSeq2Seq(
        tok, model=model if spec.kind == "seq2seq" else None, label_pad_token_id=-100
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, eval_dataset=test, data_collator=collator
    )
    t0 = CLOCK()
    trainer.train()
    t1 = CLOCK()
    trainer.evaluate()
    t2 = CLOCK()
    # The same token-weighted test loss train_point reports, outside the timer.
    loss, _, _ = evaluate(
        model,
        enc["test"],
        kind=spec.kind,
        pad_id=tok.pad_token_id,
        device=torch.device(device),
        batch_size=max(cfg.batch_size * 2, 32),
        autocast_dtype=dtype,
    )
    return t1 - t0, t2 - t0, loss


def ours_point(spec, task, size, cfg: TrainConfig, data_cfg: DataConfig, device: str):
    """(train_s via optimize, point_s via train_point, test_loss)."""
    mt = load_model(spec, device)
    model, tok = mt
    dev = torch.device(device)
    enc = task.encode(tok, spec.kind, data_cfg.max_length)["train"][:size]
    steps = planned_steps(size, cfg)
    batches = batches_for(
        list(enc), cfg.batch_size, steps, cfg.seed, group_by_length=cfg.group_by_length
    )
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    t0 = CLOCK()
    optimize(
        model,
        batches,
        kind=spec.kind,
        pad_id=tok.pad_token_id,
        device=dev,
        lr=cfg.learning_rate,
        warmup_steps=math.ceil(cfg.warmup_ratio * steps),
        max_grad_norm=cfg.max_grad_norm,
        autocast_dtype=resolve_precision(cfg.precision, dev),
    )
    train_s = CLOCK() - t0
    model.load_state_dict(snapshot)
    t0 = CLOCK()
    r = train_point(spec, task, size, cfg, data_cfg, device=dev, model_and_tokenizer=mt)
    return train_s, CLOCK() - t0, r.loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tiny:gpt2-s", "tiny:llama-l", "tiny:t5-s"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 800])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument(
        "--group-by-length",
        choices=["on", "off"],
        default="on",
        help="ours: length-grouped batches (default on, as in TrainConfig)",
    )
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--cache-dir", default=None, help="zoo cache (default: the user cache)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    if args.clock == "cpu":
        CLOCK = time.process_time
    cfg = TrainConfig(group_by_length=args.group_by_length == "on")
    data_cfg = DataConfig()
    task = load_task(data_cfg)
    print(
        f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}"
        f" batch={cfg.batch_size} lr={cfg.learning_rate} repeats={args.repeats} clock={args.clock}"
        f" group_by_length={cfg.group_by_length}"
    )
    if not torch.cuda.is_available():
        print("no GPU on this machine: CPU figures only")
    header = f"{'model':<14}{'size':>6}{'steps':>6}  {'ours tok/s':>11}{'HF tok/s':>10}{'ratio':>7}  {'train-only ratio':>16}  {'loss ours/HF':>14}"
    print(header)
    ratios, train_ratios = [], []
    for name in args.models:
        with quiet_progress():
            spec = resolve_model(name, cache_dir=args.cache_dir)
        for size in args.sizes:
            if size % cfg.batch_size:
                raise SystemExit(f"--sizes must be multiples of the batch size ({cfg.batch_size})")
            _, tok = load_model(spec, args.device)
            enc = task.encode(tok, spec.kind, data_cfg.max_length)["train"][:size]
            tokens = sum(len(e.input_ids) for e in enc)
            if spec.kind == "seq2seq":
                tokens += sum(e.label_tokens for e in enc)
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(ours_point(spec, task, size, cfg, data_cfg, args.device))
                theirs.append(trainer_point(spec, task, size, cfg, data_cfg, args.device))
            o_train = statistics.median(r[0] for r in ours)
            o_point = statistics.median(r[1] for r in ours)
            h_train = statistics.median(r[0] for r in theirs)
            h_point = statistics.median(r[1] for r in theirs)
            ratio, train_ratio = h_point / o_point, h_train / o_train
            ratios.append(ratio)
            train_ratios.append(train_ratio)
            print(
                f"{name:<14}{size:>6}{planned_steps(size, cfg):>6}  {tokens / o_point:>11.0f}"
                f"{tokens / h_point:>10.0f}{ratio:>6.2f}x  {train_ratio:>15.2f}x"
                f"  {ours[0][2]:>6.3f}/{theirs[0][2]:.3f}"
            )
            print(
                f"{'':<14}{'':>6}{'':>6}  samples/s ours {size / o_point:.0f}, HF {size / h_point:.0f}"
            )
    print(
        f"median point-throughput ratio (ours / Trainer): {statistics.median(ratios):.2f}x;"
        f" training only: {statistics.median(train_ratios):.2f}x (target >= 1.3x)"
    )


if __name__ == "__main__":
    main()
