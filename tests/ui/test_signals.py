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


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("SigCgt:"))
    return bool(mask >> (int(sig) - 1) & 1)


def _command(*args: str) -> subprocess.Popen[str]:
    """The installed ``lensllm-tui`` script when there is one (pyproject's entry point)."""
    script = Path(sys.executable).parent / "lensllm-tui"
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "lensllm_tui"]
    return subprocess.Popen(
        [*head, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_a_signal_while_the_command_starts_exits_130_without_a_traceback(
    tmp_path: Path, sig: signal.Signals, delay: float
) -> None:
    """Ctrl-C or SIGTERM in the first instants, while typer builds the flags and the
    imports run: exit 130, no KeyboardInterrupt traceback, no death by signal."""
    cfg = write_config(tmp_path / "run.toml", tmp_path / "out", [MODEL], [25])
    proc = _command("run", "--no-ui", "--config", str(cfg))
    wait_until(lambda: _catches(proc.pid, signal.SIGTERM) or proc.poll() is not None, 30)
    time.sleep(delay)  # 0: the entry point has just taken the signals; the CLI imports next
    proc.send_signal(sig)
    code, output = finish(proc)
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


@pytest.mark.parametrize(("when", "sig"), [("Ranking", signal.SIGTERM), ("curves:", signal.SIGINT)])
def test_a_signal_after_the_run_finished_exits_130_with_the_run_finished(
    tmp_path: Path, when: str, sig: signal.Signals
) -> None:
    """As the final tables print, or at the very end (the exit, where Python resets
    the signals while torch tears down): 130 as mid-run, results.json "finished".

    The process is stopped (SIGSTOP) when the line shows, signalled, then
    continued, so the signal lands at that line and not after the exit.
    """
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50])
    proc = cli("run", "--no-ui", "--config", str(cfg))
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(when):
            proc.send_signal(signal.SIGSTOP)
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)
            break
    code, rest = finish(proc)
    output = "".join(seen) + rest
    assert code == 130, output
    assert "Traceback" not in output, output
    assert results(out)["status"] == "finished"
    assert (out / "curves.csv").is_file()


def test_sigterm_to_a_finished_dashboard_exits_130_and_keeps_it_finished(
    tmp_path: Path,
) -> None:
    """Both front ends agree: a stop signal after the run finished exits 130, "finished" kept."""
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25])
    proc, master, screen = _dashboard(cfg)
    try:
        wait_until(
            lambda: (out / "results.json").is_file() and results(out)["status"] == "finished",
            what="the run to finish",
        )
        time.sleep(0.5)  # the dashboard shows the ranking
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        _close(proc, master)
    assert code == 130, b"".join(screen)[-2000:]
    assert results(out)["status"] == "finished"


def _dashboard(cfg: Path) -> tuple[subprocess.Popen[bytes], int, list[bytes]]:
    """The real app on a pseudo-terminal (what it draws collects in the returned list)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lensllm_tui", "run", "--autostart", "--config", str(cfg)],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env_with(TERM="xterm-256color"),
        start_new_session=True,
    )
    os.close(slave)
    screen: list[bytes] = []
    threading.Thread(target=_drain, args=(master, screen), daemon=True).start()
    return proc, master, screen


def _close(proc: subprocess.Popen[bytes], master: int) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with contextlib.suppress(OSError):
        os.close(master)


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
    proc, master, screen = _dashboard(cfg)
    try:
        wait_until(lambda: stored_points(out) >= 1, what="a first finished point")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        _close(proc, master)
    assert code == 130, b"".join(screen)[-2000:]
    assert results(out)["status"] == "cancelled"
    assert 1 <= stored_points(out) < 5


def test_a_signal_ignored_by_the_parent_stays_ignored() -> None:
    """nohup / a background job ignores SIGINT; the run must not start honouring it."""
    from lensllm_tui.signals import stop_on_signals

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    term = signal.getsignal(signal.SIGTERM)  # whatever an earlier in-process test left (Ray's)
    try:
        with stop_on_signals(threading.Event(), print) as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handler
        assert signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGINT, before)
