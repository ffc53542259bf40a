"""Empirical NTK against a brute-force Gram matrix, on tiny real transformers models.

Models are built from configs, saved with save_pretrained and loaded back with
from_pretrained (no network), in float64 so exact comparisons are meaningful.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GPT2Config,
    GPT2Model,
    LlamaConfig,
    T5Config,
)

from core.training.ntk import NTKError, compute_spectrum, empirical_ntk, probe_ntk

VOCAB = 64


def _save_load(config, auto, path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    auto.from_config(config).save_pretrained(path)
    return auto.from_pretrained(path).double().eval()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,  # transformers then inspects input ids for pads: must still vmap
    )
    return _save_load(cfg, AutoModelForCausalLM, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return _save_load(cfg, AutoModelForCausalLM, tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    cfg = T5Config(
        vocab_size=VOCAB,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return _save_load(cfg, AutoModelForSeq2SeqLM, tmp_path_factory.mktemp("t5"))


def causal_batch(n: int = 6, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tokens, right-padded rows, labels -100 on the padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, length // 2 :] = 0
    mask[2, length - 3 :] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def seq2seq_batch(n: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (n, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    labels = torch.randint(2, VOCAB, (n, 6), generator=g)
    labels[3, 4:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def brute_force(model: torch.nn.Module, batch: dict[str, torch.Tensor], names=None):
    """One backward per example through the model's own loss; Gram of flat gradients."""
    named = dict(model.named_parameters())
    names = list(names or named)
    rows, losses = [], []
    for i in range(batch["input_ids"].shape[0]):
        row = {k: v[i : i + 1] for k, v in batch.items()}
        loss = model(**row).loss
        grads = torch.autograd.grad(loss, [named[nm] for nm in names], allow_unused=True)
        flat = [
            torch.zeros_like(named[nm]).flatten() if g is None else g.flatten()
            for g, nm in zip(grads, names, strict=True)
        ]
        rows.append(torch.cat(flat).double())
        losses.append(float(loss.detach()))
    g = torch.stack(rows)
    return (g @ g.T).numpy(), np.array(losses)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_causal_matches_brute_force_on_the_vmap_path(gpt2: torch.nn.Module) -> None:
    batch = causal_batch()
    res = probe_ntk(gpt2, batch)
    exact, losses = brute_force(gpt2, batch)
    assert res.path == "vmap", res.fallback_reason
    assert rel_err(res.theta.numpy(), exact) < 1e-4
    np.testing.assert_allclose(res.r0.numpy(), losses, rtol=1e-4)
    assert res.n == 6 and res.num_params == sum(p.numel() for p in gpt2.parameters())
    # the per-example-backward path computes the same kernel
    back = probe_ntk(gpt2, batch, path="backward")
    assert back.path == "backward"
    assert rel_err(back.theta.numpy(), exact) < 1e-4


def test_seq2seq_matches_brute_force(t5: torch.nn.Module) -> None:
    batch = seq2seq_batch()
    res = probe_ntk(t5, batch)
    exact, losses = brute_force(t5, batch)
    assert rel_err(res.theta.numpy(), exact) < 1e-4
    np.testing.assert_allclose(res.r0.numpy(), losses, rtol=1e-4)
    # encoder padding is checked with data-dependent control flow inside
    # transformers, which vmap cannot trace: the fallback ran and says why
    assert res.path == "backward" and "vmap" in res.fallback_reason


