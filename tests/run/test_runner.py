"""The engine loop end to end on two tiny real models: events, files, resume, cancel."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest

from core.config import ConfigError, DataConfig, NTKConfig, RunConfig, TrainConfig
from core.events import (
    LawFitted,
    ModelEliminated,
    ModelFailed,
    NTKComputed,
    PhaseDetected,
    PointFinished,
    PointStarted,
    RankingUpdated,
    RunCancelled,
    RunFinished,
    RunStarted,
)
from core.paths import STORE_NAME
from core.run.runner import run_events
from core.run.store import Store

MODELS = ["tiny:gpt2-s", "tiny:llama-s"]
SIZES = [25, 50, 100]


pytestmark = pytest.mark.usefixtures("zoo_env")


def tiny_config(out: Path, **overrides: object) -> RunConfig:
    """Two tiny models, a 3-size ladder (4 points with zero-shot) and a few steps each."""
    base: dict[str, object] = {
        "models": list(MODELS),
        "sizes": list(SIZES),
        "target": 400,
        "data": DataConfig(validation_size=8, test_size=24, max_length=32),
        "train": TrainConfig(batch_size=8, min_steps=2, epochs=1.0),
        "ntk": NTKConfig(enabled=True, probe_size=4, max_ladder_fraction=1.0),
        "out_dir": str(out),
        "device": "cpu",
    }
    base.update(overrides)
    return RunConfig(**base)  # type: ignore[arg-type]


def collect(config: RunConfig, cancel: threading.Event | None = None) -> list[object]:
    return list(run_events(config, cancel))


@pytest.fixture(scope="module")
def reference(zoo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object]]:
    out = tmp_path_factory.mktemp("ref")
    return out, collect(tiny_config(out))


def test_event_order(reference: tuple[Path, list[object]]) -> None:
    _, events = reference
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert events[0].total_points == len(MODELS) * (len(SIZES) + 1)
    for model in MODELS:
        mine = [e for e in events if getattr(e, "model", None) == model]
        kinds = [type(e).__name__ for e in mine]
        # NTK probe first, then each point started before it finishes, in ladder order.
        assert kinds[0] == "NTKComputed"
        started = [e.size for e in mine if isinstance(e, PointStarted)]
        finished = [e.size for e in mine if isinstance(e, PointFinished)]
        assert started == finished == [0, *SIZES]
        for size in [0, *SIZES]:
            i_start = next(
                i for i, e in enumerate(mine) if isinstance(e, PointStarted) and e.size == size
            )
            i_end = next(
                i for i, e in enumerate(mine) if isinstance(e, PointFinished) and e.size == size
            )
            assert i_start < i_end
        # After each new point: law, phase, then the ranking.
        for i, e in enumerate(events):
            if isinstance(e, PointFinished) and e.model == model:
                assert isinstance(events[i + 1], LawFitted) and events[i + 1].model == model
                assert isinstance(events[i + 2], PhaseDetected)
                assert isinstance(events[i + 3], RankingUpdated)
    ntk = [e for e in events if isinstance(e, NTKComputed)]
    assert [e.model for e in ntk] == MODELS
    assert all(e.ok and e.n == 4 and e.trace > 0 for e in ntk)
    finished = [e for e in events if isinstance(e, PointFinished)]
    assert not any(e.reused for e in finished)
    assert all(e.loss > 0 and e.seconds > 0 for e in finished)
    assert all(e.flops > 0 for e in finished)
    index = [e.index for e in events if isinstance(e, PointStarted)]
    assert index == list(range(1, len(index) + 1))
    end = events[-1]
    assert end.failed == () and end.computed == len(finished) and end.reused == 0
    assert {e.model for e in end.ranking} == set(MODELS)


def test_next_job_is_submitted_before_the_last_point_is_refitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refit is driver work no decision waits on: the free worker gets its job first."""
    import core.run.runner as runner_mod

    log: list[object] = []
    real = runner_mod.make_executor

    def recording(*args: object, **kwargs: object) -> object:
        executor = real(*args, **kwargs)  # type: ignore[arg-type]
        submit = executor.submit

        def logged(job: object) -> None:
            log.append(("submit", job.model, job.size))  # type: ignore[attr-defined]
            submit(job)  # type: ignore[arg-type]

        executor.submit = logged  # type: ignore[method-assign]
        return executor

    monkeypatch.setattr(runner_mod, "make_executor", recording)
    config = tiny_config(tmp_path, models=MODELS[:1], ntk=NTKConfig(enabled=False))
    for event in run_events(config):
        log.append(event)
    finished = [i for i, e in enumerate(log) if isinstance(e, PointFinished) and e.size > 0]
    assert len(finished) == len(SIZES)
    for i in finished[:-1]:  # every trained point but the last has a successor to submit
        refitted = next(j for j in range(i, len(log)) if isinstance(log[j], LawFitted))
        assert any(isinstance(x, tuple) for x in log[i:refitted]), log[i : refitted + 1]


