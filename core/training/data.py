"""Task data: load examples, split them once, hand out nested subsets and batches.

A task is read once (local file, hub dataset or the built-in text), split with a
seeded permutation into train / validation / test, and fingerprinted so that
the store can tell whether a finished point was measured on the same data.
Every ladder point trains on a prefix of the (already permuted) train split,
so the 400-sample subset contains the 200-sample one, and every point is
scored on the same test split.

Examples are normalised to ``Example(prompt, completion)``: plain text is an
example with an empty prompt, so one tokeniser and one loss rule ("loss on
completion tokens only") serve both formats.
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
from core.training.hub import hub_reachable

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
"""Label value that cross-entropy ignores (prompt tokens, padding)."""

LOCAL_SUFFIXES = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
}


@dataclass(frozen=True, slots=True)
class Example:
    """One training example; ``prompt`` is empty for plain language modelling."""

    prompt: str
    completion: str


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised example: model inputs and labels (``IGNORE_INDEX`` where ignored).

    For causal models ``labels`` is aligned with ``input_ids`` (the model shifts);
    for seq2seq models ``labels`` is the decoder target and may differ in length.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def label_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


@dataclass
class TaskData:
    """A task split once: fixed validation and test, a permuted train split."""

    source: str
    format: str
    train: tuple[Example, ...]
    """In seeded-permutation order: ``subset(n)`` is simply the first n."""
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    fingerprint: str
    """Stable hash of source, format, columns, split settings and content."""
    _encoded: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def max_train_size(self) -> int:
        """The largest subset this task can provide (runners clip ladders to it)."""
        return len(self.train)

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
        tokenizer's vocabulary hash so two loads of the same tokenizer share it.
        """
        key = (_tokenizer_key(tokenizer), kind, max_length)
        if key not in self._encoded:
            self._encoded[key] = {
                split: tuple(encode_examples(getattr(self, split), tokenizer, kind, max_length))
                for split in ("train", "validation", "test")
            }
        return self._encoded[key]


