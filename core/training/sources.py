"""Read a task's rows from where people keep fine-tuning data, and turn them into examples.

Sources: local files (.jsonl, .json, .csv, .tsv, .parquet, .txt, each also
compressed as .gz / .bz2 / .xz / .zst), folders written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, and hub datasets.
Everything goes through ``datasets`` (its builders and ``load_from_disk``).
The Arrow copies ``datasets`` makes of local files go under the tool's cache
(core/paths.py), never into ~/.cache/huggingface; hub datasets use the
Hugging Face datasets cache, where their downloads already live.

Formats (``DataConfig.format``), as TRL's SFTTrainer and the Alpaca data define them:
``text``; ``prompt_completion`` (strings, or conversational: lists of
messages, the loss on the completion's); ``messages`` (a list of
``{role, content}``, the loss on assistant turns); ``alpaca``
(instruction / input / output); ``auto`` picks one from the columns.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import DataConfig
from core.errors import DataError, one_line
from core.paths import datasets_cache
from core.training.examples import ROLES, Example, Turn
from core.training.hub import hub_reachable

LOCAL_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".parquet": ("parquet", {}),
    ".txt": ("text", {}),
}
"""File suffix -> (``datasets`` builder, its options)."""

COMPRESSIONS: tuple[str, ...] = (".gz", ".bz2", ".xz", ".zst")
"""Compressed variants ``datasets`` reads by suffix (``data.jsonl.gz``)."""

ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further"
    " context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately"
    " completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
"""The Stanford Alpaca prompts; the output is the completion."""

ALPACA_COLUMNS = ("instruction", "input", "output")


def local_format(path: Path) -> tuple[str, dict[str, Any]] | None:
    """The builder for a local file by its suffix (compression suffix allowed), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return LOCAL_FORMATS.get(suffixes[-1]) if suffixes else None


def _suffix_list() -> str:
    return ", ".join(sorted(LOCAL_FORMATS)) + " (also .gz etc.) or a save_to_disk folder"


def read_rows(source: str, cfg: DataConfig, *, what: str = "dataset") -> Any:
    """Rows of a local file, a save_to_disk folder or a hub dataset, as a ``datasets.Dataset``."""
    path = Path(source).expanduser()
    looks_local = local_format(path) is not None or source.startswith((".", "/", "~"))
    if path.is_dir():
        return _from_disk(path, cfg, what)
    if path.is_file():
        return _from_file(path, cfg, what)
    if looks_local or what != "dataset":
        raise DataError(f"{what} not found: {source}")
    return _from_hub(source, cfg)


def _from_file(path: Path, cfg: DataConfig, what: str) -> Any:
    import datasets

    fmt = local_format(path)
    if fmt is None:
        raise DataError(f"{path}: unsupported file type for a {what} (use {_suffix_list()})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    builder, options = fmt
    try:
        if builder == "text":
            options = {**options, "sample_by": cfg.sample_by}
        elif builder == "csv":
            options = {**options, **_csv_as_text(path, options.get("sep", ","))}
        return datasets.load_dataset(
            builder,
            data_files=str(path),
            split="train",
            cache_dir=str(datasets_cache()),
            **options,
        )
    except Exception as exc:
        raise DataError(_unreadable(path, builder, exc)) from exc


def _unreadable(path: Path, builder: str, exc: BaseException) -> str:
    """Why ``datasets`` could not read a local file: the first bad line when one is to blame.

    ``datasets`` says "An error occurred while generating the dataset"; the line
    that is not UTF-8, or (JSON lines) not a JSON object, is what a user can fix.
    The scan reads line by line (bounded memory) and only plain, uncompressed files.
    """
    plain = path.suffix.lower() in LOCAL_FORMATS and builder != "parquet"
    if plain:
        with contextlib.suppress(OSError):
            found = _first_bad_line(path, json_lines=path.suffix.lower() == ".jsonl")
            if found is not None:
                return found
    while type(exc).__name__ == "DatasetGenerationError" and exc.__cause__ is not None:
        exc = exc.__cause__  # what went wrong, not that something did
    return f"{path}: cannot read as {builder} ({one_line(exc)})"


def _first_bad_line(path: Path, *, json_lines: bool) -> str | None:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return (
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[bad.start]:02x} at column "
                    f"{bad.start + 1}); save the file as UTF-8"
                )
            if not json_lines or not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                return (
                    f"{path}:{number}: cannot read as JSON lines: not JSON ({one_line(err)});"
                    " one object a line"
                )
            if not isinstance(row, dict):
                return (
                    f"{path}:{number}: cannot read as JSON lines: a JSON {type(row).__name__},"
                    " not an object; one object a line"
                )
    return None


