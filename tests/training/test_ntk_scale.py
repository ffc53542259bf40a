"""The NTK probe at real model sizes: the automatic sketch, LoRA adapters, a 50M model."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from core.training.ntk import AUTO_SKETCH_DIM, auto_projection, empirical_ntk, probe_ntk
from tests.training.test_ntk import causal_batch, rel_err


def _llama(hidden: int = 16, layers: int = 2, vocab: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(2, hidden // 64),
        num_key_value_heads=max(2, hidden // 64),
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def test_countsketch_estimates_the_exact_kernel() -> None:
    model = _llama().double()
    batch = causal_batch(n=8, seed=2)
    exact = empirical_ntk(model, batch).numpy()
    res = probe_ntk(model, batch, projection_dim=4096, projection="countsketch", seed=0)
    assert res.projection == "countsketch"
    assert rel_err(res.theta.numpy(), exact) < 0.1
    top = np.linalg.eigvalsh(exact)[::-1][:3]
    np.testing.assert_allclose(np.linalg.eigvalsh(res.theta.numpy())[::-1][:3], top, rtol=0.1)
    again = probe_ntk(model, batch, projection_dim=4096, projection="countsketch", seed=0)
    assert torch.equal(again.theta, res.theta)
    chunked = probe_ntk(
        model, batch, projection_dim=4096, projection="countsketch", seed=0, max_chunk_bytes=1
    )
    assert rel_err(chunked.theta.numpy(), res.theta.numpy()) < 1e-9


def test_auto_is_exact_when_it_fits_and_sketches_when_not() -> None:
    cpu = torch.device("cpu")
    assert auto_projection(32, 1_000_000, 4, cpu) is None
    assert auto_projection(32, 500_000_000, 4, cpu) == AUTO_SKETCH_DIM
    model = _llama()
    batch = causal_batch(n=4, seed=1)
    small = probe_ntk(model, batch, projection_dim="auto")
    assert small.projection == "exact" and small.projection_dim is None
    forced = probe_ntk(model, batch, projection_dim="auto", max_exact_bytes=1)
    assert forced.projection == "countsketch" and forced.projection_dim == min(
        AUTO_SKETCH_DIM, forced.num_params
    )


def test_lora_kernel_is_over_the_adapters() -> None:
    from peft import LoraConfig, get_peft_model

    model = _llama()
    batch = causal_batch(n=4, seed=3)
    full = probe_ntk(model, batch)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.0))
    adapters = probe_ntk(peft, batch)
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert adapters.num_params == trainable < full.num_params
    assert not np.isclose(float(adapters.theta.trace()), float(full.theta.trace()), rtol=0.01)


@pytest.mark.slow
def test_auto_probe_on_a_50m_model_on_cpu() -> None:
    """Default settings (32 examples, auto projection) on a 50M+ Llama, within budget.

    The exact kernel would hold 32 x 50M x 4 bytes = 6.4 GB of gradients (over the
    4 GiB limit), so auto must sketch. Its cost, against a default ladder's training
    compute (200+400+800+1600 samples of the same length), stays under 5%.
    """
    model = _llama(hidden=512, layers=8, vocab=32000)
    params = sum(p.numel() for p in model.parameters())
    assert params >= 50_000_000
    gen = torch.Generator().manual_seed(0)
    length = 64
    ids = torch.randint(0, 32000, (32, length), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    start = time.perf_counter()
    cap = 0.05 * (200 + 400 + 800 + 1600)  # what a run passes: 5% of the default ladder
    res = probe_ntk(model, batch, projection_dim="auto", path="backward", max_cost_examples=cap)
    seconds = time.perf_counter() - start
    assert res.n == 32  # the whole probe set fits in the default ladder's share
    assert res.projection == "countsketch" and res.projection_dim == AUTO_SKETCH_DIM
    assert np.isfinite(res.theta.numpy()).all() and float(res.theta.trace()) > 0
    ladder_flops = 6.0 * params * (200 + 400 + 800 + 1600) * length
    assert res.flops / ladder_flops < 0.05, res.flops / ladder_flops
    assert seconds < 600
