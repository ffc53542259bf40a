"""Shared fixtures: a session-wide tiny-zoo cache so tests never touch ~/.cache.

Zoo models are built here with two pretraining steps (the recipe's full
pretraining is for real runs); they are still saved with save_pretrained and
loaded back through from_pretrained, exactly like the real zoo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach the network: hub look-ups must fail fast, not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo cache dir holding quickly built gpt2-s, llama-s and t5-s."""
    from core.training.zoo import ensure_built

    root = tmp_path_factory.mktemp("zoo-cache")
    for name in ("gpt2-s", "llama-s", "t5-s"):
        ensure_built(name, cache_dir=root, pretrain_steps=2)
    return root


@pytest.fixture(scope="module")
def zoo_env(zoo_cache: Path) -> Iterator[Path]:
    """Opt-in (usefixtures) for modules whose subprocesses load zoo models: point the zoo cache at the session's quickly built tiny models (env reaches children)."""
    old = os.environ.get("LENSLLM_TUI_CACHE")
    os.environ["LENSLLM_TUI_CACHE"] = str(zoo_cache)
    yield zoo_cache
    if old is None:
        os.environ.pop("LENSLLM_TUI_CACHE", None)
    else:
        os.environ["LENSLLM_TUI_CACHE"] = old
