"""A user's own test file through a whole run: scored on as given, recorded, never trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig
from core.run.runner import run_events
from core.training.data import load_task

pytestmark = pytest.mark.usefixtures("zoo_env")


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_a_run_scores_every_point_on_the_given_test_file(tmp_path: Path) -> None:
    texts = [f"The value of item {i} is {i * 7} units." for i in range(120)]
    source = _jsonl(tmp_path / "train.jsonl", texts + texts[:10])  # 10 repeats
    test = _jsonl(tmp_path / "test.jsonl", texts[:15])  # also in the source
    data = DataConfig(source=str(source), test_file=str(test), validation_size=8, max_length=32)
    cfg = RunConfig(
        models=["tiny:gpt2-s"],
        sizes=[25, 50],
        target=400,
        data=data,
        train=TrainConfig(batch_size=8, min_steps=2),
        ntk=NTKConfig(enabled=False),
        device="cpu",
        out_dir=str(tmp_path / "run"),
    )
    list(run_events(cfg))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    ds = results["dataset"]
    assert ds["test_file"] == str(test) and ds["test_examples"] == 15
    assert ds["stats"]["duplicates"] == 10 and ds["stats"]["held_out_overlap"] == 15
    assert ds["train_examples"] == 120 - 15 - 8
    task = load_task(data)
    assert [e.completion for e in task.test] == texts[:15]
    assert not set(task.test) & set(task.subset(ds["train_examples"]))
    sizes = [p["size"] for p in results["models"][0]["points"]]
    assert sizes == [0, 25, 50]
