"""SIGTERM stops a run like Ctrl-C (cancelled, resumable); a second signal exits 130 at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.processes import (
    MODEL,
    ROOT,
    cli,
    env_with,
    finish,
    results,
    stored_points,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.usefixtures("zoo_env")


def test_sigterm_cancels_headless_cleanly_and_the_directory_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100, 200])
    proc = cli("run", "--no-ui", "--config", str(cfg))
    wait_until(lambda: stored_points(out) >= 1, what="a first finished point")
    proc.send_signal(signal.SIGTERM)
    code, output = finish(proc)
    assert code == 130, output
    assert "cancelling (SIGTERM)" in output and "Traceback" not in output
    assert "cancelled:" in output
    res = results(out)
    assert res["status"] == "cancelled"
    kept = stored_points(out)
    assert 1 <= kept < 5
    code, output = finish(cli("run", "--no-ui", "--resume", str(out)))
    assert code == 0, output
    assert f"{5 - kept} points computed, {kept} reused" in output
    assert results(out)["status"] == "finished"


@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_second_ctrl_c_exits_130_at_once_whatever_the_run_is_doing(
    tmp_path: Path, delay: float
) -> None:
    """Two SIGINTs soon after the start (while models load): exit 130, never SIGABRT."""
    out = tmp_path / "out"
    sizes = [25, 50, 100, 200, 400, 800, 1600]  # long enough to be mid-run after 0.5 s
    cfg = write_config(tmp_path / "run.toml", out, [MODEL, "tiny:llama-s"], sizes, 6400)
    proc = cli("run", "--no-ui", "--config", str(cfg))
    assert proc.stdout is not None
    for line in proc.stdout:  # warnings may come first
        if line.startswith("run:"):  # the engine has started
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    code, output = finish(proc)
    # A run that the first signal (or its own end) finishes within the 20 ms can meet
    # the second one after its handlers are gone, in interpreter shutdown: Python then
    # dies of SIGINT, which the shell reports as 130 too. What must never happen is
    # SIGABRT ("terminate called ...") or a traceback.
    assert code in (130, -signal.SIGINT), output
    assert "terminate called" not in output and "Traceback" not in output


def _drain(fd: int, sink: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink.append(chunk)


def test_sigterm_to_the_dashboard_cancels_the_run_and_exits_130(tmp_path: Path) -> None:
    """The real app on a pseudo-terminal, sent SIGTERM mid-run as `docker stop` would."""
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100, 200])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lensllm_tui.cli", "run", "--autostart", "--config", str(cfg)],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env_with(TERM="xterm-256color"),
        start_new_session=True,
    )
    os.close(slave)
    screen: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, screen), daemon=True)
    reader.start()
    try:
        wait_until(lambda: stored_points(out) >= 1, what="a first finished point")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            os.close(master)
    assert code == 130, b"".join(screen)[-2000:]
    assert results(out)["status"] == "cancelled"
    assert 1 <= stored_points(out) < 5


def test_a_signal_ignored_by_the_parent_stays_ignored() -> None:
    """nohup / a background job ignores SIGINT; the run must not start honouring it."""
    from lensllm_tui.signals import stop_on_signals

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals(threading.Event(), print):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, before)
