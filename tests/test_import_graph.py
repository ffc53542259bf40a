"""scripts/import_graph.py, the command docs/architecture.md quotes, runs and sees the layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_graph_has_no_cycles_and_keeps_torch_out_of_science() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if "->" in line}
    assert out.strip().endswith("cycles: none")
    for package in ("core.science", "core.policy", "core.config", "core.events"):
        assert "torch" not in lines[package] and "lensllm_tui" not in lines[package]
    assert "textual" in lines["lensllm_tui"] and "torch" in lines["core.training"]
    assert not any(
        "textual" in lines[p] or "typer" in lines[p] for p in lines if p != "lensllm_tui"
    )
