"""Task data: load examples, split them once, hand out nested subsets and batches.

A task is read once (core/training/sources.py: files, saved datasets, hub
datasets, in any of the supported formats), de-duplicated, split with a seeded
permutation into train / validation / test, and fingerprinted so that the
store can tell whether a finished point was measured on the same data. A
user's own test or validation file is used as given and the split draws only
the rest from the source. Every ladder point trains on a prefix of the
(already permuted) train split, so the 400-sample subset contains the
200-sample one, and every point is scored on the same test split.

Examples are normalised to ``Example`` (core/training/examples.py): plain text
is an example with an empty prompt, so one tokeniser and one loss rule ("loss
on completion tokens only") serve the plain formats; chat examples carry
their turns and are rendered per model (core/training/encoding.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import DataConfig
from core.errors import DataError, one_line
from core.training import chat
from core.training.encoding import encode_examples
from core.training.examples import IGNORE_INDEX, Encoded, Example
from core.training.sources import read_rows, resolve_format, rows_to_examples

if TYPE_CHECKING:
    import torch

__all__ = [
    "IGNORE_INDEX",
    "DataError",
    "DataStats",
    "Encoded",
    "Example",
    "TaskData",
    "collate",
    "encode_examples",
    "load_task",
    "make_batch",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class DataStats:
    """What reading changed: rows dropped as empty, repeats dropped, train rows held out."""

    rows: int
    """Rows read from the source (before anything was dropped)."""
    empty: int = 0
    """Rows without usable text (or, for chat, without a trained turn)."""
    duplicates: int = 0
    """Exact repeats of an earlier example, dropped so no test example also sits in train."""
    held_out_overlap: int = 0
    """Source examples also in the given test / validation file, kept out of training."""

    def share(self, n: int) -> float:
        return n / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "empty": self.empty,
            "duplicates": self.duplicates,
            "duplicates_share": self.share(self.duplicates),
            "held_out_overlap": self.held_out_overlap,
        }

    def summary(self) -> str:
        """One line for the start of a run."""
        parts = [f"{self.rows} rows read"]
        if self.empty:
            parts.append(f"{self.empty} empty dropped ({self.share(self.empty):.1%})")
        parts.append(f"{self.duplicates} duplicates dropped ({self.share(self.duplicates):.1%})")
        if self.held_out_overlap:
            parts.append(
                f"{self.held_out_overlap} also in the given test/validation file kept out of training"
            )
        return "; ".join(parts)


@dataclass
class TaskData:
    """A task split once: fixed validation and test, a permuted train split."""

    source: str
    format: str
    """The format the examples were read in (``auto`` already resolved)."""
    train: tuple[Example, ...]
    """In seeded-permutation order: ``subset(n)`` is simply the first n."""
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    fingerprint: str
    """Stable hash of source, format, columns, split settings and content."""
    stats: DataStats = field(default_factory=lambda: DataStats(0))
    sources: dict[str, str] = field(default_factory=dict)
    """Which file each split came from (for error messages); missing: ``source``."""
    _encoded: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def max_train_size(self) -> int:
        """The largest subset this task can provide (runners clip ladders to it)."""
        return len(self.train)

    @property
    def is_chat(self) -> bool:
        return any(ex.is_chat for split in SPLITS for ex in getattr(self, split)[:1])

    def subset(self, size: int) -> tuple[Example, ...]:
        """The first ``size`` train examples; nested by construction."""
        if size < 0:
            raise DataError(f"subset size must be non-negative, not {size}")
        if size > len(self.train):
            raise DataError(
                f"the train split has {len(self.train)} examples; a subset of {size} is not possible"
            )
        return self.train[:size]

    def clip_ladder(self, sizes: Sequence[int]) -> tuple[list[int], list[int]]:
        """Split ``sizes`` into (kept, dropped) by what the train split can hold."""
        kept = [s for s in sizes if s <= len(self.train)]
        dropped = [s for s in sizes if s > len(self.train)]
        return kept, dropped

    def encode(self, tokenizer: Any, kind: str, max_length: int) -> dict[str, tuple[Encoded, ...]]:
        """Tokenise every split once per (tokenizer, kind, max_length) and cache it.

        Points of the same model then never re-tokenise; the cache key uses the
        tokenizer's vocabulary hash (and chat template) so two loads of the same
        tokenizer share it.
        """
        key = (_tokenizer_key(tokenizer), kind, max_length)
        if key not in self._encoded:
            self._encoded[key] = {
                split: tuple(
                    encode_examples(
                        getattr(self, split),
                        tokenizer,
                        kind,
                        max_length,
                        source=self.sources.get(split, self.source),
                    )
                )
                for split in SPLITS
            }
        return self._encoded[key]

    def encoding_report(self, tokenizer: Any, kind: str, max_length: int) -> dict[str, Any]:
        """Per model: examples cut at max_length (count and share) and the chat template used."""
        encoded = self.encode(tokenizer, kind, max_length)
        total = sum(len(encoded[s]) for s in SPLITS)
        cut = sum(e.truncated for s in SPLITS for e in encoded[s])
        return {
            "max_length": max_length,
            "examples": total,
            "truncated": cut,
            "truncated_share": cut / total if total else 0.0,
            "truncated_train": sum(e.truncated for e in encoded["train"]),
            "chat_template": chat.template_name(tokenizer) if self.is_chat else None,
        }


def _tokenizer_key(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    h.update(str(getattr(tokenizer, "name_or_path", "")).encode())
    h.update(str(len(vocab)).encode())
    h.update(str(getattr(tokenizer, "chat_template", "") or "").encode())
    for tok, idx in sorted(vocab.items(), key=lambda kv: kv[1])[:4096]:
        h.update(f"{idx}:{tok}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- loading


def load_task(cfg: DataConfig) -> TaskData:
    """Read, clean, de-duplicate and split the task described by ``cfg``.

    Raises DataError (one line) for a missing, empty or unreadable source, for
    missing columns, or when there are too few examples for validation + test
    + at least one training example.
    """
    if cfg.source == "builtin":
        fmt = "prompt_completion" if cfg.format == "prompt_completion" else "text"
        if cfg.format in ("messages", "alpaca"):
            raise DataError(
                f"the builtin data has no {cfg.format} format (use text or prompt_completion)"
            )
        examples, empty = builtin_examples(fmt), 0
        rows = len(examples)
    else:
        fmt, examples, empty, rows = _read(cfg.source, cfg, None, "dataset")
    examples, duplicates = _dedupe(examples)
    given: dict[str, tuple[Example, ...]] = {}
    sources: dict[str, str] = {}
    for split, path in (("test", cfg.test_file), ("validation", cfg.validation_file)):
        if path:
            _, held, _, _ = _read(path, cfg, fmt, f"{split} file")
            given[split] = tuple(_dedupe(held)[0])
            sources[split] = path
    held_out = {ex for split in given.values() for ex in split}
    pool = [ex for ex in examples if ex not in held_out]
    overlap = len(examples) - len(pool)
    n_test = 0 if "test" in given else cfg.test_size
    n_val = 0 if "validation" in given else cfg.validation_size
    if len(pool) <= n_test + n_val:
        raise DataError(
            f"{cfg.source}: {len(pool)} usable examples, but validation ({n_val}) + test"
            f" ({n_test}) drawn from it need more than {n_test + n_val}"
        )
    import numpy as np

    order = np.random.default_rng(cfg.seed).permutation(len(pool))
    shuffled = [pool[i] for i in order]
    return TaskData(
        source=cfg.source,
        format=fmt,
        train=tuple(shuffled[n_test + n_val :]),
        validation=given.get("validation", tuple(shuffled[n_test : n_test + n_val])),
        test=given.get("test", tuple(shuffled[:n_test])),
        fingerprint=_fingerprint(cfg, fmt, examples, given),
        stats=DataStats(rows, empty, duplicates, overlap),
        sources=sources,
    )


def _read(
    source: str, cfg: DataConfig, fmt: str | None, what: str
) -> tuple[str, list[Example], int, int]:
    """(format, examples, empty rows, rows) of one file; ``fmt`` None resolves ``cfg.format``."""
    rows = read_rows(source, cfg, what=what)
    if fmt is None:
        fmt = cfg.format
        if fmt == "auto":
            columns = list(rows.column_names)
            found = resolve_format(columns, cfg)
            if found is None:
                raise DataError(
                    f"{source}: no known format in columns {', '.join(columns) or 'none'}"
                    " (expected text, prompt + completion, messages, or instruction + output);"
                    " name the columns with --text-column etc. or choose --format"
                )
            fmt = found
    label = source if what == "dataset" else f"{what} {source}"
    try:
        examples, empty = rows_to_examples(rows, cfg, label, fmt)
    except UnicodeDecodeError as exc:  # raised lazily, by datasets' Arrow string columns
        raise DataError(_not_utf8(label, source, exc)) from None
    return fmt, examples, empty, len(rows)


def _not_utf8(label: str, source: str, exc: UnicodeDecodeError) -> str:
    """Which line of a local text file is not UTF-8, read line by line (bounded memory)."""
    try:
        with Path(source).expanduser().open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return (
                        f"{label}:{number}: not UTF-8 text (byte 0x{line[bad.start]:02x} at "
                        f"column {bad.start + 1}); save the file as UTF-8"
                    )
    except OSError:
        pass
    return f"{label}: not UTF-8 text ({one_line(exc)}); save the file as UTF-8"


def _fingerprint(
    cfg: DataConfig,
    fmt: str,
    examples: Sequence[Example],
    given: dict[str, tuple[Example, ...]],
) -> str:
    h = hashlib.sha256()
    columns = {
        "text": [cfg.text_column],
        "prompt_completion": [cfg.prompt_column, cfg.completion_column],
        "messages": [cfg.messages_column],
        "alpaca": ["instruction", "input", "output"],
    }[fmt]
    settings: dict[str, Any] = {
        "source": cfg.source,
        "format": fmt,
        "columns": columns,
        "hub": [cfg.hub_config, cfg.hub_split],
        "split": [cfg.seed, cfg.validation_size, cfg.test_size],
        "max_length": cfg.max_length,
    }
    if cfg.sample_by != "line":  # only where it differs, so older fingerprints still hold
        settings["sample_by"] = cfg.sample_by
    if given:
        settings["given"] = sorted(given)
    h.update(json.dumps(settings, sort_keys=True).encode())
    for ex in [*examples, *(ex for split in sorted(given) for ex in given[split])]:
        fields = [ex.prompt, ex.completion]
        if ex.turns:
            fields.append([[t.role, t.content, t.trained] for t in ex.turns])
        h.update(json.dumps(fields).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _dedupe(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """Drop exact repeats (first kept) so no test example also sits in train; (kept, dropped)."""
    seen: set[Example] = set()
    out = []
    for ex in examples:
        if ex not in seen:
            seen.add(ex)
            out.append(ex)
    return out, len(examples) - len(out)


# --------------------------------------------------------------------------- built-in text


def builtin_examples(fmt: str) -> list[Example]:
    """Real English text that ships with Python, so the default run needs no network.

    ``text``: paragraphs of the Python Language Reference as bundled for
    ``help()`` (pydoc_data.topics), about 2000 examples.
    ``prompt_completion``: a stdlib function's signature as the prompt and the
    first paragraph of its docstring as the completion.
    """
    if fmt == "text":
        return reference_paragraphs()
    return [Example(p, c) for p, c in docstring_pairs(half=1)]


def reference_paragraphs(min_chars: int = 40, max_chars: int = 300) -> list[Example]:
    """Paragraphs of the Language Reference; long ones cut at sentence ends.

    Cutting keeps examples near one context window of the tiny models and
    yields enough distinct examples (about 2000 after de-duplication) for the
    default ladder's 1600 plus validation and test.
    """
    import pydoc_data.topics as topics

    out = []
    for name in sorted(topics.topics):
        for para in re.split(r"\n\s*\n", topics.topics[name]):
            for piece in _sentence_chunks(para.strip(), max_chars):
                if len(piece) >= min_chars:
                    out.append(Example("", piece))
    return out


def _sentence_chunks(text: str, limit: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    out: list[str] = []
    cur = ""
    for sent in re.split(r"(?<=[.;:])\s+", text):
        if cur and len(cur) + 1 + len(sent) > limit:
            out.append(cur)
            cur = sent
        else:
            cur = f"{cur} {sent}" if cur else sent
    if cur:
        out.append(cur)
    return out


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(root.glob("*.py"))


def _in_half(path: Path, half: int) -> bool:
    """Stable split of stdlib files into two disjoint halves (pretraining vs task)."""
    return hashlib.md5(path.name.encode()).digest()[0] % 2 == half


def docstring_pairs(half: int) -> list[tuple[str, str]]:
    """(signature, first docstring paragraph) of stdlib functions in one file half."""
    pairs = []
    for path, tree in _parsed_half(half):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if not doc or node.name.startswith("_"):
                    continue
                first = doc.strip().split("\n\n")[0].strip()
                if len(first) < 20:
                    continue
                sig = f"def {node.name}({ast.unparse(node.args)}):"
                pairs.append((f"{path.stem}: {sig}\n", " ".join(first.split())))
    return pairs


def pretraining_corpus(half: int = 0) -> list[str]:
    """Docstrings of the other half of the stdlib: related text the tasks never see."""
    out = []
    for _path, tree in _parsed_half(half):
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    for para in re.split(r"\n\s*\n", doc):
                        para = para.strip()
                        if len(para) >= 40:
                            out.append(para)
    return out


def _parsed_half(half: int) -> Iterator[tuple[Path, ast.Module]]:
    """The parseable stdlib files of one half, with their syntax trees."""
    for path in _stdlib_files():
        if _in_half(path, half) and (tree := _parse(path)) is not None:
            yield path, tree


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


# --------------------------------------------------------------------------- batches


def collate(
    batch: Sequence[Encoded], pad_token_id: int, kind: str = "causal"
) -> dict[str, torch.Tensor]:
    """Pad one batch to its own longest sequence (never to max_length).

    Returns ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE_INDEX on
    padding); the same dict the NTK probe and ``model(**batch)`` accept.
    """
    import torch

    n = len(batch)
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    lab_width = width if kind == "causal" else max(len(e.labels) for e in batch)
    labels = torch.full((n, lab_width), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(batch):
        k = len(e.input_ids)
        input_ids[i, :k] = torch.tensor(e.input_ids, dtype=torch.long)
        attention_mask[i, :k] = 1
        labels[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def make_batch(
    task: TaskData,
    tokenizer: Any,
    kind: str,
    n: int,
    *,
    split: str = "train",
    max_length: int = 128,
) -> dict[str, torch.Tensor]:
    """The first ``n`` examples of a split as one padded batch (e.g. the NTK probe set)."""
    encoded = task.encode(tokenizer, kind, max_length)[split]
    chosen = [e for e in encoded if e.label_tokens > 0][:n]
    if not chosen:
        raise DataError(f"no examples with labelled tokens in the {split} split")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return collate(chosen, pad, kind)
