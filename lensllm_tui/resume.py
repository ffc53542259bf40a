"""What ``--resume DIR`` lets a command line change about the run it reopens.

A reopened run is defined by its own config.toml: the candidates, the ladder,
the target, the data and the training, NTK and policy settings decide every
stored point and the ranking. A flag that would change one of them is refused
with one line instead of silently rewriting the run's config.toml,
results.json and curves.csv (a model or a size would vanish from them).
``--extend`` is the explicit way to grow a run: it may add models and ladder
sizes, never drop or change anything. Flags about how to run (``--device``)
stay free.
"""

from __future__ import annotations

from typing import Any

from core.config import ConfigError, RunConfig
from lensllm_tui.flags import flags

DEFINING_TOP = ("models", "sizes", "target", "policy", "selector")
"""Top-level keys that define a run (the other top-level keys say how to run it)."""
DEFINING_TABLES = ("data", "train", "ntk", "adaptive")
"""Tables every key of which defines a run."""
EXTENDABLE = ("models", "sizes")


def resume_settings(
    run: RunConfig, given: dict[str, Any], run_dir: str, *, extend: bool
) -> dict[str, Any]:
    """``given`` (TOML-shaped flags) checked against the reopened ``run``; extended if asked.

    Raises ConfigError naming the first flag that would change the run.
    """
    old = run.to_dict()
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in given.items()}
    for key in DEFINING_TOP:
        if key in out and out[key] != old.get(key):
            if extend and key in EXTENDABLE:
                out[key] = _extended(key, old.get(key) or [], out[key])
                continue
            raise ConfigError(_conflict(run_dir, None, key, old.get(key), extend))
    for table in DEFINING_TABLES:
        for key, value in (out.get(table) or {}).items():
            was = (old.get(table) or {}).get(key)
            if value != was:
                raise ConfigError(_conflict(run_dir, table, key, was, extend))
    return out


def _extended(key: str, old: list[Any], new: list[Any]) -> list[Any]:
    """The run's list with what ``new`` adds: models in order after the run's, sizes sorted."""
    if key == "sizes":
        return sorted({*old, *new})
    return [*old, *(m for m in new if m not in old)]


def _conflict(run_dir: str, section: str | None, key: str, was: Any, extend: bool) -> str:
    flag = _flag(section, key)
    shown = ",".join(map(str, was)) if isinstance(was, list) else was
    hint = (
        "--extend only adds models and sizes"
        if extend
        else "add --extend to add models or ladder sizes"
    )
    return (
        f"--resume {run_dir}: {flag} would change the run (it has {shown}); {hint}, "
        "or start a new run with another --out"
    )


def _flag(section: str | None, key: str) -> str:
    for f in flags():
        if f.key.section == section and f.key.name == key:
            return f"--{f.name}"
    return key if section is None else f"[{section}] {key}"
