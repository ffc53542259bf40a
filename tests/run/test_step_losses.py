"""Per-step train and validation losses of every point are kept in the store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from core.config import DataConfig, NTKConfig, RunConfig, TrainConfig
from core.events import PointMeasurements
from core.run.runner import run_events
from core.run.store import SCHEMA_VERSION, PointKey, Store

pytestmark = pytest.mark.usefixtures("zoo_env")

_V2_POINTS = """CREATE TABLE points (
    model TEXT NOT NULL, fingerprint TEXT NOT NULL, size INTEGER NOT NULL,
    seed INTEGER NOT NULL, hparams_hash TEXT NOT NULL, loss REAL NOT NULL,
    flops REAL NOT NULL, seconds REAL NOT NULL, steps INTEGER NOT NULL,
    train_tokens INTEGER NOT NULL, eval_tokens INTEGER NOT NULL, train_loss REAL,
    val_loss REAL, hparams TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (model, fingerprint, size, seed, hparams_hash))"""


def test_a_version_2_store_is_upgraded_and_its_points_reused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(_V2_POINTS)
    db.execute(
        "INSERT INTO points VALUES ('m','fp',200,0,'h',2.5,1e9,1.5,8,1000,500,2.6,NULL,'{}',1.0)"
    )
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        old = store.get_point(PointKey("m", "fp", 200, 0, "h"))
        assert old is not None and old.measured.loss == 2.5 and old.measured.losses is None
        curve = {"train": [[1, 3.0], [2, 2.9]], "validation": [[2, 2.95]]}
        store.put_point(
            PointKey("m", "fp", 400, 0, "h"), PointMeasurements(2.4, 2e9, 3.0, 2, losses=curve)
        )
    with Store(path) as store:  # read back from disk, not from the written row
        assert store.get_point(PointKey("m", "fp", 400, 0, "h")).measured.losses == curve


def test_every_trained_point_keeps_its_per_step_losses(tmp_path: Path) -> None:
    cfg = RunConfig(
        models=["tiny:gpt2-s"],
        sizes=[32, 64],
        target=512,
        data=DataConfig(validation_size=8, test_size=16, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2, early_stopping_patience=5, eval_every=2),
        ntk=NTKConfig(enabled=False),
        device="cpu",
        out_dir=str(tmp_path / "run"),
    )
    list(run_events(cfg))
    with Store(tmp_path / "run" / "store.sqlite") as store:
        points = {p.key.size: p.measured for p in store.points()}
    assert points[0].losses == {"train": [], "validation": []}
    for size in (32, 64):
        m = points[size]
        train = m.losses["train"]
        assert [s for s, _ in train] == list(range(1, m.steps + 1)) and m.steps == size // 8
        assert all(loss > 0 for _, loss in train)
        val = m.losses["validation"]
        assert [s for s, _ in val] == list(range(2, m.steps + 1, 2))
        assert min(v for _, v in val) == pytest.approx(m.val_loss)
    # results.json stays small: the per-step losses are in the store only
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all("losses" not in p for m in results["models"] for p in m["points"])