def _csv_as_text(path: Path, sep: str) -> dict[str, Any]:
    """Read every CSV / TSV column as text: pandas would turn " 2." into 2.0 and "" into NaN."""
    import csv

    import datasets
    import fsspec

    with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    features = datasets.Features({name: datasets.Value("string") for name in header})
    return {"features": features, "keep_default_na": False}


def _from_disk(path: Path, cfg: DataConfig, what: str) -> Any:
    """A ``save_to_disk`` folder: one Dataset, or a DatasetDict's ``hub_split``."""
    import datasets

    if not any((path / n).is_file() for n in ("state.json", "dataset_dict.json")):
        raise DataError(
            f"{path}: a folder, but not one written by save_to_disk (no state.json or"
            f" dataset_dict.json); give a file ({_suffix_list()})"
        )
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read the saved dataset ({one_line(exc)}); expected a folder"
            " written by Dataset.save_to_disk or DatasetDict.save_to_disk"
        ) from exc
    if isinstance(loaded, datasets.DatasetDict):
        if cfg.hub_split not in loaded:
            raise DataError(
                f"{path}: the saved dataset has no split {cfg.hub_split!r} (it has"
                f" {', '.join(loaded)}); choose one with data.hub_split"
            )
        return loaded[cfg.hub_split]
    return loaded


def _from_hub(name: str, cfg: DataConfig) -> Any:
    import datasets

    # The cache is tried first, the network only when reachable.
    try:
        return datasets.load_dataset(name, cfg.hub_config, split=cfg.hub_split)
    except Exception as exc:
        if not hub_reachable():
            raise DataError(
                f"unknown dataset {name!r}: not a local file and not reachable on the"
                " Hugging Face hub (offline?)"
            ) from exc
        raise DataError(f"dataset {name!r}: {one_line(exc)}") from exc


# --------------------------------------------------------------------------- formats


def resolve_format(columns: Sequence[str], cfg: DataConfig) -> str | None:
    """The format ``auto`` means for these columns (None when no format fits)."""
    cols = set(columns)
    if cfg.messages_column in cols:
        return "messages"
    if {cfg.prompt_column, cfg.completion_column} <= cols:
        return "prompt_completion"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if cfg.text_column in cols:
        return "text"
    return None


def needed_columns(fmt: str, cfg: DataConfig) -> list[str]:
    return {
        "text": [cfg.text_column],
        "prompt_completion": [cfg.prompt_column, cfg.completion_column],
        "messages": [cfg.messages_column],
        "alpaca": ["instruction", "output"],
    }[fmt]


_FLAGS = {
    "text": "--text-column or data.text_column",
    "prompt_completion": "--prompt-column / --completion-column or data.prompt_column / data.completion_column",
    "messages": "--messages-column or data.messages_column",
    "alpaca": "rename them to instruction / input / output",
}


