"""Candidate models: resolve a name to a spec, load it, list what is available.

A name is one of: ``tiny:NAME`` (the built-in zoo, core/zoo.py, built once into
a cache directory and then loaded like any local model), a local directory
holding a Hugging Face ``config.json``, or a Hugging Face hub id. Resolving
reads only the config (cheap) so a bad name fails in seconds with one line;
loading the weights happens later, in the worker that trains the model.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelError, one_line
from core.training.hub import quiet_progress


@dataclass(frozen=True)
class ModelSpec:
    """What the runner needs to know about a candidate before loading it."""

    name: str
    """What the user typed (the key in results and the store)."""
    path: str
    """Local directory or hub id that ``from_pretrained`` loads."""
    kind: str
    """``causal`` or ``seq2seq``."""
    params: int | None
    """Parameter count when known without loading the weights."""
    family: str
    """Architecture family (the config's ``model_type``)."""


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def tiny_zoo() -> list[str]:
    """Names of the built-in tiny models, as ``tiny:NAME`` (for pickers)."""
    from core.training.zoo import ZOO

    return [f"tiny:{name}" for name in ZOO]


def cached_hub_models() -> list[str]:
    """Model repos in the local Hugging Face cache; empty when there is none."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        return []
    return sorted(r.repo_id for r in info.repos if r.repo_type == "model")


def resolve_model(name: str, *, cache_dir: str | Path | None = None) -> ModelSpec:
    """Turn a user's model name into a ModelSpec, building zoo models on first use."""
    if name.startswith("tiny:"):
        from core.training.zoo import ZOO, ensure_built

        short = name.removeprefix("tiny:")
        if short not in ZOO:
            known = ", ".join(f"tiny:{n}" for n in ZOO)
            raise ModelError(f"unknown tiny model {name!r} (known: {known})")
        path = ensure_built(short, cache_dir=cache_dir)
        config = _config_from(str(path), name)
        return ModelSpec(
            name, str(path), _kind(config, name), _local_params(path), ZOO[short].family
        )

    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"{name}: a directory without config.json is not a Hugging Face model")
        config = _config_from(str(local), name)
        return ModelSpec(
            name, str(local), _kind(config, name), _local_params(local), config.model_type
        )
    if name.startswith((".", "/", "~")) or local.suffix in (".bin", ".safetensors", ".pt"):
        raise ModelError(f"model path not found: {name}")

    config = _hub_config(name)
    return ModelSpec(name, name, _kind(config, name), _hub_params(name), config.model_type)


def load_model(
    spec: ModelSpec, device: str | torch.device = "cpu", *, dtype: torch.dtype | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) through the Auto classes, on ``device``, in eval mode.

    A tokenizer without a pad token gets one (eos, else unk, else a new
    ``<pad>`` with the embeddings resized), because batches are padded.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    dev = resolve_device(device) if isinstance(device, str) else device
    auto = AutoModelForSeq2SeqLM if spec.kind == "seq2seq" else AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        with quiet_progress():
            model = auto.from_pretrained(spec.path, **kwargs)
    except Exception as exc:
        raise ModelError(f"cannot load {spec.name!r}: {one_line(exc)}") from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(dev)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------- internals


def _config_from(path: str, name: str, **kwargs: Any) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise ModelError(f"{name}: unreadable model config ({one_line(exc)})") from exc


def _kind(config: Any, name: str) -> str:
    """causal or seq2seq, refusing configs no LM head class is registered for."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING

    if getattr(config, "is_encoder_decoder", False):
        if type(config) in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING:
            return "seq2seq"
    elif type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return "causal"
    raise ModelError(f"{name}: {config.model_type!r} is not a causal or seq2seq language model")


def _hub_config(name: str) -> Any:
    """The config from the local cache, else from the hub when it is reachable."""
    from transformers import AutoConfig

    from core.training.hub import hub_reachable

    try:
        return AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception:
        pass
    if not hub_reachable():
        raise ModelError(
            f"unknown model {name!r}: not a local path and not reachable on the"
            " Hugging Face hub (offline?)"
        )
    try:
        return AutoConfig.from_pretrained(name)
    except Exception as exc:
        raise ModelError(f"unknown model {name!r}: {one_line(exc)}") from exc


def _local_params(path: Path) -> int | None:
    """Parameter count from safetensors headers (no weights are read)."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    try:
        for f in files:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            for key, meta in header.items():
                if key == "__metadata__":
                    continue
                count = 1
                for dim in meta["shape"]:
                    count *= int(dim)
                total += count
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return total


def _hub_params(name: str) -> int | None:
    try:
        from huggingface_hub import get_safetensors_metadata

        meta = get_safetensors_metadata(name)
        return int(sum(meta.parameter_count.values()))
    except Exception:
        return None
