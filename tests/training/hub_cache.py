"""Tiny models of real architectures placed in a Hugging Face cache layout, for tests.

The layout is huggingface_hub's own (``models--owner--name/blobs``, ``snapshots/<commit>``
with symlinks into blobs, ``refs/main``), so scan_cache_dir and try_to_load_from_cache
find them exactly as they find downloaded models.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest


def put_in_cache(cache: Path, repo_id: str, folder: Path, commit: str | None = None) -> Path:
    """Copy a save_pretrained folder into ``cache`` as repo ``repo_id``; returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snap / f.name
        if not link.exists():
            link.symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def use_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Point huggingface_hub at ``cache`` (its constants are read at import time)."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
