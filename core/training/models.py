"""Candidate models: resolve a name to a spec, check it can be a candidate, load it.

A name is one of: ``tiny:NAME`` (the built-in zoo, core/training/zoo.py, built
once into a cache directory and then loaded like any local model), a local
directory holding a Hugging Face ``config.json``, or a Hugging Face hub id.
Resolving reads only the config and the safetensors headers (cheap, no
weights), so a bad name, an encoder-only checkpoint or a model too big for the
device fails in seconds with one line, before any candidate trains; loading
the weights happens later, in the worker that trains the model.

A spec carries the model's identity (a hash of its config and of its weight
files: the snapshot revision for a hub model, names, sizes, mtimes and
safetensors headers for a local folder), so that the store keys points by what
was measured rather than by the name the user typed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, ModelError, one_line
from core.training.hub import cached_snapshot, hub_reachable, quiet_progress

if TYPE_CHECKING:  # torch is imported where it is used: a pool's driver starts its workers first
    import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
"""Files whose bytes are weights: what a local folder's fingerprint is taken over."""

CAUSAL_TOLERANCE = 1e-4
"""Largest change of earlier logits, relative to the changed position's own, that the
causal check lets pass (float round-off; a model that sees the future moves earlier
logits about as much as the changed one)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the runner needs to know about a candidate before loading it."""

    name: str
    """What the user typed (the key in results)."""
    path: str
    """Local directory or hub id that ``from_pretrained`` loads."""
    kind: str
    """``causal`` or ``seq2seq``."""
    params: int | None
    """Parameter count, from safetensors headers or a weightless (meta) instance."""
    family: str
    """Architecture family (the config's ``model_type``)."""
    context: int | None = None
    """Longest input its positions allow (None: no learned limit, e.g. relative)."""
    dtype: str | None = None
    """The stored weights' dtype (``bfloat16``...), from the files or the config."""
    identity: str = ""
    """Hash of the config and the weight files: changes when the model does."""
    revision: str | None = None
    """Hub snapshot commit, for hub models found in the cache."""
    local_files_only: bool = False
    """Load from the cache without asking the hub (it is unreachable)."""


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> str:
    """The device a run will use, or ConfigError (one line) when this machine has none such.

    Called before any model loads, so ``--device cuda`` on a CPU-only machine or a
    malformed ``cuda:abc`` is refused at start rather than failing every point.
    """
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"device {device!r} is not a device name (use auto, cpu, cuda or cuda:N)"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r}: this machine has no CUDA device; use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"device {device!r}: only {count} CUDA device(s) here (0..{count - 1})"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r}: only cpu, cuda[:N] and mps are supported")
    return device


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
    """Turn a user's model name into a ModelSpec, building zoo models on first use.

    Raises ModelError (one line naming the model) for a name that resolves to
    nothing and for a model that cannot be a candidate (not causal, not seq2seq).
    """
    if name.startswith("tiny:"):
        from core.training.zoo import ZOO, ensure_built

        short = name.removeprefix("tiny:")
        if short not in ZOO:
            known = ", ".join(f"tiny:{n}" for n in ZOO)
            raise ModelError(f"unknown tiny model {name!r} (known: {known})")
        return _folder_spec(name, ensure_built(short, cache_dir=cache_dir))

    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"{name}: a directory without config.json is not a Hugging Face model")
        return _folder_spec(name, local)
    if name.startswith((".", "/", "~")) or local.suffix in WEIGHT_SUFFIXES:
        raise ModelError(f"model path not found: {name}")
    return _hub_spec(name)


def warm_imports() -> None:
    """Import transformers' model and tokenizer stack, which a process's first load pays.

    It took 1.7 s here against 0.09 s for the model itself; a pool worker does it
    while it waits for its first job, which would otherwise start with it.
    """
    import transformers.modeling_utils  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: F401