def test_kernel_is_symmetric_psd_and_chunking_does_not_change_it(llama: torch.nn.Module) -> None:
    batch = causal_batch(n=7, seed=1)
    theta = empirical_ntk(llama, batch).numpy()
    assert theta.shape == (7, 7)
    np.testing.assert_allclose(theta, theta.T, rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(theta).min() > -1e-9 * np.trace(theta)
    one_at_a_time = probe_ntk(llama, batch, max_chunk_bytes=1).theta.numpy()
    assert rel_err(one_at_a_time, theta) < 1e-10


def test_projection_keeps_the_top_eigenvalues(llama: torch.nn.Module) -> None:
    batch = causal_batch(n=8, seed=2)
    exact = np.linalg.eigvalsh(empirical_ntk(llama, batch).numpy())[::-1][:3]
    res = probe_ntk(llama, batch, projection_dim=4096, seed=0)
    approx = np.linalg.eigvalsh(res.theta.numpy())[::-1][:3]
    np.testing.assert_allclose(approx, exact, rtol=0.10)
    assert res.projection_dim == 4096


def test_projection_is_deterministic_under_its_seed(llama: torch.nn.Module) -> None:
    batch = causal_batch(n=4, seed=3)
    a = empirical_ntk(llama, batch, projection_dim=64, seed=7)
    b = empirical_ntk(llama, batch, projection_dim=64, seed=7)
    c = empirical_ntk(llama, batch, projection_dim=64, seed=8)
    assert torch.equal(a, b)
    # seeded per parameter block, so chunking over examples leaves it unchanged
    chunked = probe_ntk(llama, batch, projection_dim=64, seed=7, max_chunk_bytes=1).theta
    assert rel_err(chunked.numpy(), a.numpy()) < 1e-6
    assert not torch.allclose(a, c)
    gauss = probe_ntk(llama, batch, projection_dim=64, seed=7, projection="gaussian").theta
    assert torch.equal(
        gauss, probe_ntk(llama, batch, projection_dim=64, seed=7, projection="gaussian").theta
    )
    assert not torch.allclose(gauss, a)


def test_params_subset_by_names_and_by_mapping(gpt2: torch.nn.Module) -> None:
    batch = causal_batch(n=4, seed=4)
    names = [nm for nm, _ in gpt2.named_parameters() if ".h.1." in nm]
    exact, _ = brute_force(gpt2, batch, names)
    by_names = probe_ntk(gpt2, batch, params=names)
    assert by_names.num_params == sum(gpt2.get_parameter(nm).numel() for nm in names)
    assert rel_err(by_names.theta.numpy(), exact) < 1e-4
    mapping = {nm: p for nm, p in gpt2.named_parameters() if nm in names}
    by_map = empirical_ntk(gpt2, batch, params=mapping)
    assert rel_err(by_map.numpy(), exact) < 1e-4
    with pytest.raises(NTKError, match="unknown parameter"):
        empirical_ntk(gpt2, batch, params=["no.such.weight"])


def test_lora_parameters_are_the_default_for_a_peft_model(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(tmp_path).double()
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights="gaussian")
    )
    batch = causal_batch(n=4, seed=5)
    modes = [m.training for m in lora.modules()]
    res = probe_ntk(lora, batch)
    assert [m.training for m in lora.modules()] == modes  # each module's mode restored
    lora.eval()
    trainable = [nm for nm, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in nm for nm in trainable)
    assert res.num_params == sum(lora.get_parameter(nm).numel() for nm in trainable)
    exact, _ = brute_force(lora, batch, trainable)
    assert rel_err(res.theta.numpy(), exact) < 1e-4


def test_nan_weights_raise_ntk_error(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    model = AutoModelForCausalLM.from_config(cfg).double()
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    with pytest.raises(NTKError, match="non-finite"):
        empirical_ntk(model, causal_batch(n=3))


def test_overlong_examples_are_truncated_to_the_context(gpt2: torch.nn.Module) -> None:
    long = causal_batch(n=3, length=45, seed=6)  # context is 32
    res = probe_ntk(gpt2, long)
    assert res.truncated
    cut = {k: v[:, :32] for k, v in long.items()}
    ref = probe_ntk(gpt2, cut)
    assert not ref.truncated
    assert rel_err(res.theta.numpy(), ref.theta.numpy()) < 1e-12


def test_model_without_a_language_modelling_head_is_a_clear_error() -> None:
    torch.manual_seed(0)
    bare = GPT2Model(GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(NTKError, match="no language-modelling head") as err:
        empirical_ntk(bare, causal_batch(n=3))
    assert "\n" not in str(err.value)


def test_spectrum_starts_at_the_initial_loss_norm(llama: torch.nn.Module) -> None:
    batch = causal_batch(n=5, seed=7)
    res = probe_ntk(llama, batch)
    spec = compute_spectrum(llama, batch)
    r0 = res.r0.numpy()
    assert spec.F(0.0) == pytest.approx(float(r0 @ r0), rel=1e-9)
    assert spec.trace == pytest.approx(float(np.trace(res.theta.numpy())), rel=1e-9)
    assert res.seconds > 0 and res.flops > 0


def test_a_cost_cap_keeps_the_first_examples_that_fit(gpt2: torch.nn.Module) -> None:
    batch = causal_batch(n=6, seed=7)
    total = sum(p.numel() for p in gpt2.parameters())
    per_example = batch["input_ids"].numel() / 6
    full = probe_ntk(gpt2, batch)
    assert full.n == 6
    cap = 3.5  # the compute of training on 3.5 examples: 3 fit with the Gram on top
    res = probe_ntk(gpt2, batch, max_cost_examples=cap)
    assert res.n == 3
    assert res.flops <= 6.0 * total * per_example * cap
    ref = probe_ntk(gpt2, {k: v[:3] for k, v in batch.items()})
    assert rel_err(res.theta.numpy(), ref.theta.numpy()) < 1e-12


def test_a_cap_below_two_examples_is_a_clear_error(gpt2: torch.nn.Module) -> None:
    with pytest.raises(NTKError, match="max_ladder_fraction"):
        probe_ntk(gpt2, causal_batch(n=6, seed=7), max_cost_examples=1.5)
