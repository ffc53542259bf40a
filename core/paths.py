"""Where the tool keeps its files: a run's file names and the cache root, in one leaf module.

Kept apart from the code that writes each file so that a front end can find a
run's results without importing the engine (numpy, torch) that produced them,
and so the zoo, the data reader and the front ends agree on one cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_NAME = "results.json"
"""Everything a run measured and concluded (core/run/records.py)."""

CURVES_NAME = "curves.csv"
"""The measured curves in the benchmark wide format, for ``bench`` and ``fit``."""

CONFIG_NAME = "config.toml"
"""The run's configuration, written before the first point (``--resume`` reads it)."""

STORE_NAME = "store.sqlite"
"""The SQLite results store: one row per finished point (core/run/store.py)."""

LOCK_NAME = ".lock"
"""The lock file inside a run directory (holds the PID of the run that has it)."""

RUNS_DIR = Path("runs")
"""Where a run without an explicit out_dir gets its own timestamped directory."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else $LENSLLM_TUI_CACHE, else ~/.cache/lensllm-tui (zoo, datasets' copies)."""
    base = cache_dir or os.environ.get("LENSLLM_TUI_CACHE") or Path.home() / ".cache/lensllm-tui"
    return Path(base).expanduser()


def datasets_cache(cache_dir: str | Path | None = None) -> Path:
    """Where ``datasets`` writes the Arrow copies of local files (never ~/.cache/huggingface)."""
    return cache_root(cache_dir) / "datasets"
