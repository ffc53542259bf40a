"""The training loop: end to end on causal and seq2seq models, FLOPs, determinism."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
import torch

from core.config import DataConfig, TrainConfig
from core.training.data import load_task
from core.training.loop import Cancelled, PointError, count_params, flops_estimate, lr_at
from core.training.models import load_model, resolve_model
from core.training.point import train_point

DATA = DataConfig(validation_size=16, test_size=16, max_length=32)
FAST = TrainConfig(batch_size=4, min_steps=3, learning_rate=3e-3)


@pytest.fixture(scope="module")
def task():
    return load_task(DATA)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["tiny:gpt2-s", "tiny:t5-s"])
def test_point_trains_and_restores_pretrained_weights(name: str, zoo_cache: Path, task) -> None:
    spec = resolve_model(name, cache_dir=zoo_cache)
    mt = load_model(spec, "cpu")
    before = _weights(mt[0])
    zero = train_point(spec, task, 0, FAST, DATA, device="cpu", model_and_tokenizer=mt)
    assert zero.steps == 0 and zero.train_tokens == 0 and zero.eval_tokens > 0
    seen: list[tuple[int, int, float]] = []
    point = train_point(
        spec,
        task,
        12,
        FAST,
        DATA,
        device="cpu",
        model_and_tokenizer=mt,
        on_progress=lambda *a: seen.append(a),
    )
    assert point.steps == 3 and point.train_tokens > 0
    assert point.loss < zero.loss  # three steps at a high rate already help
    assert seen and seen[-1][:2] == (3, 3)
    after = _weights(mt[0])
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert point.hparams["params"] == count_params(mt[0])
    assert all(isinstance(v, str | int | float | bool) for v in point.hparams.values())


def test_flops_formula_by_hand(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:llama-s", cache_dir=zoo_cache)
    mt = load_model(spec, "cpu")
    n = count_params(mt[0])
    r = train_point(spec, task, 8, FAST, DATA, device="cpu", model_and_tokenizer=mt)
    assert r.flops == 6 * n * r.train_tokens + 2 * n * r.eval_tokens
    assert flops_estimate(100, 10, 7, 3) == (4 * 100 + 2 * 10) * 7 + 2 * 100 * 3
    # eval tokens are the real (non-pad) tokens of the test split
    mask_tokens = sum(len(e.input_ids) for e in task.encode(mt[1], "causal", 32)["test"])
    assert r.eval_tokens == mask_tokens


def test_deterministic_on_cpu(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    a = train_point(spec, task, 8, FAST, DATA, device="cpu")
    b = train_point(spec, task, 8, FAST, DATA, device="cpu")
    assert a.loss == b.loss and a.train_tokens == b.train_tokens


def test_lr_schedule_warms_up_then_decays() -> None:
    lrs = [lr_at(s, 10, 2, 1.0) for s in range(10)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0 and lrs[-1] < 0.05
    assert all(a >= b for a, b in itertools.pairwise(lrs[1:]))


def test_cancel_is_checked_every_step(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    mt = load_model(spec, "cpu")
    before = _weights(mt[0])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        train_point(spec, task, 8, FAST, DATA, device="cpu", cancel=cancel, model_and_tokenizer=mt)
    assert all(torch.equal(before[k], v) for k, v in mt[0].state_dict().items())


def test_pause_holds_training_at_the_next_step_and_resumes(zoo_cache: Path, task) -> None:
    """While the pause event is set no optimizer step runs; clearing it finishes the point."""
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    model, tok = load_model(spec, "cpu")
    pause = threading.Event()
    steps: list[int] = []

    def count(module: torch.nn.Module, args: object) -> None:
        if module.training:  # a training step's forward; evaluation runs in eval mode
            steps.append(len(steps) + 1)
            if len(steps) == 3:
                pause.set()  # from inside step 3: step 4 must wait

    hook = model.register_forward_pre_hook(count)
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(
            train_point(
                spec,
                task,
                16,
                FAST,
                DATA,
                device="cpu",
                pause=pause,
                model_and_tokenizer=(model, tok),
            )
        )
    )
    try:
        started = time.perf_counter()
        worker.start()
        deadline = time.monotonic() + 60
        while not pause.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pause.is_set(), "training never reached step 3"
        time.sleep(0.3)
        held_at, weights = len(steps), _weights(model)
        time.sleep(0.7)
        assert len(steps) == held_at == 3, "a step ran while paused"
        assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
        assert worker.is_alive()
        pause.clear()
        worker.join(60)
        wall = time.perf_counter() - started
    finally:
        pause.clear()
        hook.remove()
    assert not worker.is_alive() and len(result) == 1
    point = result[0]
    assert point.steps == len(steps) > 3  # resumed and ran every planned step
    assert point.seconds < wall - 0.9  # the second held is not the point's time


def test_nan_loss_is_a_point_error(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    model, tok = load_model(spec, "cpu")
    with torch.no_grad():
        model.transformer.wte.weight.fill_(float("nan"))
    with pytest.raises(PointError, match=r"^NaN loss at step 1$"):
        train_point(spec, task, 8, FAST, DATA, device="cpu", model_and_tokenizer=(model, tok))


def test_early_stopping_and_lora(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:llama-s", cache_dir=zoo_cache)
    mt = load_model(spec, "cpu")
    cfg = TrainConfig(batch_size=4, min_steps=4, early_stopping_patience=1, eval_every=1, lora=True)
    r = train_point(spec, task, 16, cfg, DATA, device="cpu", model_and_tokenizer=mt)
    assert r.val_loss is not None and 1 <= r.steps <= 4
    assert 0 < r.hparams["trainable_params"] < r.hparams["params"]
    assert not any("lora" in k for k in mt[0].state_dict())  # adapters removed afterwards
    assert all(p.requires_grad for p in mt[0].parameters())  # and nothing left frozen
    # So a full fine-tune of the same loaded model then trains every weight.
    full = train_point(spec, task, 16, FAST, DATA, device="cpu", model_and_tokenizer=mt)
    assert full.hparams["trainable_params"] == full.hparams["params"]


def test_length_grouped_batches_cover_each_example_once_per_epoch() -> None:
    from core.training.data import Encoded
    from core.training.loop import batches_for

    data = [Encoded(tuple(range(n)), tuple(range(n))) for n in [3, 50, 7, 44, 12, 31, 2, 60] * 8]
    plain = batches_for(data, 4, 16, seed=0)
    grouped = batches_for(data, 4, 16, seed=0, group_by_length=True, group_factor=4)
    for batches in (plain, grouped):
        assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in data)

    def padding(batches):
        return sum(max(len(e.input_ids) for e in b) * len(b) for b in batches)

    assert padding(grouped) < 0.8 * padding(plain)


def test_gradient_checkpointing_point(zoo_cache: Path, task) -> None:
    spec = resolve_model("tiny:llama-s", cache_dir=zoo_cache)
    mt = load_model(spec, "cpu")
    plain = train_point(spec, task, 8, FAST, DATA, device="cpu", model_and_tokenizer=mt)
    cfg = TrainConfig(batch_size=4, min_steps=3, learning_rate=3e-3, gradient_checkpointing=True)
    ckpt = train_point(spec, task, 8, cfg, DATA, device="cpu", model_and_tokenizer=mt)
    assert ckpt.hparams["gradient_checkpointing"] is True
    assert abs(ckpt.loss - plain.loss) < 1e-4  # same maths, recomputed activations
    assert not getattr(mt[0], "is_activation_checkpointing", mt[0].is_gradient_checkpointing)
