"""The ``run`` command's configuration flags, generated from core.config's keys.

Every TOML key (core.config.config_keys: the dataclass fields, their types,
defaults and attribute docstrings) becomes one option named after it:
``[train] batch_size`` is ``--batch-size``, ``[data] max_length`` is
``--max-length``. A key that names its flag in its field metadata keeps it
(``out_dir`` is ``--out``, ``[data] source`` is ``--dataset``), and when two
tables share a key the later one is prefixed with its table (``--adaptive-x``),
so adding a key never renames an existing flag. A field added to a config
dataclass is therefore a flag, with its help, with no edit here or in cli.py.

Values arrive as text and are converted here, not by click, so a bad one is the
same one-line error as a bad TOML value, naming the flag.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape

from core.config import (
    ConfigError,
    ConfigKey,
    config_keys,
    describe,
    sections,
    unwrap_optional,
)

NONE_WORDS = ("none", "off", "no")
"""What an optional key's flag takes for 'no value' (``--budget none``)."""


@dataclass(frozen=True)
class Flag:
    """One generated option: the key it sets and how the command line spells it."""

    key: ConfigKey
    param: str
    """The Python parameter name typer passes the value under."""
    name: str
    """The long option without dashes: ``batch-size``."""

    @property
    def decls(self) -> tuple[str, ...]:
        if self.key.type is bool:
            return (f"--{self.name}/--no-{self.name}",)
        return (f"--{self.name}", *(f"--{a}" for a in self.key.aliases))


def flags() -> list[Flag]:
    """One flag per configuration key, in declaration order (top level, then tables)."""
    out: list[Flag] = []
    taken: set[str] = set()
    for key in config_keys():
        if not _spellable(key.type):
            continue  # a table-valued key is set in TOML only
        name = key.flag or key.name.replace("_", "-")
        if name in taken and not key.flag and key.section is not None:
            name = f"{key.section}-{name}"
        if name in taken:
            raise ConfigError(f"two configuration keys claim the flag --{name}")
        taken.add(name)
        param = key.name if key.section is None else f"{key.section}__{key.name}"
        out.append(Flag(key, param, name))
    return out


def parameters() -> list[inspect.Parameter]:
    """The flags as keyword parameters typer reads (Annotated options, default None)."""
    panels = {name: _panel(name, kind) for name, kind in sections().items()}
    params = []
    for flag in flags():
        key = flag.key
        option = typer.Option(
            *flag.decls,
            help=_help(key),
            show_default=False,  # the value is None (not given); the key's default is in help
            metavar=None if key.type is bool else _metavar(key.type),
            rich_help_panel=panels.get(key.section or "", "Run settings"),
        )
        kind: Any = bool | None if key.type is bool else str | None
        params.append(
            inspect.Parameter(
                flag.param,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind, option],
            )
        )
    return params


def overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The flags given (not None) as a nested TOML-shaped dict; ConfigError on a bad value."""
    out: dict[str, Any] = {}
    for flag in flags():
        given = values.get(flag.param)
        if given is None:
            continue
        key = flag.key
        value = given if key.type is bool else parse(given, key.type, f"--{flag.name}")
        table = out if key.section is None else out.setdefault(key.section, {})
        table[key.name] = value
    return out


def parse(text: str, kind: Any, flag: str) -> Any:
    """Command-line text as a value of annotation ``kind``; lists are comma-separated."""
    inner = _inner(kind)
    if inner is not kind and text.strip().lower() in NONE_WORDS:
        return None
    try:
        if typing.get_origin(inner) is list:
            (item,) = typing.get_args(inner)
            items = [_scalar(v.strip(), item) for v in text.split(",") if v.strip()]
            if not items:
                raise ValueError(text)
            return items
        return _scalar(text.strip(), inner)
    except ValueError:
        shown = describe(kind)
        if typing.get_origin(inner) is list:
            item = typing.get_args(inner)[0]
            shown = f"comma-separated {({int: 'integers', float: 'numbers'}).get(item, 'names')}"
        raise ConfigError(f"{flag} must be {shown}, got {text!r}") from None


def _scalar(text: str, kind: Any) -> Any:
    if typing.get_origin(kind) is typing.Literal:
        for choice in typing.get_args(kind):
            if str(choice) == text:
                return choice
        raise ValueError(text)
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    return text


def _spellable(kind: Any) -> bool:
    """Whether a value of ``kind`` can be typed as one flag: scalars, choices, lists of them."""
    inner = _inner(kind)
    if typing.get_origin(inner) is list:
        inner = typing.get_args(inner)[0]
    return inner in (bool, int, float, str) or typing.get_origin(inner) is typing.Literal


def _inner(kind: Any) -> Any:
    return unwrap_optional(kind) or kind


def _metavar(kind: Any) -> str:
    inner = _inner(kind)
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        word = _metavar(item)
        return f"{word},{word},..."
    if typing.get_origin(inner) is typing.Literal:
        word = "|".join(str(v) for v in typing.get_args(inner))
    else:
        word = {int: "INTEGER", float: "NUMBER"}.get(inner, "TEXT")
    return word if inner is kind else f"{word}|none"


def _help(key: ConfigKey) -> str:
    doc = key.doc.replace("``", "'") or "(undocumented)"
    return escape(f"{key.where}: {doc} [default: {_shown(key)}]")


def _shown(key: ConfigKey) -> str:
    value = key.default
    if key.type is bool:
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _panel(name: str, kind: type) -> str:
    lead = (inspect.getdoc(kind) or "").split("\n")[0].rstrip(".").replace("``", "'")
    return escape(f"[{name}] {lead}")
