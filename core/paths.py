"""Where the tool keeps its own files: one cache root, named once.

A leaf module (no numpy, no torch) so that the zoo, the data reader and the
front ends agree on the same directory without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LENSLLM_TUI_CACHE"
"""Environment variable that moves the tool's cache (zoo models, datasets' Arrow copies)."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else $LENSLLM_TUI_CACHE, else ~/.cache/lensllm-tui."""
    base = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache/lensllm-tui"
    return Path(base).expanduser()


def datasets_cache(cache_dir: str | Path | None = None) -> Path:
    """Where ``datasets`` writes the Arrow copies of local files (never ~/.cache/huggingface)."""
    return cache_root(cache_dir) / "datasets"
