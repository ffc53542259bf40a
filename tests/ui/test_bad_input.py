"""Everyday problems are one `error:` line and the right exit code, never a traceback.

The read-only and full file systems are real: a small tmpfs mounted in a
private user and mount namespace (``unshare``), skipped where the kernel does
not allow unprivileged namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.run.executors.execute import FAULTS_ENV
from lensllm_tui.cli import app
from tests.processes import MODEL, ROOT, cli, finish, results, write_config

pytestmark = pytest.mark.usefixtures("zoo_env")


def one_error_line(code: int, output: str, exit_code: int = 2) -> str:
    assert code == exit_code, output
    assert "Traceback" not in output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def run(*args: str) -> tuple[int, str]:
    """``lensllm-tui run --no-ui ARGS`` in this process (these fail before any model loads)."""
    res = CliRunner().invoke(app, ["run", "--no-ui", *args], env={"COLUMNS": "400"})
    return res.exit_code, res.output


def test_out_that_is_a_file_or_under_one(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for out in (afile, afile / "run"):
        line = one_error_line(*run("--models", MODEL, "--out", str(out)))
        assert f"{afile} is a file, not a directory" in line
    assert afile.read_text() == "mine"


def test_non_utf8_jsonl_names_the_line(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    line = one_error_line(*run("--models", MODEL, "--dataset", str(data), "--out", str(tmp_path)))
    assert f"{data}:2: not UTF-8 text (byte 0xe9" in line


def test_binary_toml_config_and_resumed_config(tmp_path: Path) -> None:
    blob = tmp_path / "run.toml"
    blob.write_bytes(bytes(range(256)) * 4)
    line = one_error_line(*run("--config", str(blob)))
    assert f"{blob}: not a TOML text file" in line
    (tmp_path / "old").mkdir()
    shutil.copy(blob, tmp_path / "old" / "config.toml")
    line = one_error_line(*run("--resume", str(tmp_path / "old")))
    assert "config.toml: not a TOML text file" in line


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) as root of a private user+mount namespace, or skip the test."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("unprivileged user namespaces are not allowed here")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},
    )


def _lens(args: str) -> str:
    return f"{sys.executable} -m lensllm_tui run --no-ui {args}"


def test_read_only_file_system_new_run_and_resume(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run_dir, new_dir = mnt / "run", mnt / "new"
    cfg = write_config(tmp_path / "run.toml", run_dir, [MODEL], [25])
    resume_log, new_log = tmp_path / "resume.log", tmp_path / "new.log"
    proc = _in_namespace(
        f"mount -t tmpfs -o size=10m tmpfs {mnt} && mkdir {run_dir} && "
        f"cp {cfg} {run_dir / 'config.toml'} && mount -o remount,ro {mnt} && "
        f"{_lens(f'--resume {run_dir}')} > {resume_log} 2>&1; echo resume=$?; "
        f"{_lens(f'--models {MODEL} --out {new_dir}')} > {new_log} 2>&1; echo new=$?"
    )
    assert "resume=2" in proc.stdout and "new=2" in proc.stdout, proc.stdout + proc.stderr
    for log in ("resume.log", "new.log"):
        line = one_error_line(2, (tmp_path / log).read_text())
        assert "read-only file system" in line, line


def test_disk_full_mid_run_is_one_line_exit_2_and_resumes(tmp_path: Path) -> None:
    """A tmpfs that fills after the first points: exit 2, one line; more room, and it resumes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = mnt / "run"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100])
    proc = _in_namespace(
        f"mount -t tmpfs -o size=100k tmpfs {mnt} && "
        f"{_lens(f'--config {cfg}')} > {tmp_path / 'full.log'} 2>&1; echo full=$?; "
        f"mount -o remount,size=10m {mnt} && "
        f"{_lens(f'--config {cfg}')} > {tmp_path / 'again.log'} 2>&1; echo again=$?; "
        f"cp -r {out} {tmp_path / 'kept'}"
    )
    assert "full=2" in proc.stdout, proc.stdout + proc.stderr + (tmp_path / "full.log").read_text()
    full = (tmp_path / "full.log").read_text()
    line = one_error_line(2, full)
    assert "disk full" in line and "rerun with the same --out" in line, line
    assert "[1/4]" in full  # it was mid-run: a point had finished
    again = (tmp_path / "again.log").read_text()
    assert "again=0" in proc.stdout, again
    assert "reused" in again and "0 reused" not in again, again
    assert results(tmp_path / "kept")["status"] == "finished"


