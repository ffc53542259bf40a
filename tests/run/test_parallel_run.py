"""Whole runs on the pool and Ray executors: same losses as in-process, faults survived, resume.

The driver is the real runner (run_events, or `lensllm-tui run` in a subprocess
for kill -9); the workers are real spawned processes or real Ray actors.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import (
    AdaptiveRunConfig,
    DataConfig,
    ExecutorConfig,
    NTKConfig,
    RunConfig,
    TrainConfig,
)
from core.events import (
    ModelEliminated,
    PointFinished,
    PointRetried,
    PointStarted,
    PolicyStopped,
    RunFinished,
    WorkersUpdated,
)
from core.paths import STORE_NAME
from core.run.executors.execute import FAULTS_ENV
from core.run.runner import run_events
from core.run.store import Store

MODELS = ["tiny:gpt2-s", "tiny:llama-s"]
SIZES = [25, 50]
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("zoo_env")


def config(out: Path, backend: str = "local", **executor: object) -> RunConfig:
    return RunConfig(
        models=list(MODELS),
        sizes=list(SIZES),
        target=400,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=4),
        ntk=NTKConfig(enabled=True, probe_size=4, max_ladder_fraction=1.0),
        out_dir=str(out),
        device="cpu",
        executor=ExecutorConfig(backend=backend, **executor),  # type: ignore[arg-type]
    )


def losses(events: list[object]) -> dict[tuple[str, int], float]:
    return {(e.model, e.size): e.loss for e in events if isinstance(e, PointFinished)}


@pytest.fixture(scope="module")
def reference(zoo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    return list(run_events(config(tmp_path_factory.mktemp("local"))))


@pytest.fixture
def no_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULTS_ENV, raising=False)


def test_pool_run_gives_the_local_losses(
    reference: list[object], tmp_path: Path, no_faults: None
) -> None:
    events = list(run_events(config(tmp_path, "pool", workers=2, threads=1)))
    assert isinstance(events[-1], RunFinished) and not events[-1].failed
    want, got = losses(reference), losses(events)
    assert set(got) == set(want) and len(got) == len(MODELS) * (len(SIZES) + 1)
    for point, loss in want.items():
        assert got[point] == pytest.approx(loss, abs=1e-5), point
    assert {e.worker for e in events if isinstance(e, PointFinished)} <= {"w0", "w1"}
    panels = [e for e in events if isinstance(e, WorkersUpdated)]
    assert panels and {w.name for w in panels[-1].workers} == {"w0", "w1"}
    assert events[-1].ranking[0].model == reference[-1].ranking[0].model  # type: ignore[attr-defined]


@pytest.mark.slow  # test_executors.py's Ray node-loss test checks the losses by default
def test_ray_run_on_fake_gpus_gives_the_local_losses(
    reference: list[object], tmp_path: Path, no_faults: None
) -> None:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 2**20,
    )
    try:
        events = list(run_events(config(tmp_path, "ray", workers=2, threads=1)))
    finally:
        ray.shutdown()
    assert isinstance(events[-1], RunFinished) and not events[-1].failed
    want, got = losses(reference), losses(events)
    assert set(got) == set(want)
    for point, loss in want.items():
        assert got[point] == pytest.approx(loss, abs=1e-5), point
    devices = {w.device for e in events if isinstance(e, WorkersUpdated) for w in e.workers}
    assert any(" gpu 0" in d for d in devices) and any(" gpu 1" in d for d in devices)


def adaptive(out: Path, backend: str = "local", **executor: object) -> RunConfig:
    """Successive halving over three tiny models: t5-s trails and goes after round 1."""
    cfg = config(out, backend, **executor)
    cfg.models = ["tiny:gpt2-s", "tiny:llama-s", "tiny:t5-s"]
    cfg.sizes, cfg.target = [25, 50, 100, 200], 1600
    cfg.train = TrainConfig(batch_size=8, min_steps=2)
    cfg.ntk = NTKConfig(enabled=False)
    cfg.policy, cfg.adaptive = "adaptive", AdaptiveRunConfig(schedule="halving")
    return cfg


def test_adaptive_run_on_two_workers_makes_the_sequential_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out-of-order results, both workers busy, the same eliminations, pick and compute.

    t5-s's 100 is the warm-up's last point and a straggler (held 3 s), so the
    other worker finishes first and, with round 1 not judged yet, starts the next
    rung (200) of the likely survivors: gpt2-s and llama-s. Those are round-1
    points started early; when t5-s's result lands, round 1 counts them and
    halving drops t5-s exactly as the sequential run does, which also trains
    both at 200, so the compute charged is the same.
    """
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    seq = list(run_events(adaptive(tmp_path / "local")))
    monkeypatch.setenv(FAULTS_ENV, "slow=tiny:t5-s@100")
    par = list(run_events(adaptive(tmp_path / "pool", "pool", workers=2, threads=1)))
    for events in (seq, par):
        assert isinstance(events[-1], RunFinished) and not events[-1].failed
    started = [(e.model, e.size) for e in par if isinstance(e, PointStarted)]
    finished = [(e.model, e.size) for e in par if isinstance(e, PointFinished)]
    assert finished != started, "results came back out of order"
    assert {e.worker for e in par if isinstance(e, PointFinished)} == {"w0", "w1"}
    flying = peak = 0
    for e in par:
        flying += isinstance(e, PointStarted) - isinstance(e, PointFinished)
        peak = max(peak, flying)
    assert peak == 2, "both workers trained at once"

    # the next rung of both survivors started while the straggler ran, before the judgement
    def at(kind: type, model: str, size: int) -> int:
        return next(
            i
            for i, e in enumerate(par)
            if isinstance(e, kind) and (e.model, e.size) == (model, size)
        )

    landed = at(PointFinished, "tiny:t5-s", 100)
    early = [at(PointStarted, m, 200) for m in ("tiny:gpt2-s", "tiny:llama-s")]
    assert at(PointStarted, "tiny:t5-s", 100) < min(early) and max(early) < landed
    gone = next(i for i, e in enumerate(par) if isinstance(e, ModelEliminated))
    assert landed < gone and par[gone].model == "tiny:t5-s"  # type: ignore[attr-defined]
    # the same decisions as one worker: points, losses, eliminations, charge and pick
    assert sorted(finished) == sorted(
        (e.model, e.size) for e in seq if isinstance(e, PointFinished)
    )
    want = losses(seq)
    for point, loss in losses(par).items():
        assert loss == pytest.approx(want[point], abs=1e-5), point

    def verdict(events: list[object]) -> tuple[object, ...]:
        stop = next(e for e in events if isinstance(e, PolicyStopped))
        return stop.eliminated, stop.compute_saved, stop.cost_fraction  # type: ignore[attr-defined]

    assert verdict(par)[0] == verdict(seq)[0] and len(verdict(seq)[0]) == 1  # type: ignore[arg-type]
    assert verdict(par)[1:] == pytest.approx(verdict(seq)[1:], rel=1e-9)
    assert [r.model for r in par[-1].ranking] == [r.model for r in seq[-1].ranking]  # type: ignore[attr-defined]


