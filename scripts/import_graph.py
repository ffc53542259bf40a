"""Print the package-level import graph of core/ and lensllm_tui/, as the code has it.

    python scripts/import_graph.py            # one line per package: what it imports
    python scripts/import_graph.py --modules  # the same, module by module

Built with grimp (the library import-linter checks its contracts with), so it
counts every import, function-local ones included. Packages are core's
subpackages and leaf modules (core.science, core.run, core.config, ...) and
lensllm_tui; third-party imports are listed after ``|`` (the standard library
is left out). docs/architecture.md shows this output; ``lint-imports`` checks
that it keeps to the layers declared in pyproject.toml.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import grimp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOTS = ("core", "lensllm_tui")


def node(module: str, modules: bool) -> str:
    """The graph node a module belongs to: core.<child>, lensllm_tui, or a top-level package."""
    parts = module.split(".")
    if parts[0] not in ROOTS:
        return parts[0]
    if modules:
        return module
    if parts[0] == "core" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def package_graph(modules: bool = False) -> dict[str, set[str]]:
    """Node -> the nodes it imports (itself excluded)."""
    graph = grimp.build_graph(*ROOTS, include_external_packages=True)
    edges: dict[str, set[str]] = defaultdict(set)
    for importer in graph.modules:
        if importer.split(".")[0] not in ROOTS:
            continue
        src = node(importer, modules)
        edges.setdefault(src, set())
        for imported in graph.find_modules_directly_imported_by(importer):
            dst = node(imported, modules)
            if dst != src and dst not in sys.stdlib_module_names and dst != "__future__":
                edges[src].add(dst)
    return dict(edges)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among the internal nodes (a depth-first search; there should be none)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if m not in edges:
                continue
            if state.get(m) == 1:
                found.append([*path[path.index(m) :], m])
            elif m not in state:
                visit(m, [*path, m])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", action="store_true", help="one line per module")
    args = parser.parse_args()
    edges = package_graph(args.modules)
    width = max(len(n) for n in edges)
    for name in sorted(edges):
        inner = sorted(d for d in edges[name] if d in edges or d.split(".")[0] in ROOTS)
        outer = sorted(d for d in edges[name] if d not in inner)
        line = f"{name:<{width}}  -> {', '.join(inner) or '-'}"
        if outer:
            line += f"  | {', '.join(outer)}"
        print(line)
    found = cycles(edges)
    print(f"cycles: {'none' if not found else '; '.join(' -> '.join(c) for c in found)}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