@pytest.mark.parametrize(
    ("executor", "fs"),
    [("local", "full"), ("pool", "read-only")],
)
def test_a_worker_meeting_a_full_or_read_only_disk_stops_the_run_with_exit_2(
    tmp_path: Path, zoo_env: Path, executor: str, fs: str
) -> None:
    """A worker's write (the ``write`` fault: a real write under <cache>/scratch) fails mid-run.

    The disk is the machine's problem, not the model's: one line, exit 2, the
    model is not marked failed, and a rerun on a good disk resumes.
    """
    scratch = zoo_env / "scratch"
    scratch.mkdir(exist_ok=True)
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "run.toml", out, [MODEL], [25, 50, 100])
    log = tmp_path / "run.log"
    mount = f"mount -t tmpfs -o size=1m tmpfs {scratch}"
    if fs == "read-only":
        mount += f" && mount -o remount,ro {scratch}"
    args = f"--config {cfg} --executor {executor} --workers 1"
    proc = _in_namespace(
        f"{mount} && {FAULTS_ENV}=write={MODEL}@50 {_lens(args)} > {log} 2>&1; echo rc=$?"
    )
    output = log.read_text()
    assert "rc=2" in proc.stdout, proc.stdout + proc.stderr + output
    line = one_error_line(2, output)
    reason = "no space left on the device" if fs == "full" else "read-only file system"
    assert reason in line and str(scratch) in line, line
    assert "rerun with the same --out to resume" in line, line
    assert "model failed" not in output, output
    assert "[2/4]" in output  # mid-run: the points before the fault were stored
    assert [m["failed"] for m in results(out)["models"]] == [None]
    if executor != "local":
        return  # resuming is the same for every executor; once is enough for the suite's time
    code, again = finish(cli("run", "--no-ui", "--config", str(cfg), env={FAULTS_ENV: ""}))
    assert code == 0, again
    assert "2 reused" in again, again


def test_a_json_lines_row_that_is_not_an_object_names_its_line(tmp_path: Path) -> None:
    """A real process: datasets logs its own failure on stderr, the line that matters is ours."""
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "fine"}\n\n[1, 2]\n{"text": "later"}\n')
    cmd = f"{_lens(f'--models {MODEL} --dataset {data} --out {tmp_path}')}"
    done = subprocess.run(
        cmd,
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},
    )
    line = one_error_line(done.returncode, done.stdout + done.stderr)
    assert f"{data}:3: cannot read as JSON lines: a JSON list, not an object" in line, line


def test_a_json_lines_row_that_is_not_json_names_its_line(tmp_path: Path) -> None:
    from core.config import DataConfig
    from core.errors import DataError
    from core.training.sources import read_rows

    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(DataError) as info:
        read_rows(str(data), DataConfig(source=str(data)))
    assert str(info.value).startswith(f"{data}:2: cannot read as JSON lines: not JSON ("), (
        info.value
    )


def test_a_directory_given_as_a_config_or_a_curve_table_says_so(tmp_path: Path) -> None:
    line = one_error_line(*run("--config", str(tmp_path)))
    assert f"{tmp_path}: a directory, not a config file" in line, line
    res = CliRunner().invoke(app, ["bench", str(tmp_path)], env={"COLUMNS": "400"})
    line = one_error_line(res.exit_code, res.output)
    assert f"{tmp_path}: a directory, not a CSV file" in line, line