def rows_to_examples(
    rows: Any, cfg: DataConfig, source: str, fmt: str
) -> tuple[list[Example], int]:
    """(examples, rows dropped as empty) in format ``fmt`` (already resolved from ``auto``)."""
    columns = list(getattr(rows, "column_names", []) or [])
    missing = [c for c in needed_columns(fmt, cfg) if c not in columns]
    if missing:
        hint = f"; name the column(s) with {_FLAGS[fmt]}"
        other = resolve_format(columns, cfg)
        if other is not None and other != fmt:
            hint += f", or these columns look like --format {other}"
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} for format {fmt}"
            f" (found: {', '.join(columns) or 'none'}){hint}"
        )
    read = {
        "text": _text_rows,
        "prompt_completion": _pc_rows,
        "messages": _message_rows,
        "alpaca": _alpaca_rows,
    }[fmt]
    out = read(rows, cfg, source)
    dropped = len(rows) - len(out)
    if not out:
        raise DataError(f"{source}: no non-empty examples in {len(rows)} rows (format {fmt})")
    return out, dropped


def _text_rows(rows: Any, cfg: DataConfig, source: str) -> list[Example]:
    return [
        Example("", text.strip(), row=i)
        for i, text in enumerate(rows[cfg.text_column], start=1)
        if isinstance(text, str) and text.strip()
    ]


def _pc_rows(rows: Any, cfg: DataConfig, source: str) -> list[Example]:
    out = []
    pairs = zip(rows[cfg.prompt_column], rows[cfg.completion_column], strict=True)
    for i, (p, c) in enumerate(pairs, start=1):
        if isinstance(p, list) or isinstance(c, list):  # conversational prompt / completion
            turns = (
                *_turns(p or [], source, i, cfg.prompt_column, trained=False),
                *_turns(c or [], source, i, cfg.completion_column, trained=True),
            )
            if any(t.trained and t.content.strip() for t in turns):
                out.append(Example("", "", turns, row=i))
        elif isinstance(p, str) and isinstance(c, str) and c.strip():
            out.append(Example(p, c, row=i))
    return out


def _message_rows(rows: Any, cfg: DataConfig, source: str) -> list[Example]:
    out = []
    for i, messages in enumerate(rows[cfg.messages_column], start=1):
        if not messages:
            continue
        turns = _turns(messages, source, i, cfg.messages_column, trained=None)
        if any(t.trained and t.content.strip() for t in turns):
            out.append(Example("", "", turns, row=i))
    return out


def _turns(
    messages: Any, source: str, row: int, column: str, *, trained: bool | None
) -> tuple[Turn, ...]:
    """A row's messages as turns; ``trained`` None: assistant turns are trained."""
    if not isinstance(messages, list):
        raise DataError(
            f"{source}: row {row}: column {column} holds {type(messages).__name__}; expected a"
            " list of {role, content} messages"
        )
    turns = []
    for k, m in enumerate(messages, start=1):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if role not in ROLES:
            raise DataError(
                f"{source}: row {row}: message {k} has role {role!r}; expected one of"
                f" {', '.join(ROLES)}"
            )
        if content is not None and not isinstance(content, str):
            raise DataError(
                f"{source}: row {row}: message {k} content is {type(content).__name__}; expected text"
            )
        is_trained = role == "assistant" if trained is None else trained
        turns.append(Turn(role, content or "", is_trained))
    return tuple(turns)


def _alpaca_rows(rows: Any, cfg: DataConfig, source: str) -> list[Example]:
    inputs = rows["input"] if "input" in rows.column_names else [""] * len(rows)
    out = []
    triples = zip(rows["instruction"], inputs, rows["output"], strict=True)
    for i, (instruction, extra, output) in enumerate(triples, start=1):
        if not (isinstance(instruction, str) and isinstance(output, str) and output.strip()):
            continue
        if isinstance(extra, str) and extra.strip():
            prompt = ALPACA_PROMPT.format(instruction=instruction, input=extra)
        else:
            prompt = ALPACA_PROMPT_NO_INPUT.format(instruction=instruction)
        out.append(Example(prompt, output, row=i))
    return out
