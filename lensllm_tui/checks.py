"""Checks for what a user types on the setup screen, with one-line verdicts.

The setup screen shows these inline as the user types, so a mistyped model
or dataset is caught before any model is loaded. They only look at the local
disk and the shape of names; the hub itself is only contacted when the run
starts (the machine may be offline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.config import DEFAULT_MODELS

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
"""Hugging Face repo ids: optional owner, then a name; letters, digits, ._-"""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


def tiny_names() -> list[str]:
    """The built-in tiny zoo as ``tiny:NAME`` (core.training.zoo: no torch import for a picker)."""
    try:
        from core.training.zoo import ZOO
    except ImportError:  # pragma: no cover - the zoo ships with the package
        return list(DEFAULT_MODELS)
    return [f"tiny:{name}" for name in ZOO]


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1


def check_model(text: str, cached: frozenset[str] = frozenset()) -> Verdict:
    """Is ``text`` a usable candidate: tiny zoo name, local model dir, or hub id?"""
    text = text.strip()
    if not text:
        return Verdict(False, "type a tiny:NAME, a Hugging Face id or a local path")
    if text.startswith("tiny:"):
        zoo = tiny_names()
        if text in zoo:
            return Verdict(True, f"{text}: built-in tiny model")
        return Verdict(False, f"unknown tiny model {text!r}; known: {', '.join(zoo)}")
    path = Path(text).expanduser()
    if _looks_like_path(text) or path.exists():
        if not path.exists():
            return Verdict(False, f"no such path: {text}")
        if not path.is_dir():
            return Verdict(False, f"{text} is a file; a model is a directory with config.json")
        if not (path / "config.json").is_file():
            return Verdict(False, f"{text} has no config.json: not a model directory")
        return Verdict(True, f"{text}: local model directory")
    if text in cached:
        return Verdict(True, f"{text}: found in the local Hugging Face cache")
    if HUB_ID.match(text) and ".." not in text:
        return Verdict(True, f"{text}: hub id, not cached here; downloaded when the run starts")
    return Verdict(False, f"{text!r} is neither a local path nor a valid hub id (owner/name)")


def check_dataset(text: str) -> Verdict:
    """Is ``text`` 'builtin', a readable local data file, or a hub dataset name?"""
    text = text.strip()
    if not text:
        return Verdict(False, "type 'builtin', a local file path or a hub dataset name")
    if text == "builtin":
        return Verdict(True, "built-in offline text")
    from core.training.sources import LOCAL_FORMATS, local_format

    path = Path(text).expanduser()
    if path.is_dir():
        if any((path / n).is_file() for n in ("state.json", "dataset_dict.json")):
            return Verdict(True, f"{text}: a dataset saved with save_to_disk")
        return Verdict(False, f"{text}: a folder, but not a save_to_disk dataset")
    if local_format(path) is not None or _looks_like_path(text) or path.exists():
        if not path.is_file():
            return Verdict(False, f"no such file: {text}")
        if local_format(path) is None:
            return Verdict(False, f"{text}: expected one of {', '.join(LOCAL_FORMATS)} (or .gz)")
        return Verdict(True, f"{text}: local {''.join(path.suffixes).lstrip('.')} file")
    if HUB_ID.match(text):
        return Verdict(True, f"{text}: hub dataset, loaded when the run starts")
    return Verdict(False, f"{text!r} is neither a local file nor a valid hub dataset name")


def parse_sizes(text: str) -> list[int]:
    """'200, 400,800' -> [200, 400, 800]; ValueError with a one-line message."""
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not items:
        raise ValueError("the ladder needs at least one size")
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ValueError(f"ladder sizes must be integers, got {text!r}") from None
