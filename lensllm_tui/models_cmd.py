"""``lensllm-tui models``: which candidates this machine holds, and what each one is.

For the built-in tiny zoo and every model repo in the local Hugging Face cache
(which load without network): parameter count, kind (causal, seq2seq, or not
usable and why), stored dtype and size on disk. Repos that are not transformers
models at all (no config.json: GGUF files, adapters) cannot be candidates and
are left out, with a count. Listing never builds, downloads or loads weights.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def list_models(console: Console, *, hub_only: bool = False) -> int:
    """Print the zoo and the cached hub models; returns the exit code."""
    from core.training.inventory import hub_models, zoo_models
    from core.training.zoo import zoo_root

    rows = [] if hub_only else zoo_models()
    hub = hub_models()
    table = Table(
        title="Candidate models on this machine (no network needed)", title_justify="left"
    )
    for col, justify in (
        ("model", "left"),
        ("source", "left"),
        ("kind", "left"),
        ("parameters", "right"),
        ("dtype", "left"),
        ("on disk", "right"),
        ("note", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col == "model")  # type: ignore[arg-type]
    for info in [*rows, *hub.models]:
        table.add_row(
            escape(info.name),
            info.source,
            info.kind or "[red]not usable[/red]",
            f"{info.params:,}" if info.params else "?",
            info.dtype or "?",
            _size(info.size_bytes),
            escape(info.note),
        )
    console.print(table)
    if not hub_only:
        console.print(f"zoo cache: {escape(str(zoo_root()))}", highlight=False)
    if not hub.models:
        console.print("No models in the local Hugging Face cache.", highlight=False)
    if hub.left_out:
        names = ", ".join(hub.left_out[:5]) + (" ..." if len(hub.left_out) > 5 else "")
        console.print(
            f"left out {len(hub.left_out)} cached repo(s) without a transformers config.json"
            f" (not candidates): {escape(names)}",
            highlight=False,
        )
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
