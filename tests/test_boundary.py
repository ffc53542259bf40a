"""The engine (core/) must stay importable without any front-end package."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parent.parent
FRONT_END = ("textual", "typer")


def core_modules() -> list[str]:
    return [
        *sorted(
            m.name for m in pkgutil.walk_packages(core.__path__, prefix="core.") if not m.ispkg
        ),
        "core",
    ]


def test_core_never_imports_front_end_packages() -> None:
    mods = core_modules()
    assert "core.events" in mods and "core.config" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {FRONT_END!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"core pulled in front-end modules: {out.stdout.strip()}"


def test_boundary_check_would_catch_a_violation() -> None:
    """Guard the guard: importing typer in the child must be reported."""
    code = f"import typer, sys; print(','.join(k for k in sys.modules if k in {FRONT_END!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "typer" in out.stdout
