"""Examples to token ids and labels, in memory and time bounded by max_length.

A tokenizer given a 50 MB string builds every token of it (gigabytes of
offsets and ids) before anything can be truncated. Here a text is cut to a
window of characters first (``WINDOW_CHARS_PER_TOKEN`` per token the model
can take), tokenised, and only if the window held too few tokens for the
budget is it widened (x4) and tokenised again. The last few tokens before a
cut may be split differently from a whole-text tokenisation, so
``CUT_MARGIN`` tokens beyond the budget are required before a cut counts as
safe; the ids kept are then exactly the whole text's. Whatever the example's
size, the tokenizer never sees more than a few windows of text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.training import chat
from core.training.examples import IGNORE_INDEX, Encoded, Example, Turn

WINDOW_CHARS_PER_TOKEN = 16
"""First window: this many characters per token of budget (English BPE runs ~4)."""

CUT_MARGIN = 8
"""Tokens beyond the budget a cut window must yield, so the kept ones are unaffected."""


def bounded_ids(
    tokenizer: Any, texts: Sequence[str], budget: int, *, from_end: bool = False
) -> list[tuple[list[int], bool]]:
    """Per text: (at most ``budget`` ids without special tokens, whether any were cut).

    The ids are the text's first ``budget`` tokens, or its last ones with
    ``from_end`` (a prompt keeps its end, next to the completion).
    """
    out: list[tuple[list[int], bool] | None] = [None] * len(texts)
    pending = list(range(len(texts)))
    window = max(256, budget * WINDOW_CHARS_PER_TOKEN)
    while pending:
        pieces = [_cut(texts[i], window, from_end) for i in pending]
        ids_list = (
            tokenizer(pieces, add_special_tokens=False, verbose=False)["input_ids"]
            if pieces
            else []
        )
        retry = []
        for i, piece, ids in zip(pending, pieces, ids_list, strict=True):
            whole = len(piece) == len(texts[i])
            if whole or len(ids) >= budget + CUT_MARGIN:
                kept = ids[-budget:] if from_end and budget else ids[:budget]
                out[i] = (list(kept) if budget else [], not whole or len(ids) > budget)
            else:
                retry.append(i)
        pending = retry
        window *= 4
    return [o for o in out if o is not None]


def _cut(text: str, window: int, from_end: bool) -> str:
    if len(text) <= window:
        return text
    return text[-window:] if from_end else text[:window]


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text (BOS, EOS, [CLS]...)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for k in range(len(full) - len(bare) + 1):
        if full[k : k + len(bare)] == bare:
            return list(full[:k]), list(full[k + len(bare) :])
    return [], []


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    kind: str,
    max_length: int,
    *,
    source: str = "",
) -> list[Encoded]:
    """Token ids and labels, loss only on completion (or trained chat) tokens, cut to ``max_length``.

    Causal: ``prompt + completion + eos`` in one sequence, prompt positions
    labelled IGNORE_INDEX; when too long, the prompt keeps at most half the
    budget (its end, nearest the completion) and the completion is cut. Chat
    examples are rendered through the tokenizer's chat template (core/training/chat.py).
    Seq2seq: the prompt is the encoder input (an empty prompt still gets the
    tokenizer's special tokens), the completion + eos is the decoder target; a
    conversation's context (rendered whole, then cut from its start like any
    prompt) is the prompt and its last trained turn the target.
    ``source`` names the file in errors (a conversation a template cannot render).
    """
    if kind not in ("causal", "seq2seq"):
        raise ValueError(f"kind must be 'causal' or 'seq2seq', not {kind!r}")
    if not examples:
        return []
    prefix, suffix = special_affixes(tokenizer)
    out: list[Encoded | None] = [None] * len(examples)
    plain: list[int] = []
    pairs: list[Example] = []
    for i, ex in enumerate(examples):
        if not ex.is_chat:
            plain.append(i)
            pairs.append(ex)
            continue
        try:
            if kind == "seq2seq":
                plain.append(i)
                pairs.append(chat.as_prompt_completion(ex, tokenizer))
            else:
                out[i] = _chat_causal(ex, tokenizer, max_length, prefix)
        except Exception as exc:
            raise chat.render_error(source, ex.row, tokenizer, exc) from exc
    for i, enc in zip(
        plain, _encode_pairs(pairs, tokenizer, kind, max_length, prefix, suffix), strict=True
    ):
        out[i] = enc
    return [e for e in out if e is not None]


def _encode_pairs(
    examples: Sequence[Example],
    tokenizer: Any,
    kind: str,
    max_length: int,
    prefix: list[int],
    suffix: list[int],
) -> list[Encoded]:
    eos = tokenizer.eos_token_id
    comps = bounded_ids(tokenizer, [ex.completion for ex in examples], max_length)
    room = max(0, max_length - len(prefix) - len(suffix))
    prompts = bounded_ids(tokenizer, [ex.prompt for ex in examples], room, from_end=True)
    out: list[Encoded] = []
    for (p_ids, p_cut), (c_ids, c_cut) in zip(prompts, comps, strict=True):
        p = [*prefix, *p_ids, *suffix]
        c = [*c_ids, eos] if eos is not None else list(c_ids)
        cut = p_cut or c_cut
        if kind == "causal":
            if len(p) + len(c) > max_length:
                cut = True
                keep_p = min(len(p), max(max_length // 2, max_length - len(c)))
                p = p[len(p) - keep_p :] if keep_p else []
                c = c[: max_length - len(p)]
            out.append(Encoded(tuple(p) + tuple(c), (IGNORE_INDEX,) * len(p) + tuple(c), cut))
        else:
            cut = cut or len(c) > max_length
            c = c[:max_length]
            enc_in = tuple(p) or ((eos,) if eos is not None else (0,))
            out.append(Encoded(enc_in, tuple(c), cut))
    return out


def _chat_causal(ex: Example, tokenizer: Any, max_length: int, prefix: list[int]) -> Encoded:
    """One conversation, its turns cut to a window first and widened only if that cut showed."""
    window = max(256, max_length * WINDOW_CHARS_PER_TOKEN)
    while True:
        cut = _windowed(ex, window)
        ids, labels, total = chat.encode_chat_causal(cut, tokenizer, max_length, prefix)
        if cut is ex or total >= max_length + CUT_MARGIN:
            return Encoded(tuple(ids), tuple(labels), total > max_length or cut is not ex)
        window *= 4


def _windowed(ex: Example, window: int) -> Example:
    """``ex`` with every turn's content cut to ``window`` characters (itself if none is longer)."""
    if all(len(t.content) <= window for t in ex.turns):
        return ex
    turns = tuple(
        Turn(t.role, t.content[:window], t.trained) if len(t.content) > window else t
        for t in ex.turns
    )
    return Example(ex.prompt, ex.completion, turns, row=ex.row)
