"""Model resolution and loading: the tiny zoo, local paths, hub ids offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.training.models import ModelError, cached_hub_models, load_model, resolve_model, tiny_zoo
from core.training.zoo import ZOO


def test_zoo_spans_families_and_sizes() -> None:
    names = tiny_zoo()
    assert len(names) >= 4 and all(n.startswith("tiny:") for n in names)
    assert len({e.family for e in ZOO.values()}) >= 2


def test_zoo_model_loads_back_through_from_pretrained(zoo_cache: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    assert spec.kind == "causal" and spec.family == "gpt2"
    path = Path(spec.path)
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert spec.params == sum(p.numel() for p in model.parameters())
    # a real subword tokenizer, not a character map
    ids = tok("The return statement leaves the current function call")["input_ids"]
    assert len(ids) < len("The return statement leaves the current function call") / 2
    assert tok.decode(ids) == "The return statement leaves the current function call"


def test_seq2seq_zoo_model(zoo_cache: Path) -> None:
    spec = resolve_model("tiny:t5-s", cache_dir=zoo_cache)
    assert spec.kind == "seq2seq"
    model, tok = load_model(spec, "cpu")
    assert tok.pad_token_id is not None and model.config.is_encoder_decoder


def test_local_directory_model(zoo_cache: Path) -> None:
    path = resolve_model("tiny:llama-s", cache_dir=zoo_cache).path
    spec = resolve_model(path)
    assert spec.name == path and spec.family == "llama" and spec.kind == "causal"
    _, tok = load_model(spec, "cpu")
    assert tok.pad_token_id is not None


def test_unknown_hub_id_offline_is_one_line() -> None:
    with pytest.raises(ModelError) as info:
        resolve_model("no-such-org/no-such-model")
    msg = str(info.value)
    assert "\n" not in msg and "no-such-org/no-such-model" in msg and "offline" in msg


@pytest.mark.parametrize("name", ["tiny:nope", "./does/not/exist"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ModelError):
        resolve_model(name)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"config\.json"):
        resolve_model(str(tmp_path))


def test_cached_hub_models_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    assert isinstance(cached_hub_models(), list)
