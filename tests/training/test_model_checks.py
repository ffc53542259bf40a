"""Which checkpoints can be candidates, what they are, and how they load (no network)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.errors import ConfigError, ModelError
from core.training.models import (
    CAUSAL_TOLERANCE,
    causal_leak,
    check_device,
    check_fits,
    load_model,
    resolve_model,
)
from tests.training.hub_cache import put_in_cache, use_cache


def _bert(tmp_path: Path, **kw: object) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **kw,
    )
    folder = tmp_path / "tiny-bert"
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_encoder_only_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = _bert(tmp_path)
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    msg = str(info.value)
    assert "\n" not in msg and str(folder) in msg and "encoder-only" in msg


def test_causal_check_tells_a_bidirectional_model_from_causal_ones(zoo_cache: Path) -> None:
    from transformers import BertConfig, BertLMHeadModel

    for name in ("tiny:gpt2-s", "tiny:llama-s"):
        model, _ = load_model(resolve_model(name, cache_dir=zoo_cache))
        assert causal_leak(model) == 0.0, name
    config = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    torch.manual_seed(0)
    leaky = BertLMHeadModel(BertConfig(**config, is_decoder=False)).eval()
    assert causal_leak(leaky) > 10 * CAUSAL_TOLERANCE
    causal = BertLMHeadModel(BertConfig(**config, is_decoder=True)).eval()
    assert causal_leak(causal) < 1e-5


def test_checking_candidates_reads_the_modeling_code_without_importing_it(
    tmp_path: Path, zoo_cache: Path
) -> None:
    """A pool's driver checks every candidate but trains none: no modeling stack for it.

    The encoder-only check reads the causal class's ``__init__`` from its file,
    so resolving GPT-2, Llama and a BERT (refused) imports none of their modeling
    modules; a fresh process shows it, since this one has imported them already.
    """
    bert = _bert(tmp_path)
    code = (
        "import sys\n"
        "from core.errors import ModelError\n"
        "from core.training.models import resolve_model\n"
        f"kinds = [resolve_model(n, cache_dir={str(zoo_cache)!r}).kind"
        " for n in ('tiny:gpt2-s', 'tiny:llama-s')]\n"
        "try:\n"
        f"    resolve_model({str(bert)!r})\n"
        "except ModelError as exc:\n"
        "    kinds.append('refused' if 'encoder-only' in str(exc) else str(exc))\n"
        "loaded = [m for m in sys.modules if m == 'transformers.modeling_utils'"
        " or m.split('.')[-1] in ('modeling_gpt2', 'modeling_llama', 'modeling_bert')]\n"
        "print(kinds, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['causal', 'causal', 'refused'] []"


def test_a_bert_saved_as_decoder_is_a_causal_candidate(tmp_path: Path) -> None:
    spec = resolve_model(str(_bert(tmp_path, is_decoder=True)))
    assert spec.kind == "causal"


def test_cached_snapshot_gets_params_dtype_and_revision_offline(
    zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = Path(resolve_model("tiny:llama-s", cache_dir=zoo_cache).path)
    snap = put_in_cache(tmp_path / "hub", "lens-test/llama-s", src, commit="c0ffee" * 6 + "abcd")
    use_cache(monkeypatch, tmp_path / "hub")
    spec = resolve_model("lens-test/llama-s")
    model, _ = load_model(spec)
    assert spec.params == sum(p.numel() for p in model.parameters())
    assert spec.revision == snap.name and spec.dtype == "float32"
    assert spec.kind == "causal" and spec.context == 256


def test_offline_without_hf_hub_offline_loads_from_cache_at_once(
    zoo_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = Path(resolve_model("tiny:gpt2-s", cache_dir=zoo_cache).path)
    put_in_cache(tmp_path / "hub", "lens-test/gpt2-s", src)
    use_cache(monkeypatch, tmp_path / "hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: unreachable
    start = time.perf_counter()
    spec = resolve_model("lens-test/gpt2-s")
    model, tok = load_model(spec)
    assert time.perf_counter() - start < 30
    assert spec.local_files_only and Path(spec.path).is_dir()
    assert tok.pad_token_id is not None and model is not None
    assert "Retrying" not in caplog.text


def test_bf16_checkpoint_loads_in_fp32_weights(tmp_path: Path, zoo_cache: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    folder = tmp_path / "bf16-llama"
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    _copy_tokenizer(folder, zoo_cache)
    spec = resolve_model(str(folder))
    assert spec.dtype == "bfloat16"
    model, _ = load_model(spec)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    as_stored, _ = load_model(spec, dtype=None)
    assert next(as_stored.parameters()).dtype == torch.bfloat16


def test_precision_is_recorded_as_run(tmp_path: Path, zoo_cache: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.config import DataConfig, TrainConfig
    from core.training.data import load_task
    from core.training.point import train_point

    config = LlamaConfig(
        vocab_size=1024,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    folder = tmp_path / "bf16-llama"
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    _copy_tokenizer(folder, zoo_cache)
    spec = resolve_model(str(folder))
    data = DataConfig(validation_size=8, test_size=8, max_length=16)
    train = TrainConfig(batch_size=4, min_steps=1, precision="fp32")
    task = load_task(data)
    default = train_point(spec, task, 4, train, data, device="cpu")
    assert default.hparams["precision"] == "fp32"
    assert default.hparams["weights_dtype"] == "float32"
    assert default.hparams["checkpoint_dtype"] == "bfloat16"
    as_stored = load_model(spec, dtype=None)
    ran = train_point(spec, task, 4, train, data, device="cpu", model_and_tokenizer=as_stored)
    assert ran.hparams["precision"] == "bf16" and ran.hparams["weights_dtype"] == "bfloat16"


def _copy_tokenizer(folder: Path, zoo_cache: Path) -> None:
    from transformers import AutoTokenizer

    src = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache).path
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)


def test_identity_changes_when_the_folder_is_replaced(zoo_cache: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(resolve_model("tiny:gpt2-s", cache_dir=zoo_cache).path, folder)
    first = resolve_model(str(folder)).identity
    assert resolve_model(str(folder)).identity == first
    shutil.rmtree(folder)
    shutil.copytree(resolve_model("tiny:llama-s", cache_dir=zoo_cache).path, folder)
    assert resolve_model(str(folder)).identity != first


@pytest.mark.parametrize("device", ["cuda:abc", "tpu", "cuda:99"])
def test_unusable_device_is_one_line(device: str) -> None:
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(ConfigError) as info:
        check_device(device)
    assert device in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_only_machine_is_refused() -> None:
    with pytest.raises(ConfigError, match="no CUDA device"):
        check_device("cuda")
    assert check_device("auto") == "cpu" and check_device("cpu") == "cpu"


def test_a_model_too_big_for_the_device_is_refused(zoo_cache: Path) -> None:
    import dataclasses

    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    check_fits(spec, "cpu", lora=False)  # a tiny model fits
    huge = dataclasses.replace(spec, params=10**15)
    with pytest.raises(ModelError, match="GiB"):
        check_fits(huge, "cpu", lora=False)


def test_models_command_describes_cached_models(
    zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from lensllm_tui.models_cmd import list_models

    hub = tmp_path / "hub"
    put_in_cache(
        hub, "lens-test/llama-s", Path(resolve_model("tiny:llama-s", cache_dir=zoo_cache).path)
    )
    put_in_cache(hub, "lens-test/bert", _bert(tmp_path))
    gguf = tmp_path / "gguf"
    gguf.mkdir()
    (gguf / "model.gguf").write_bytes(b"GGUF")
    put_in_cache(hub, "lens-test/only-gguf", gguf)
    use_cache(monkeypatch, hub)
    monkeypatch.setenv("LENSLLM_TUI_CACHE", str(zoo_cache))
    console = Console(record=True, width=200)
    assert list_models(console) == 0
    out = console.export_text()
    llama = next(line for line in out.splitlines() if "lens-test/llama-s" in line)
    params = resolve_model("tiny:llama-s", cache_dir=zoo_cache).params
    assert "causal" in llama and f"{params:,}" in llama and "float32" in llama and "kB" in llama
    bert = next(line for line in out.splitlines() if "lens-test/bert" in line)
    assert "not usable" in bert and "encoder-only" in bert
    assert "tiny:gpt2-s" in out and "tiny:t5-s" in out and "seq2seq" in out
    assert "left out 1 cached repo(s)" in out and "lens-test/only-gguf" in out