def test_a_worker_killed_mid_point_is_retried_and_the_run_has_every_point(
    reference: list[object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, f"kill={MODELS[0]}@50")  # SIGKILL inside the point
    events = list(run_events(config(tmp_path, "pool", workers=2, threads=1)))
    (retry,) = [e for e in events if isinstance(e, PointRetried)]
    assert (retry.model, retry.size, retry.attempt) == (MODELS[0], 50, 2)
    assert "SIGKILL" in retry.reason
    assert isinstance(events[-1], RunFinished) and not events[-1].failed
    got = losses(events)
    assert got[(MODELS[0], 50)] == pytest.approx(losses(reference)[(MODELS[0], 50)], abs=1e-5)
    assert len(got) == len(MODELS) * (len(SIZES) + 1)


def test_out_of_memory_retry_is_recorded_with_the_point(
    reference: list[object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, f"oom={MODELS[1]}@25")
    events = list(run_events(config(tmp_path)))
    (retry,) = [e for e in events if isinstance(e, PointRetried)]
    assert retry.micro_batch_size == 4 and "out of memory" in retry.reason
    with Store(tmp_path / STORE_NAME) as store:
        (point,) = [p for p in store.points(MODELS[1]) if p.key.size == 25]
    hp = point.measured.hparams
    assert (hp["micro_batch_size"], hp["gradient_accumulation_steps"]) == (4, 2)
    assert point.measured.loss == pytest.approx(losses(reference)[(MODELS[1], 25)], abs=1e-4)


def _stored(out: Path) -> int:
    try:
        with sqlite3.connect(out / STORE_NAME) as db:
            return int(db.execute("select count(*) from points").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_driver_kill_9_then_rerun_reuses_every_finished_point(
    reference: list[object], tmp_path: Path, no_faults: None
) -> None:
    out = tmp_path / "out"
    cfg = tmp_path / "run.toml"
    config(out, "pool", workers=2, threads=1).save_toml(cfg)
    cmd = [sys.executable, "-m", "lensllm_tui.cli", "run", "--no-ui", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # the machine may be shared and busy
        while _stored(out) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and _stored(out) >= 2
        children = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = _stored(out)
    total = len(MODELS) * (len(SIZES) + 1)
    assert 2 <= kept < total
    _gone(children)  # the workers end with their driver: nothing keeps a device busy
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{total - kept} points computed, {kept} reused" in done.stdout
    got = json.loads((out / "results.json").read_text())
    want = losses(reference)
    for model in got["models"]:
        for p in model["points"]:
            assert p["loss"] == pytest.approx(want[(model["model"], p["size"])], abs=1e-5)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _gone(pids: list[int], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            assert time.monotonic() < deadline, f"worker {pid} outlived its driver"
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"
