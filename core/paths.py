"""The names of a run's files, in one leaf module every layer may import.

Kept apart from the code that writes each file so that a front end can find a
run's results without importing the engine (numpy, torch) that produced them.
"""

from __future__ import annotations

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