def test_results_json_and_curves_csv(reference: tuple[Path, list[object]]) -> None:
    out, events = reference
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "finished"
    assert res["config"]["models"] == MODELS and res["config"]["sizes"] == SIZES
    assert res["failures"] == []
    losses = {(e.model, e.size): e.loss for e in events if isinstance(e, PointFinished)}
    assert [m["model"] for m in res["models"]] == MODELS
    for m in res["models"]:
        assert [p["size"] for p in m["points"]] == [0, *SIZES]
        for p in m["points"]:
            assert p["loss"] == losses[(m["model"], p["size"])]
            assert p["flops"] > 0 and p["seconds"] > 0 and p["reused"] is False
        law = m["law"]
        assert set(law) >= {"law", "params", "ok", "residual", "reason"}
        if law["ok"]:
            assert set(law["params"]) >= {"B", "beta", "E"} and law["residual"] >= 0
        else:
            assert law["reason"]
        assert set(m["transition"]) >= {"size", "confidence", "reason"}
        pred = m["prediction"]
        assert pred["target"] == 400
        if pred["ok"]:
            assert pred["low"] <= pred["predicted"] <= pred["high"]
        assert m["ntk"]["ok"] and m["ntk"]["trace"] > 0 and len(m["ntk"]["top_eigenvalues"]) >= 1
        assert m["ntk"]["effective_rank"] >= 1.0
        spec = m["spectrum"]  # the full spectrum, not only its summary
        assert len(spec["eigenvalues"]) == len(spec["weights"]) == 4  # probe_size
        assert sum(spec["eigenvalues"]) == pytest.approx(m["ntk"]["trace"], rel=1e-6)
    assert sorted(r["model"] for r in res["ranking"]) == sorted(MODELS)
    assert [r["rank"] for r in res["ranking"]] == [1, 2]
    assert (out / "config.toml").is_file()
    assert RunConfig.load_toml(out / "config.toml").models == MODELS
    with (out / "curves.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["config name", "0", *map(str, SIZES), "size", "family"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == set(MODELS)
    for model in MODELS:
        cells = [float(x) for x in by_name[model][1 : 2 + len(SIZES)]]
        assert cells == [losses[(model, s)] for s in [0, *SIZES]]
        assert int(by_name[model][-2]) > 0


def test_second_identical_run_computes_nothing(reference: tuple[Path, list[object]]) -> None:
    out, first = reference
    again = collect(tiny_config(out))
    finished = [e for e in again if isinstance(e, PointFinished)]
    assert finished and all(e.reused for e in finished)
    assert [(e.model, e.size, e.loss) for e in finished] == [
        (e.model, e.size, e.loss) for e in first if isinstance(e, PointFinished)
    ]
    end = again[-1]
    assert isinstance(end, RunFinished) and end.computed == 0 and end.reused == len(finished)
    assert [r.model for r in end.ranking] == [r.model for r in first[-1].ranking]
    res = json.loads((out / "results.json").read_text())
    assert all(p["reused"] for m in res["models"] for p in m["points"])
    assert all(m["ntk"]["reused"] for m in res["models"])
    with Store(out / STORE_NAME) as store:
        assert len(store.points()) == len(finished)


def test_cancel_mid_run_keeps_finished_points(
    tmp_path: Path, reference: tuple[Path, list[object]]
) -> None:
    cancel = threading.Event()
    seen: list[object] = []
    cfg = tiny_config(tmp_path, models=MODELS[:1], ntk=NTKConfig(enabled=False))
    for ev in run_events(cfg, cancel):
        seen.append(ev)
        if isinstance(ev, PointFinished) and ev.size == SIZES[0]:
            cancel.set()
    assert isinstance(seen[-1], RunCancelled)
    done = [e for e in seen if isinstance(e, PointFinished)]
    assert [e.size for e in done] == [0, SIZES[0]]
    assert seen[-1].kept == 2
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "cancelled"
    # Resume: the two finished points are reused, the rest computed.
    rest = collect(cfg)
    fin = [e for e in rest if isinstance(e, PointFinished)]
    assert [(e.size, e.reused) for e in fin] == [
        (0, True),
        (SIZES[0], True),
        *((s, False) for s in SIZES[1:]),
    ]
    # Same losses as the uninterrupted reference run (same seeds, same data).
    ref = {(e.model, e.size): e.loss for e in reference[1] if isinstance(e, PointFinished)}
    for e in fin:
        assert e.loss == pytest.approx(ref[(e.model, e.size)], rel=1e-5)


def test_failing_model_is_recorded_and_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bad = "no-such-org/no-such-model-xyz"
    cfg = tiny_config(
        tmp_path, models=[bad, MODELS[0]], sizes=[25], target=100, ntk=NTKConfig(enabled=False)
    )
    events = collect(cfg)
    failed = [e for e in events if isinstance(e, ModelFailed)]
    assert [e.model for e in failed] == [bad] and failed[0].reason
    assert "Traceback" not in failed[0].reason and "\n" not in failed[0].reason
    end = events[-1]
    assert isinstance(end, RunFinished)
    assert end.failed == ((bad, failed[0].reason),)
    assert [e.size for e in events if isinstance(e, PointFinished)] == [0, 25]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["failures"] == [{"model": bad, "reason": failed[0].reason}]
    assert res["models"][0]["failed"] == failed[0].reason


def test_unknown_policy_is_refused_with_one_line(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.policy = "random"  # past RunConfig's own check, as a hand-edited object could be
    with pytest.raises(ConfigError, match="policy must be"):
        run_events(cfg)


def test_adaptive_policy_runs_zero_shot_then_what_the_policy_asks(tmp_path: Path) -> None:
    """The adaptive run: zero-shot for all, then points the policy picks, then a ranking."""
    events = list(run_events(tiny_config(tmp_path, policy="adaptive")))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    done = [(e.model, e.size) for e in events if isinstance(e, PointFinished)]
    assert done[: len(MODELS)] == [(m, 0) for m in MODELS]
    trained = done[len(MODELS) :]
    assert trained and all(s in SIZES for _, s in trained)
    assert len(set(trained)) == len(trained) <= len(MODELS) * len(SIZES)
    for m in MODELS:  # each model climbs the ladder in order, never skipping a size
        sizes = [s for n, s in trained if n == m]
        assert sizes == SIZES[: len(sizes)]
    assert sorted(e.model for e in events if isinstance(e, NTKComputed)) == sorted(MODELS)
    eliminated = {e.model for e in events if isinstance(e, ModelEliminated)}
    assert len(eliminated) < len(MODELS)
    assert events[-1].ranking
    # the policy's account ends refitted on everything measured: no stale prediction left
    outcomes = json.loads((tmp_path / "results.json").read_text())["policy"]["outcomes"]
    assert {o["model"] for o in outcomes} == set(MODELS)
    assert all(o["stale"] is False for o in outcomes if o["predicted"] is not None)


def test_policy_account_marks_predictions_made_before_the_last_point_stale() -> None:
    from core.policy.adaptive import AdaptivePolicy, Estimate
    from core.run.runner import policy_account

    cfg = RunConfig(models=["a", "b"], sizes=[100, 200], target=800)
    policy = AdaptivePolicy(
        ["a", "b"],
        [100, 200],
        800,
        {"a": 1.0, "b": 1.0},
        lambda cs: [Estimate(2.0, 1.5, 2.5) for _ in cs],
    )
    policy.observe("a", 100, 3.0)
    policy.observe("b", 100, 3.1)  # a's estimate is now older than the run's last point
    running = {o["model"]: o for o in policy_account(policy, cfg, running=True)["outcomes"]}
    assert running["a"]["stale"] is True and running["b"]["stale"] is False
    final = policy_account(policy, cfg, final=lambda cs: [Estimate(1.9, 1.6, 2.2) for _ in cs])
    assert [(o["predicted"], o["stale"]) for o in final["outcomes"]] == [(1.9, False), (1.9, False)]


def _jsonl(path: Path, n: int) -> Path:
    lines = [
        json.dumps(
            {"text": f"Example {i}: the quick brown fox number {i} jumps over {i % 7} dogs."}
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ladder_is_clipped_to_the_dataset_with_a_warning(tmp_path: Path) -> None:
    data = _jsonl(tmp_path / "small.jsonl", 100)  # 100 - 8 validation - 24 test = 68 to train on
    cfg = tiny_config(
        tmp_path / "out",
        models=MODELS[:1],
        sizes=[25, 50, 200],
        data=DataConfig(source=str(data), validation_size=8, test_size=24, max_length=32),
        ntk=NTKConfig(enabled=False),
    )
    events = collect(cfg)
    start = events[0]
    assert isinstance(start, RunStarted) and start.sizes == (25, 50)
    assert "ladder size(s) 200 dropped" in start.warnings[0]
    # the run also says, before training, how many examples this model's tokenizer cuts
    assert start.warnings[1:] == ("tiny:gpt2-s: 6 of 100 examples (6.0%) cut at max_length 32",)
    assert [e.size for e in events if isinstance(e, PointFinished)] == [0, 25, 50]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["warnings"] == list(start.warnings) and res["dataset"]["sizes"] == [25, 50]


def test_dataset_too_small_for_the_ladder_is_one_line_error(tmp_path: Path) -> None:
    from core.training.data import DataError

    data = _jsonl(tmp_path / "tiny.jsonl", 40)  # 8 examples left to train on
    cfg = tiny_config(
        tmp_path / "out",
        sizes=[25, 50],
        data=DataConfig(source=str(data), validation_size=8, test_size=24, max_length=32),
    )
    with pytest.raises(DataError, match="fewer than the smallest ladder size 25"):
        collect(cfg)


def test_default_out_dir_is_new_and_timestamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.run.runner import resolve_out_dir

    monkeypatch.chdir(tmp_path)
    cfg = RunConfig()
    first = resolve_out_dir(cfg, now=0.0)
    assert first.parent == Path("runs") and first.name[:2] in ("19", "20")
    first.mkdir(parents=True)
    second = resolve_out_dir(cfg, now=0.0)
    assert second != first and second.name.startswith(first.name)
    assert resolve_out_dir(RunConfig(out_dir="x/y")) == Path("x/y")