def load_model(
    spec: ModelSpec,
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype | str | None = "float32",
) -> tuple[Any, Any]:
    """(model, tokenizer) through the Auto classes, on ``device``, in eval mode.

    Weights are loaded in ``dtype``, fp32 by default whatever the checkpoint
    stores: a bf16 checkpoint would otherwise train in bf16 weights while the
    configured precision says fp32 (bf16 compute comes from autocast instead).
    ``dtype`` is a torch dtype or its name (the default is a name, so that this
    module imports without torch); ``None`` keeps the checkpoint's own dtype. A
    tokenizer without a pad token gets one (eos, else unk, else a new ``<pad>``
    with the embeddings resized), because batches are padded. A causal model whose logits depend on
    later tokens is refused here (ModelError), whatever its config claims.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dev = resolve_device(device) if isinstance(device, str) else device
    auto = AutoModelForSeq2SeqLM if spec.kind == "seq2seq" else AutoModelForCausalLM
    offline = {"local_files_only": True} if spec.local_files_only else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path, **offline)
        kwargs = {"dtype": dtype if dtype is not None else "auto"}
        with quiet_progress():
            model = auto.from_pretrained(spec.path, **kwargs, **offline)
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
    if spec.kind == "causal":
        leak = causal_leak(model)
        if leak > CAUSAL_TOLERANCE:
            raise ModelError(
                f"{spec.name}: not a causal language model: changing the last of 8 tokens"
                f" changed the logits before it ({leak:.3g} of the change at that token), so its loss"
                " would see the tokens it predicts"
            )
    return model, tokenizer


def causal_leak(model: torch.nn.Module, length: int = 8, seed: int = 0) -> float:
    """How much the logits before position i move when token i changes (0 for a causal LM).

    Two forwards of ``length`` random tokens differing only in the last one: the
    largest change at earlier positions, relative to the change at the last
    position itself (which any model shows), so the ratio means the same for a
    random-init model with small logits and for a trained one.
    """
    import torch

    vocab = int(getattr(model.config, "vocab_size", 0) or 2)
    device = next(iter(model.parameters())).device
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, length), generator=gen)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1 + vocab // 2) % vocab
    with torch.no_grad():
        a = model(input_ids=ids.to(device)).logits[0].float()
        b = model(input_ids=changed.to(device)).logits[0].float()
    delta = (a - b).abs()
    own = float(delta[-1].max())
    return float(delta[:-1].max()) / own if own > 0 else 0.0


def memory_needed(params: int, *, lora: bool) -> int:
    """Bytes a fine-tuning point needs at least, activations aside.

    Full fine-tuning keeps fp32 weights, gradients and AdamW's two moments (16
    bytes a parameter); LoRA keeps the fp32 weights and a few adapters (4 bytes).
    """
    return params * (4 if lora else 16)


def memory_available(device: str | torch.device) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or the host's available RAM."""
    if (device if isinstance(device, str) else device.type) != "cpu":
        import torch

        dev = resolve_device(device)
        if dev.type == "cuda":
            free, _total = torch.cuda.mem_get_info(dev)
            return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(spec: ModelSpec, device: str, *, lora: bool) -> None:
    """ModelError when the device clearly cannot hold the model for fine-tuning."""
    if not spec.params:
        return
    need = memory_needed(spec.params, lora=lora)
    free = memory_available(device)
    if free is not None and need > free:
        how = "LoRA" if lora else "full fine-tuning (fp32 weights, gradients, AdamW)"
        raise ModelError(
            f"{spec.name}: {spec.params:,} parameters need at least {need / 2**30:.1f} GiB"
            f" for {how}; {device} has {free / 2**30:.1f} GiB free"
        )


