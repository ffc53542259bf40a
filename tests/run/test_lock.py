"""One run per directory: the lock is exclusive, names its holder, and dies with it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import RunDirError
from core.flock import FileLock
from core.paths import LOCK_NAME
from core.run.lock import lock_run_dir

ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys, time
from core.run.lock import lock_run_dir
lock = lock_run_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def _holder(out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_locker_is_refused_naming_the_holder_and_kill_9_frees_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        with pytest.raises(RunDirError) as info:
            lock_run_dir(out)
        message = info.value.one_line()
        assert f"PID {proc.pid}" in message and str(out) in message
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lock = lock_run_dir(out)  # no stale lock after kill -9
    try:
        assert lock.held and (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    finally:
        lock.release()
    assert (out / LOCK_NAME).read_text() == ""  # released: no PID left to mislead


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "l")
    second = FileLock(tmp_path / "l")
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_out_that_is_a_file_or_under_one_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "results.txt"
    afile.write_text("x")
    for out in (afile, afile / "run"):
        with pytest.raises(RunDirError, match=f"{afile} is a file, not a directory"):
            lock_run_dir(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_unwritable_run_directory_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(RunDirError, match="permission denied"):
            lock_run_dir(out)
    finally:
        out.chmod(stat.S_IRWXU)


def test_orphan_temp_files_are_removed_when_the_lock_is_taken(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    orphans = [out / ".results.json.ab12cd34.tmp", out / ".curves.csv.0f0f0f0f.tmp"]
    for p in orphans:
        p.write_text("{")
    keep = out / "notes.tmp"
    keep.write_text("mine")
    lock_run_dir(out).release()
    assert not any(p.exists() for p in orphans)
    assert keep.read_text() == "mine"


def test_zoo_build_killed_mid_way_leaves_a_temp_dir_that_the_next_build_removes(
    tmp_path: Path,
) -> None:
    """kill -9 a real zoo build once its temp dir exists; the next build cleans up and works."""
    from core.training.zoo import ensure_built, zoo_root

    root = zoo_root(tmp_path)
    code = (
        "import sys; from core.training.zoo import ensure_built; "
        "ensure_built('gpt2-s', cache_dir=sys.argv[1], pretrain_steps=50)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list(root.glob(".gpt2-s-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(root.glob(".gpt2-s-*")), "the build never started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (root / "gpt2-s").exists()
    dest = ensure_built("gpt2-s", cache_dir=tmp_path, pretrain_steps=1)
    assert (dest / "config.json").is_file()
    assert [p.name for p in root.iterdir() if p.name.startswith(".") and p.is_dir()] == []
