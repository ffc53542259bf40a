"""Talking to the Hugging Face hub: whether it can be reached, and keeping its output quiet.

One small module so that resolving models, loading datasets and building the
zoo share the same notion of "offline" without importing each other.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REACHABLE_TTL = 60.0
"""Seconds a reachability answer is reused: a run resolving ten candidates probes once."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so offline machines fail in seconds, not retries.

    When it says no, models found in the cache are loaded with
    ``local_files_only``, so huggingface_hub never starts its retry back-off
    ("Retrying in 8s") on a machine without network and without HF_HUB_OFFLINE.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return _probe(endpoint, timeout, int(time.monotonic() // REACHABLE_TTL))


@functools.lru_cache(maxsize=8)
def _probe(endpoint: str, timeout: float, _epoch: int) -> bool:
    scheme_port = 80 if endpoint.startswith("http://") else 443
    hostport = re.sub(r"^https?://", "", endpoint).split("/")[0]
    host, _, port = hostport.partition(":")
    try:
        with socket.create_connection((host, int(port or scheme_port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model (its ``main`` revision), if any.

    Found through huggingface_hub's own cache lookup of the repo's config.json,
    so HF_HOME / HF_HUB_CACHE are honoured; the folder's name is the commit hash.
    """
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a valid repo id, unreadable cache: simply not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers progress bars (they would scribble over the headless console)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
