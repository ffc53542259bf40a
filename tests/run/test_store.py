from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.events import PointMeasurements
from core.run.store import SCHEMA_VERSION, PointKey, Store, StoreError, settings_hash

ROOT = Path(__file__).resolve().parents[2]


def _put(store: Store, key: PointKey, loss: float = 2.5) -> None:
    store.put_point(
        key,
        PointMeasurements(
            loss=loss,
            flops=1e9,
            seconds=1.5,
            steps=8,
            train_tokens=1000,
            eval_tokens=500,
            train_loss=2.75,
            hparams={"learning_rate": 5e-4, "batch_size": 16},
        ),
    )


def test_point_round_trip_and_reopen(tmp_path: Path) -> None:
    key = PointKey("tiny:a", "fp1", 200, 0, settings_hash({"lr": 1}))
    with Store(tmp_path / "s.sqlite") as store:
        assert store.get_point(key) is None
        _put(store, key, 2.25)
        assert store.schema_version == SCHEMA_VERSION
    with Store(tmp_path / "s.sqlite") as store:
        got = store.get_point(key)
        assert got is not None
        assert got.key == key
        m = got.measured
        assert (m.loss, m.steps, m.train_tokens, m.eval_tokens) == (2.25, 8, 1000, 500)
        assert (m.train_loss, m.val_loss) == (2.75, None)
        assert m.hparams == {"batch_size": 16, "learning_rate": 5e-4}
        assert [p.key for p in store.points()] == [key]
        assert store.points("tiny:other") == []


def test_every_key_field_distinguishes_points(tmp_path: Path) -> None:
    base = PointKey("m", "fp", 200, 0, "h")
    variants = [
        base,
        PointKey("m2", "fp", 200, 0, "h"),
        PointKey("m", "fp2", 200, 0, "h"),
        PointKey("m", "fp", 400, 0, "h"),
        PointKey("m", "fp", 200, 1, "h"),
        PointKey("m", "fp", 200, 0, "h2"),
    ]
    with Store(tmp_path / "s.sqlite") as store:
        for i, k in enumerate(variants):
            _put(store, k, loss=float(i + 1))
        for i, k in enumerate(variants):
            got = store.get_point(k)
            assert got is not None and got.measured.loss == float(i + 1)
        assert len(store.points()) == len(variants)


def test_settings_hash_is_order_independent_and_sensitive() -> None:
    assert settings_hash({"a": 1, "b": 2.0}) == settings_hash({"b": 2.0, "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_spectrum_round_trip(tmp_path: Path) -> None:
    settings = {"probe_size": 8, "projection_dim": None, "seed": 0}
    with Store(tmp_path / "s.sqlite") as store:
        assert store.get_spectrum("m", "fp", settings) is None
        store.put_spectrum(
            "m", "fp", settings, {"eigenvalues": [2.0, 1.0], "weights": [0.5, 0.1]}, {"trace": 3.0}
        )
        got = store.get_spectrum("m", "fp", dict(reversed(settings.items())))
        assert got is not None
        assert got.spectrum["eigenvalues"] == [2.0, 1.0] and got.summary == {"trace": 3.0}
        assert store.get_spectrum("m", "fp", {**settings, "probe_size": 16}) is None


def test_store_is_wal_and_refuses_unknown_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version"):
        Store(path)


_V1_POINTS = """CREATE TABLE points (
    model TEXT NOT NULL, fingerprint TEXT NOT NULL, size INTEGER NOT NULL,
    seed INTEGER NOT NULL, hparams_hash TEXT NOT NULL, loss REAL NOT NULL,
    flops REAL NOT NULL, seconds REAL NOT NULL, steps INTEGER NOT NULL,
    train_tokens INTEGER NOT NULL, eval_tokens INTEGER NOT NULL, hparams TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (model, fingerprint, size, seed, hparams_hash))"""


def test_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    """A store written before train_loss/val_loss were kept still resumes: they read as None."""
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(_V1_POINTS)
    db.execute(
        "INSERT INTO points VALUES ('m','fp',200,0,'h',2.5,1e9,1.5,8,1000,500,'{\"lr\": 1}',1.0)"
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.get_point(PointKey("m", "fp", 200, 0, "h"))
        assert old is not None
        assert old.measured == PointMeasurements(2.5, 1e9, 1.5, 8, 1000, 500, hparams={"lr": 1})
        _put(store, PointKey("m", "fp", 400, 0, "h"))
        assert [p.measured.train_loss for p in store.points()] == [None, 2.75]


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable results store"):
        Store(path)


_WRITER = """
import sys
from core.events import PointMeasurements
from core.run.store import PointKey, Store
store = Store(sys.argv[1])
i = 0
while True:
    store.put_point(PointKey("m", "fp", i, 0, "h"), PointMeasurements(
        loss=1.0 + i, flops=2.0 * i, seconds=0.1, steps=i, train_tokens=10 * i,
        eval_tokens=5 * i, hparams={"i": i, "pad": "x" * 2000}))
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


def test_sigkill_while_writing_never_corrupts(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream leaves a consistent store of whole rows."""
    path = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(path) as store:
        assert store.integrity_ok()
        points = store.points()
        assert len(points) >= 20
        sizes = sorted(p.key.size for p in points)
        assert sizes == list(range(len(sizes)))  # no gaps: each write was all or nothing
        for p in points:
            i = p.key.size
            m = p.measured
            assert (m.loss, m.flops, m.steps, m.train_tokens) == (1.0 + i, 2.0 * i, i, 10 * i)
            assert m.hparams["i"] == i
        # The store is still writable after the crash.
        _put(store, PointKey("after", "fp", 1, 0, "h"))
        assert store.get_point(PointKey("after", "fp", 1, 0, "h")) is not None
