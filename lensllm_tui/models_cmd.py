"""``lensllm-tui models``: which candidates this machine can use right now.

Lists the built-in tiny zoo (with family and parameter count, building a zoo
model on first use like a run would) and the model repositories already in
the local Hugging Face cache, which load without network.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def list_models(console: Console, *, hub_only: bool = False) -> int:
    """Print the tiny zoo and the cached hub models; returns the exit code."""
    from core.models import ModelError, cached_hub_models, resolve_model, tiny_zoo

    if not hub_only:
        zoo = Table(title="Built-in tiny zoo (offline)", title_justify="left")
        zoo.add_column("name")
        zoo.add_column("family")
        zoo.add_column("kind")
        zoo.add_column("parameters", justify="right")
        for name in tiny_zoo():
            try:
                spec = resolve_model(name)
            except ModelError as exc:
                zoo.add_row(name, "-", "-", f"unavailable: {exc}")
                continue
            params = f"{spec.params:,}" if spec.params else "?"
            zoo.add_row(name, spec.family, spec.kind, params)
        console.print(zoo)
    cached = cached_hub_models()
    if cached:
        hub = Table(title="Models in the local Hugging Face cache", title_justify="left")
        hub.add_column("hub id")
        for repo in cached:
            hub.add_row(repo)
        console.print(hub)
    else:
        console.print("No models in the local Hugging Face cache.", highlight=False)
    return 0