def kind_of(config: Any) -> tuple[str | None, str]:
    """(``causal`` | ``seq2seq`` | None, why not) for a transformers config."""
    from transformers import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_MASKED_LM_MAPPING,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
    )

    kind_name = getattr(config, "model_type", type(config).__name__)
    if getattr(config, "is_encoder_decoder", False):
        if type(config) in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING:
            return "seq2seq", ""
        return None, f"{kind_name!r} is encoder-decoder but has no seq2seq LM head"
    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        if _encoder_as_decoder(config) and not getattr(config, "is_decoder", False):
            return None, (
                f"{kind_name!r} is an encoder-only (bidirectional) model: every position"
                " sees the tokens after it, so its LM loss is not a next-token loss"
            )
        return "causal", ""
    if type(config) in MODEL_FOR_MASKED_LM_MAPPING:
        return None, f"{kind_name!r} is an encoder-only (masked LM) model with no causal LM head"
    return None, f"{kind_name!r} is not a causal or seq2seq language model"


def model_context(config: Any) -> int | None:
    """The longest input the config's learned positions allow, if it has a limit."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "max_seq_len"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# --------------------------------------------------------------------------- internals


def _encoder_as_decoder(config: Any) -> bool:
    """Whether the causal LM class of this config is an encoder made causal by ``is_decoder``.

    BERT-like models register a ``...LMHeadModel`` / ``...ForCausalLM`` that is
    causal only when the config says ``is_decoder=True`` (and warns otherwise);
    those classes read the flag in ``__init__`` without setting it themselves
    (BART's decoder-only class sets it, and is causal by construction).
    """
    source = _causal_init_source(config)
    return source is not None and "is_decoder" in source and "is_decoder = True" not in source


def _causal_init_source(config: Any) -> str | None:
    """The source of the config's causal LM class's ``__init__``, read without importing it.

    Read from the modeling file itself (a transformers architecture's class and
    its own ``__init__``): importing the class would import transformers'
    whole modeling stack into the driver, 1.5 s of a pool run's start that its
    workers, not the driver, need. A class registered at run time or one that
    inherits its ``__init__`` is imported and inspected instead.
    """
    import ast
    import importlib.util
    import inspect

    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING
    from transformers.models.auto.configuration_auto import model_type_to_module_name
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = getattr(config, "model_type", "")
    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if isinstance(name, str):
        module = model_type_to_module_name(model_type)
        try:
            found = importlib.util.find_spec(f"transformers.models.{module}.modeling_{module}")
            path = found.origin if found is not None else None
            text = Path(path).read_text(encoding="utf-8") if path else ""
            tree = ast.parse(text)
        except (ImportError, OSError, SyntaxError, ValueError):
            tree = None
        for node in tree.body if tree is not None else ():
            if not (isinstance(node, ast.ClassDef) and node.name == name):
                continue
            for init in node.body:
                if isinstance(init, ast.FunctionDef) and init.name == "__init__":
                    return ast.get_source_segment(text, init)
    try:
        return inspect.getsource(MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].__init__)
    except (OSError, TypeError, KeyError):
        return None


def _config_from(path: str | Path, name: str, **kwargs: Any) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), **kwargs)
    except Exception as exc:
        raise ModelError(f"{name}: unreadable model config ({one_line(exc)})") from exc


def _kind(config: Any, name: str) -> str:
    kind, why = kind_of(config)
    if kind is None:
        raise ModelError(f"{name}: {why}; not usable as a candidate")
    return kind


def _folder_spec(name: str, folder: Path, **extra: Any) -> ModelSpec:
    """A spec for a model folder (a local directory, a zoo build or a hub snapshot)."""
    config = _config_from(folder, name)
    kind = _kind(config, name)
    params, dtype = weights_summary(folder)
    if params is None:
        params = meta_params(config, kind)
    revision = extra.get("revision")
    weights = f"rev:{revision}" if revision else _weights_fingerprint(folder)
    return ModelSpec(
        name=name,
        path=extra.get("path", str(folder)),
        kind=kind,
        params=params,
        family=str(config.model_type),
        context=model_context(config),
        dtype=dtype or _config_dtype(config),
        identity=_identity(folder / "config.json", weights),
        revision=revision,
        local_files_only=bool(extra.get("local_files_only", False)),
    )


def _hub_spec(name: str) -> ModelSpec:
    """A hub id: from its cached snapshot when there is one, else from the hub if reachable."""
    online = hub_reachable()
    snapshot = cached_snapshot(name)
    if snapshot is not None:
        # Offline, the snapshot folder itself is loaded: no hub call at all.
        return _folder_spec(
            name,
            snapshot,
            path=name if online else str(snapshot),
            revision=snapshot.name,
            local_files_only=not online,
        )
    if not online:
        raise ModelError(
            f"unknown model {name!r}: not a local path, not in the Hugging Face cache,"
            " and the hub is not reachable (offline?)"
        )
    config = _config_from(name, f"unknown model {name!r}")
    snapshot = cached_snapshot(name)  # the config download created one
    if snapshot is not None:
        return _folder_spec(name, snapshot, path=name, revision=snapshot.name)
    kind = _kind(config, name)
    return ModelSpec(
        name=name,
        path=name,
        kind=kind,
        params=_hub_params(name) or meta_params(config, kind),
        family=str(config.model_type),
        context=model_context(config),
        dtype=_config_dtype(config),
        identity=_identity(None, f"hub:{name}:{json.dumps(config.to_dict(), sort_keys=True)}"),
    )


def weights_summary(folder: str | Path) -> tuple[int | None, str | None]:
    """(parameter count, most common dtype) from a folder's safetensors headers.

    Only the headers are read (safetensors' own reader; the weights are memory
    mapped, never loaded). (None, None) when there are no safetensors files.
    """
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None, None
    total = 0
    by_dtype: dict[str, int] = {}
    try:
        for f in files:
            with safe_open(str(f), framework="pt") as fh:
                names = fh.keys()  # a safetensors handle is not iterable itself
                for key in names:
                    part = fh.get_slice(key)
                    count = 1
                    for dim in part.get_shape():
                        count *= int(dim)
                    total += count
                    dtype = _SAFETENSORS_DTYPES.get(part.get_dtype(), part.get_dtype().lower())
                    by_dtype[dtype] = by_dtype.get(dtype, 0) + count
    except Exception:  # a damaged file: count from the config instead
        return None, None
    dtype = max(by_dtype, key=lambda k: by_dtype[k]) if by_dtype else None
    return total, dtype


_SAFETENSORS_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def meta_params(config: Any, kind: str) -> int | None:
    """Parameter count of the architecture, from a weightless instance on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    try:
        with torch.device("meta"):
            model = auto.from_config(config)
        return int(sum(p.numel() for p in model.parameters()))
    except Exception:
        return None


def _config_dtype(config: Any) -> str | None:
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")


def _weights_fingerprint(folder: Path) -> str:
    """Names, sizes, mtimes and safetensors headers of a folder's weight files."""
    parts = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or not (f.suffix in WEIGHT_SUFFIXES or f.name.endswith(".index.json")):
            continue
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}:{_header_hash(f)}")
    return "|".join(parts) or "no-weights"


def _header_hash(path: Path) -> str:
    """sha256 of a safetensors file's header (names, dtypes, shapes, offsets); '' otherwise."""
    if path.suffix != ".safetensors":
        return ""
    try:
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100 * 2**20:
                return ""
            return hashlib.sha256(fh.read(n)).hexdigest()[:16]
    except OSError:
        return ""


def _identity(config_file: Path | None, weights: str) -> str:
    """sha256 of the config (canonical JSON) and the weight fingerprint, shortened."""
    config = ""
    if config_file is not None:
        try:
            config = json.dumps(json.loads(config_file.read_text("utf-8")), sort_keys=True)
        except (OSError, ValueError):
            config = ""
    return hashlib.sha256(f"{config}\n{weights}".encode()).hexdigest()[:16]


def _hub_params(name: str) -> int | None:
    try:
        from huggingface_hub import get_safetensors_metadata

        meta = get_safetensors_metadata(name)
        return int(sum(meta.parameter_count.values()))
    except Exception:
        return None
