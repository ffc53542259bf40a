"""The shapes task data takes on its way to a model: examples, chat turns, encoded tokens.

Every input format (plain text, prompt/completion, chat messages, Alpaca) is
read into ``Example``; tokenising turns one into ``Encoded``. Kept apart from
the readers and the tokeniser so both can use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IGNORE_INDEX = -100
"""Label value that cross-entropy ignores (prompt tokens, non-assistant turns, padding)."""

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
"""Chat roles a conversation may hold (the roles chat templates know)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat message; ``trained`` marks the turns the loss is taken on."""

    role: str
    content: str
    trained: bool


@dataclass(frozen=True, slots=True)
class Example:
    """One training example.

    ``prompt`` is empty for plain language modelling; a chat example has
    ``turns`` (and empty prompt and completion), rendered per model through
    that model's chat template when it is tokenised.
    """

    prompt: str
    completion: str
    turns: tuple[Turn, ...] = ()
    row: int = field(default=-1, compare=False)
    """Row of the source file it came from (1-based, -1 if none), for error messages;
    not part of the example's identity, so duplicates on other rows still compare equal."""

    @property
    def is_chat(self) -> bool:
        return bool(self.turns)

    @property
    def chars(self) -> int:
        """Characters of text the example holds (for size reports)."""
        return len(self.prompt) + len(self.completion) + sum(len(t.content) for t in self.turns)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised example: model inputs and labels (``IGNORE_INDEX`` where ignored).

    For causal models ``labels`` is aligned with ``input_ids`` (the model shifts);
    for seq2seq models ``labels`` is the decoder target and may differ in length.
    ``truncated`` says some of the example's tokens did not fit in max_length.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool = False

    @property
    def label_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)