def _tokenizer_key(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    h.update(str(getattr(tokenizer, "name_or_path", "")).encode())
    h.update(str(len(vocab)).encode())
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
        examples = builtin_examples(cfg.format)
    else:
        try:
            examples = _rows_to_examples(_load_rows(cfg), cfg)
        except UnicodeDecodeError as exc:  # raised lazily, by datasets' Arrow string columns
            raise DataError(_not_utf8(cfg.source, exc)) from None
    examples = _dedupe(examples)
    held_out = cfg.validation_size + cfg.test_size
    if len(examples) <= held_out:
        raise DataError(
            f"{cfg.source}: {len(examples)} usable examples, but validation ({cfg.validation_size})"
            f" + test ({cfg.test_size}) need more than {held_out}"
        )
    import numpy as np

    order = np.random.default_rng(cfg.seed).permutation(len(examples))
    shuffled = [examples[i] for i in order]
    test = tuple(shuffled[: cfg.test_size])
    validation = tuple(shuffled[cfg.test_size : held_out])
    train = tuple(shuffled[held_out:])
    return TaskData(
        source=cfg.source,
        format=cfg.format,
        train=train,
        validation=validation,
        test=test,
        fingerprint=_fingerprint(cfg, examples),
    )


def _fingerprint(cfg: DataConfig, examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    settings = {
        "source": cfg.source,
        "format": cfg.format,
        "columns": [cfg.text_column]
        if cfg.format == "text"
        else [cfg.prompt_column, cfg.completion_column],
        "hub": [cfg.hub_config, cfg.hub_split],
        "split": [cfg.seed, cfg.validation_size, cfg.test_size],
        "max_length": cfg.max_length,
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    for ex in examples:
        h.update(json.dumps([ex.prompt, ex.completion]).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _dedupe(examples: Sequence[Example]) -> list[Example]:
    """Drop exact repeats (first kept) so no test example also sits in train."""
    seen: set[Example] = set()
    out = []
    for ex in examples:
        if ex not in seen:
            seen.add(ex)
            out.append(ex)
    return out


def _not_utf8(source: str, exc: UnicodeDecodeError) -> str:
    """Which line of a local text file is not UTF-8, read line by line (bounded memory)."""
    path = Path(source).expanduser()
    try:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = line[bad.start]
                    return (
                        f"{source}:{number}: not UTF-8 text (byte 0x{byte:02x} at column "
                        f"{bad.start + 1}); save the file as UTF-8"
                    )
    except OSError:
        pass
    return f"{source}: not UTF-8 text ({one_line(exc)}); save the file as UTF-8"


def _load_rows(cfg: DataConfig) -> Any:
    """Rows of a local file or hub dataset through ``datasets.load_dataset``."""
    import datasets

    path = Path(cfg.source).expanduser()
    looks_local = path.suffix.lower() in LOCAL_SUFFIXES or cfg.source.startswith((".", "/", "~"))
    if path.is_file():
        builder = LOCAL_SUFFIXES.get(path.suffix.lower())
        if builder is None:
            raise DataError(
                f"{cfg.source}: unsupported file type (use {', '.join(sorted(LOCAL_SUFFIXES))})"
            )
        if path.stat().st_size == 0:
            raise DataError(f"{cfg.source}: the file is empty")
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as exc:
            raise DataError(f"{cfg.source}: cannot read as {builder} ({one_line(exc)})") from exc
    if path.is_dir() or looks_local:
        raise DataError(f"dataset file not found: {cfg.source}")
    # A hub dataset name: the cache is tried first, the network only when reachable.
    try:
        return datasets.load_dataset(cfg.source, cfg.hub_config, split=cfg.hub_split)
    except Exception as exc:
        if not hub_reachable():
            raise DataError(
                f"unknown dataset {cfg.source!r}: not a local file and not reachable on the"
                " Hugging Face hub (offline?)"
            ) from exc
        raise DataError(f"dataset {cfg.source!r}: {one_line(exc)}") from exc


def _rows_to_examples(rows: Any, cfg: DataConfig) -> list[Example]:
    columns = list(getattr(rows, "column_names", []) or [])
    if cfg.format == "text":
        needed = [cfg.text_column]
    else:
        needed = [cfg.prompt_column, cfg.completion_column]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{cfg.source}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'})"
        )
    out: list[Example] = []
    if cfg.format == "text":
        for text in rows[cfg.text_column]:
            if isinstance(text, str) and text.strip():
                out.append(Example("", text.strip()))
    else:
        for p, c in zip(rows[cfg.prompt_column], rows[cfg.completion_column], strict=True):
            if isinstance(p, str) and isinstance(c, str) and c.strip():
                out.append(Example(p, c))
    if not out:
        raise DataError(f"{cfg.source}: no non-empty examples")
    return out


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


# --------------------------------------------------------------------------- tokenising


def encode_examples(
    examples: Sequence[Example], tokenizer: Any, kind: str, max_length: int
) -> list[Encoded]:
    """Token ids and labels, loss only on completion tokens, truncated to ``max_length``.

    Causal: ``prompt + completion + eos`` in one sequence, prompt positions
    labelled IGNORE_INDEX; when too long, the prompt keeps at most half the
    budget (its end, nearest the completion) and the completion is cut.
    Seq2seq: the prompt is the encoder input (an empty prompt still gets the
    tokenizer's special tokens), the completion + eos is the decoder target.
    """
    if kind not in ("causal", "seq2seq"):
        raise ValueError(f"kind must be 'causal' or 'seq2seq', not {kind!r}")
    prompts = [ex.prompt for ex in examples]
    comps = [ex.completion for ex in examples]
    eos = tokenizer.eos_token_id
    if not examples:
        return []
    # Truncating here (completion from the right, prompt from the left so its
    # end stays next to the completion) keeps tokenizers from warning about
    # over-long inputs; the exact length budget is applied below.
    comp_ids = tokenizer(comps, add_special_tokens=False, truncation=True, max_length=max_length)[
        "input_ids"
    ]
    side = getattr(tokenizer, "truncation_side", "right")
    try:
        tokenizer.truncation_side = "left"
        prompt_ids = tokenizer(
            prompts, add_special_tokens=True, truncation=True, max_length=max_length
        )["input_ids"]
    finally:
        tokenizer.truncation_side = side
    out: list[Encoded] = []
    if kind == "causal":
        for p, c in zip(prompt_ids, comp_ids, strict=True):
            c = [*c, eos] if eos is not None else list(c)
            if len(p) + len(c) > max_length:
                keep_p = min(len(p), max(max_length // 2, max_length - len(c)))
                p = p[len(p) - keep_p :] if keep_p else []
                c = c[: max_length - len(p)]
            ids = tuple(p) + tuple(c)
            labels = (IGNORE_INDEX,) * len(p) + tuple(c)
            out.append(Encoded(ids, labels))
    else:
        for p, c in zip(prompt_ids, comp_ids, strict=True):
            c = [*c, eos] if eos is not None else list(c)
            c = c[:max_length]
            out.append(Encoded(tuple(p) or ((eos,) if eos is not None else (0,)), tuple(c)))
    return out


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
