"""Chat examples through each candidate's own chat template, loss on the trained turns only.

Candidates' templates differ (ChatML, Llama's [INST], Gemma's turns), so a
conversation is rendered per tokenizer with ``tokenizer.apply_chat_template``,
exactly as that model would see it at inference. A tokenizer without a
template gets ``FALLBACK_TEMPLATE`` (ChatML, the format TRL's
``setup_chat_format`` installs), and every run says which one each model got.

Which characters belong to a trained turn is found by rendering the
conversation up to that turn, with and without it: the difference is the
turn as the template writes it (content plus its end-of-turn marker, which
the model must learn to emit). Templates that rewrite earlier turns (so the
short render is not a prefix of the long one) fall back to locating the
turn's content in the full text. Tokens whose first character lies in a
trained span get labels; every other token is IGNORE_INDEX.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from core.errors import DataError, one_line
from core.training.examples import IGNORE_INDEX, Example, Turn

FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, for tokenizers that bring no chat template of their own."""

FALLBACK_NAME = "fallback ChatML template (the tokenizer has no chat template)"
OWN_NAME = "the model's own chat template"


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def template_name(tokenizer: Any) -> str:
    """Which template chat data is rendered with for this tokenizer, in words."""
    return OWN_NAME if has_template(tokenizer) else FALLBACK_NAME


def render(tokenizer: Any, turns: Sequence[Turn], *, generation_prompt: bool = False) -> str:
    """The conversation as text, through the tokenizer's template (or the fallback)."""
    messages = [{"role": t.role, "content": t.content} for t in turns]
    return tokenizer.apply_chat_template(
        messages,
        chat_template=None if has_template(tokenizer) else FALLBACK_TEMPLATE,
        add_generation_prompt=generation_prompt,
        tokenize=False,
    )


def trained_spans(tokenizer: Any, turns: Sequence[Turn], full: str) -> list[tuple[int, int]]:
    """Character spans of ``full`` that hold the trained turns (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, turn in enumerate(turns):
        if not turn.trained:
            continue
        before = (
            render(tokenizer, turns[:i], generation_prompt=turn.role == "assistant") if i else ""
        )
        upto = render(tokenizer, turns[: i + 1])
        if full.startswith(upto) and upto.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(upto)
        else:
            start = full.find(turn.content, cursor)
            if start < 0:
                raise ValueError(f"the template does not write turn {i + 1}'s content verbatim")
            end = start + len(turn.content)
        spans.append((start, end))
        cursor = end
    return spans


def encode_chat_causal(
    example: Example, tokenizer: Any, max_length: int, prefix: Sequence[int]
) -> tuple[list[int], list[int], int]:
    """(input ids, labels, tokens before truncation) of one rendered conversation.

    ``prefix`` is the tokenizer's own leading special tokens (a BOS), added only
    for the fallback template: a model's own template writes its BOS itself.
    """
    full = render(tokenizer, example.turns)
    spans = trained_spans(tokenizer, example.turns, full)
    lead = [] if has_template(tokenizer) else list(prefix)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = list(enc["input_ids"])
        marks = [any(s <= a < e for s, e in spans) for a, _ in enc["offset_mapping"]]
    else:  # slow tokenizers have no offsets: tokenise span by span
        ids, marks = [], []
        edges = sorted({0, len(full), *(x for span in spans for x in span)})
        for a, b in itertools.pairwise(edges):
            piece = tokenizer(full[a:b], add_special_tokens=False, verbose=False)["input_ids"]
            ids += piece
            marks += [any(s <= a < e for s, e in spans)] * len(piece)
    ids = lead + ids
    labels = [IGNORE_INDEX] * len(lead) + [
        t if m else IGNORE_INDEX for t, m in zip(ids[len(lead) :], marks, strict=True)
    ]
    return ids[:max_length], labels[:max_length], len(ids)


def as_prompt_completion(example: Example, tokenizer: Any) -> Example:
    """A conversation as (rendered context, last trained turn) for encoder-decoder models.

    The encoder reads everything before the last trained turn, as the template
    writes it with the generation prompt; the decoder target is that turn's
    content. Earlier trained turns are context only.
    """
    last = max(i for i, t in enumerate(example.turns) if t.trained)
    context = example.turns[:last]
    prompt = render(tokenizer, context, generation_prompt=True) if context else ""
    return Example(prompt, example.turns[last].content)


def render_error(source: str, row: int, tokenizer: Any, exc: BaseException) -> DataError:
    """The one line for a conversation a template cannot render."""
    where = f"{source}: row {row}" if row >= 0 else source
    model = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    return DataError(
        f"{where}: {template_name(tokenizer)} of {model} cannot render this conversation"
        f" ({one_line(exc)}); expected turns that template accepts"
        " (for most: optional system, then alternating user / assistant)"
    )
