"""A store that is damaged, foreign or full is one StoreError line that says what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import StoreError
from core.events import PointMeasurements
from core.run.store import PointKey, Store


def _filled(path: Path, n: int = 60) -> None:
    with Store(path) as store:
        for i in range(n):
            store.put_point(
                PointKey("m", "fp", i, 0, "h"),
                PointMeasurements(
                    loss=1.0 + i,
                    flops=1.0,
                    seconds=0.1,
                    steps=1,
                    train_tokens=1,
                    eval_tokens=1,
                    hparams={"pad": "x" * 500},
                ),
            )
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_one_corrupted_page_is_one_line_at_open(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    _filled(path)
    page = 4096
    assert path.stat().st_size > 4 * page
    with path.open("r+b") as fh:  # scribble over the third page (table data)
        fh.seek(2 * page)
        fh.write(b"\xde\xad\xbe\xef" * (page // 4))
    with pytest.raises(StoreError) as info:
        Store(path)
    line = info.value.one_line()
    assert str(path) in line and "damaged" in line and "move it aside" in line
    assert "\n" not in str(info.value)


def test_wrong_schema_with_our_version_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE points (model TEXT, loss REAL)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"table 'points' has columns model, loss"):
        Store(path)


def test_non_numeric_loss_is_one_line_not_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    _filled(path, 1)
    db = sqlite3.connect(path)
    db.execute("UPDATE points SET loss='abc'")
    db.commit()
    db.close()
    with pytest.raises(
        StoreError, match=r"a stored row is not valid \(m at size 0: loss is 'abc'\)"
    ):
        Store(path)
