"""What models this machine holds that could be candidates, and what each one is.

Backs ``lensllm-tui models``: for the built-in zoo and every model repo in the
local Hugging Face cache, the parameter count, the kind (causal, seq2seq, or
not usable and why), the stored dtype and the size on disk. Everything comes
from files already on disk (configs, safetensors headers, huggingface_hub's
cache scan): listing never downloads, builds or loads weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import one_line
from core.training.models import kind_of, meta_params, weights_summary

if TYPE_CHECKING:
    from huggingface_hub import CachedRepoInfo, CachedRevisionInfo


@dataclass(frozen=True)
class ModelInfo:
    """One cached model as the ``models`` command shows it."""

    name: str
    """What to pass to ``--models``: ``tiny:NAME`` or the hub id."""
    source: str
    """``zoo`` or ``hub cache``."""
    kind: str | None
    """``causal``, ``seq2seq``, or None when it cannot be a candidate."""
    note: str
    """Why it is not usable (kind None), or what to know about it ('' if nothing)."""
    params: int | None = None
    dtype: str | None = None
    size_bytes: int | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Inventory:
    """The listed models, and how many cached repos were left out as not models at all."""

    models: tuple[ModelInfo, ...]
    left_out: tuple[str, ...]
    """Cached model repos without a transformers config.json (GGUF, adapters...)."""


def zoo_models() -> list[ModelInfo]:
    """The built-in tiny zoo: built ones described from disk, the others as to be built."""
    from core.training.zoo import ZOO, zoo_root

    root = zoo_root()
    out = []
    for short, entry in ZOO.items():
        folder = root / short
        if not (folder / "config.json").is_file():
            out.append(ModelInfo(f"tiny:{short}", "zoo", _zoo_kind(entry.family), "not built yet"))
            continue
        out.append(describe_folder(f"tiny:{short}", folder, "zoo", _folder_size(folder)))
    return out


def hub_models() -> Inventory:
    """Model repos in the local Hugging Face cache (their ``main`` or newest snapshot)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        return Inventory((), ())
    models, left_out = [], []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = _main_revision(repo)
        folder = Path(revision.snapshot_path)
        if not (folder / "config.json").is_file():
            left_out.append(repo.repo_id)
            continue
        got = describe_folder(repo.repo_id, folder, "hub cache", int(repo.size_on_disk))
        models.append(dataclasses.replace(got, revision=revision.commit_hash))
    return Inventory(tuple(models), tuple(left_out))


def describe_folder(name: str, folder: Path, source: str, size: int | None) -> ModelInfo:
    """Kind, parameters and dtype of one model folder, from its config and headers."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(folder))
    except Exception as exc:
        return ModelInfo(name, source, None, f"unreadable config: {one_line(exc)}", size_bytes=size)
    kind, why = kind_of(config)
    params, dtype = weights_summary(folder)
    note = why
    if kind is not None and params is None:
        note = "no safetensors weights here (count from the config)"
        params = meta_params(config, kind)
    if dtype is None:
        raw = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        dtype = None if raw is None else str(raw).removeprefix("torch.")
    return ModelInfo(name, source, kind, note, params, dtype, size)


def _main_revision(repo: CachedRepoInfo) -> CachedRevisionInfo:
    """The revision ``main`` points at, else the most recently modified one."""
    revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
    for rev in revisions:
        if "main" in rev.refs:
            return rev
    return revisions[0]


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _zoo_kind(family: str) -> str:
    return "seq2seq" if family in ("t5", "bart") else "causal"
