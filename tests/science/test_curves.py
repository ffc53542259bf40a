from __future__ import annotations

from pathlib import Path

import pytest

from core.science.curves import Curve, CurveTableError, read_wide_csv, write_wide_csv

SHARED = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks not beside the checkout")
def test_reads_published_tables() -> None:
    for name in ("flan.csv", "gigaword.csv"):
        curves = read_wide_csv(SHARED / name)
        assert len(curves) >= 20
        c = curves[0]
        assert c.sizes[0] == 0 and c.sizes[-1] == 1638400
        assert c.params and c.params > 1e6 and c.family


def test_round_trip(tmp_path: Path) -> None:
    curves = [
        Curve("a/b", (0, 200, 400), (3.0, 2.5, 2.25), 1e6, "fam"),
        Curve("c", (0, 400), (4.0, 3.0), None, ""),
    ]
    path = tmp_path / "curves.csv"
    write_wide_csv(path, curves)
    assert read_wide_csv(path) == curves


def test_up_to_hides_later_points() -> None:
    c = Curve("m", (0, 200, 400, 800), (3.0, 2.0, 1.5, 1.2))
    assert c.up_to(400).sizes == (0, 200, 400)
    with pytest.raises(KeyError):
        c.up_to(400).loss_at(800)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("config name,a,b\nm,1,2\n", "no numeric size columns"),
        ("config name,0,200\nm,3.0,abc\n", "not a number"),
        ("config name,0,200\nm,3.0,nan\n", "finite and positive"),
        ("config name,0,200\nm,3.0,-1\n", "finite and positive"),
        ("config name,0,200\nm,3.0,2.0\nm,3.0,2.0\n", "appears twice"),
        ("config name,0,2e2,400\nm,3.0,2.5,2.0\n", "column header '2e2' is not a size"),
        ("config name,0,200.5,400\nm,3.0,2.5,2.0\n", "column header '200.5' is not a size"),
        ("config name,0,-200,400\nm,3.0,2.5,2.0\n", "column header '-200' is not a size"),
        ("config name,0,200,0200\nm,3.0,2.5,2.0\n", "size 200 has two columns"),
        ("model,0,200\nm,3.0,2.5\n", "no 'config name' column"),
        ("0,200,400\n3.0,2.5,2.0\n", "no 'config name' column"),
    ],
)
def test_malformed_tables(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(CurveTableError, match=message):
        read_wide_csv(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CurveTableError, match="not found"):
        read_wide_csv(tmp_path / "none.csv")
