"""results.json and curves.csv: written atomically, with the umask's permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.config import RunConfig
from core.events import PointMeasurements
from core.paths import CONFIG_NAME
from core.run.records import ModelRecord, PointRecord, RunRecord


def _record(out: Path) -> RunRecord:
    rec = RunRecord(RunConfig(models=["a"]), out, {"a": ModelRecord("a")})
    rec.models["a"].add_point(
        PointRecord(0, PointMeasurements(5.0, 1.0, 0.1, eval_tokens=10), False)
    )
    return rec


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_and_curves_follow_the_umask_like_config_toml(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        rec = _record(tmp_path)
        rec.config.save_toml(tmp_path / CONFIG_NAME)
        rec.write()
        rec.write()  # replacing an existing file keeps the same mode
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for name in ("results.json", "curves.csv", CONFIG_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    assert not list(tmp_path.glob(".*.tmp"))
