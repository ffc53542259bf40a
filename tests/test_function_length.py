"""No function in core/ or lensllm_tui/ runs past 100 lines (the team's readability bound).

Checked by parsing every module, so a long function fails here with its name and
length instead of waiting for a reviewer to count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 100
PACKAGES = ("core", "lensllm_tui")
FILES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def long_functions(source: str) -> list[str]:
    """'name (N lines)' for every function or method longer than LIMIT, nested ones included."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LIMIT
    ]


def test_both_packages_are_checked() -> None:
    for package in PACKAGES:
        assert any(p.is_relative_to(ROOT / package) for p in FILES), package


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_the_limit(path: Path) -> None:
    long = long_functions(path.read_text(encoding="utf-8"))
    assert not long, f"{path.relative_to(ROOT)}: {', '.join(long)}"


def test_the_check_sees_a_long_function_and_a_long_method() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions(f"def f():\n{body}\n") == [f"f ({LIMIT + 1} lines)"]
    method = "\n".join(f"        x{i} = {i}" for i in range(LIMIT - 1))
    assert long_functions(f"class C:\n    async def m(self):\n{method}\n") == []
    assert long_functions(f"class C:\n    async def m(self):\n{method}\n        y = 0\n") == [
        f"m ({LIMIT + 1} lines)"
    ]
