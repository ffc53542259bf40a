"""Talking to the Hugging Face hub: whether it can be reached, and keeping its output quiet.

One small module so that resolving models, loading datasets and building the
zoo share the same notion of "offline" without importing each other.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so offline machines fail in seconds, not retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0].split(":")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


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
