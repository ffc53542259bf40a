"""``lensllm-tui models``: which candidates this machine can use right now.

Lists the built-in tiny zoo (family, whether it is already built in the cache
and, if so, its parameter count) and the model repositories already in the
local Hugging Face cache, which load without network. Listing never builds or
downloads anything: a zoo model is built by the first run that uses it.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def list_models(console: Console, *, hub_only: bool = False) -> int:
    """Print the tiny zoo and the cached hub models; returns the exit code."""
    from core.training.models import ModelError, cached_hub_models, resolve_model, tiny_zoo
    from core.training.zoo import ZOO, zoo_root

    if not hub_only:
        root = zoo_root()
        zoo = Table(
            title=f"Built-in tiny zoo (offline; cache {escape(str(root))})", title_justify="left"
        )
        zoo.add_column("name", no_wrap=True)
        zoo.add_column("family")
        zoo.add_column("kind")
        zoo.add_column("parameters", justify="right")
        for name in tiny_zoo():
            short = name.removeprefix("tiny:")
            if not (root / short / "config.json").is_file():
                zoo.add_row(name, ZOO[short].family, "-", "not built yet (first run builds it)")
                continue
            try:
                spec = resolve_model(name)
            except ModelError as exc:
                zoo.add_row(name, ZOO[short].family, "-", f"unavailable: {escape(str(exc))}")
                continue
            params = f"{spec.params:,}" if spec.params else "?"
            zoo.add_row(name, spec.family, spec.kind, params)
        console.print(zoo)
    cached = cached_hub_models()
    if cached:
        hub = Table(title="Models in the local Hugging Face cache", title_justify="left")
        hub.add_column("hub id", no_wrap=True)
        for repo in cached:
            hub.add_row(escape(repo))
        console.print(hub)
    else:
        console.print("No models in the local Hugging Face cache.", highlight=False)
    return 0
