"""Replay benchmark and the `bench` / `fit` commands, including their bad-input lines."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from core.bench import (
    RECORD_KEYS,
    SCORE_KEYS,
    TARGET_MAX,
    BenchError,
    Table,
    budget_label,
    check_plan,
    ratio_label,
    resolve_budget,
    run_bench,
    score,
)
from core.science.curves import Curve, write_wide_csv
from core.science.prediction import Prediction, Selection
from lensllm_tui.cli import app

runner = CliRunner()
SIZES = (0, *(200 * 2**k for k in range(10)))  # up to 102400
TARGET = SIZES[-1]


def synthetic(n: int = 5) -> list[Curve]:
    rng = np.random.default_rng(3)
    d = np.asarray(SIZES, dtype=float)
    out = []
    for i in range(n):
        b, f, beta, e = (
            rng.uniform(10, 60),
            rng.uniform(2, 20),
            rng.uniform(0.2, 0.5),
            rng.uniform(0.8, 1.6),
        )
        y = (b / (f + d**beta) + e) * np.exp(rng.normal(0, 0.002, d.size))
        out.append(Curve(f"org/model-{i}", SIZES, tuple(float(v) for v in y), 1e8 * (i + 1), "fam"))
    return out


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    p = tmp_path / "synth.csv"
    write_wide_csv(p, synthetic())
    return p


def test_records_have_exactly_the_agreed_keys() -> None:
    table = Table("synth", tuple(synthetic()))
    recs = run_bench([table], ["ats", "subtuning", "vanilla"], [6400, 1600], TARGET)
    assert len(recs) == 6
    for r in recs:
        assert tuple(r) == RECORD_KEYS
        assert r["dataset"] == "synth" and r["target"] == TARGET
        assert r["ratio"] == pytest.approx(r["budget"] / TARGET)
        assert -1.0 <= r["pearson"] <= 1.0 and 0.0 <= r["rel_acc"] <= 1.0
        assert r["seconds"] >= 0
        assert (r["rmse_log"] is None) == (r["method"] == "subtuning")
    # order: table, method, budget
    assert [(r["method"], r["budget"]) for r in recs[:2]] == [("ats", 6400), ("ats", 1600)]


def test_score_is_none_when_every_prediction_is_a_fallback() -> None:
    curves = synthetic(3)
    preds = tuple(Prediction(c.model, 1.0 + i, ok=False, reason="x") for i, c in enumerate(curves))
    sel = Selection("lensllm", 1600, TARGET, preds, tuple(c.model for c in curves), 0.0)
    assert score(sel, curves) == dict.fromkeys(SCORE_KEYS)
    assert set(SCORE_KEYS) <= set(RECORD_KEYS)


def test_plan_checks() -> None:
    t = [Table("synth", tuple(synthetic()))]
    with pytest.raises(BenchError, match="unknown method"):
        check_plan(t, ["ats", "nope"], [1600], TARGET)
    with pytest.raises(BenchError, match="above every budget"):
        check_plan(t, ["ats"], [TARGET], TARGET)
    with pytest.raises(BenchError, match="loss at the target"):
        check_plan(t, ["ats"], [1600], 999_999)
    assert ratio_label(204800, 1638400) == "1/8"
    assert ratio_label(3000, 1638400) == "0.00183"


def test_interval_metrics_recorded_for_methods_with_intervals_only() -> None:
    table = Table("synth", tuple(synthetic()))
    recs = run_bench([table], ["lensllm", "ats"], [6400], TARGET)
    ours, ats = recs
    assert 0.0 <= ours["coverage"] <= 1.0 and ours["interval_ratio"] >= 1.0
    assert ours["interval_score"] > 0
    assert ats["coverage"] is None and ats["interval_ratio"] is None
    assert ats["interval_score"] is None


def test_target_max_and_fraction_budgets_resolve_per_table() -> None:
    small = Table("small", tuple(c.up_to(25600) for c in synthetic()))
    big = Table("big", tuple(synthetic()))
    recs = run_bench([small, big], ["ats"], [Fraction(1, 8), 1600], TARGET_MAX)
    assert [(r["dataset"], r["target"], r["budget"]) for r in recs] == [
        ("small", 25600, 3200),
        ("small", 25600, 1600),
        ("big", TARGET, 12800),
        ("big", TARGET, 1600),
    ]
    assert resolve_budget(Fraction(1, 8), 6062) == 757  # rounded down, as the README's example
    assert budget_label(Fraction(1, 16), 6062) == "1/16"
    with pytest.raises(BenchError, match=r"below its smallest fine-tuned size 200; .* 1/8"):
        check_plan([big], ["ats"], [8], TARGET)


# --- CLI -------------------------------------------------------------------------------


def test_bench_command_prints_tables_and_writes_json(table_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        [
            "bench",
            str(table_csv),
            "--target",
            str(TARGET),
            "--budgets",
            "12800,3200",
            "--methods",
            "ats,rectified,zeroshot",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "synth" in result.output and "1/8" in result.output and "1/32" in result.output
    assert "PearCorr" in result.output and "RelAcc" in result.output
    recs = json.loads(out.read_text())
    assert len(recs) == 6 and all(tuple(r) == RECORD_KEYS for r in recs)
    zs = [r for r in recs if r["method"] == "zeroshot"]
    assert all(r["rmse_log"] is None for r in zs)
    assert all(isinstance(r["pearson"], float) and not math.isnan(r["pearson"]) for r in recs)


def test_bench_target_max_with_ratio_budgets_and_coverage_row(
    table_csv: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short.csv"
    write_wide_csv(short, [c.up_to(25600) for c in synthetic()])
    out = tmp_path / "bench.json"
    args = ["bench", str(table_csv), str(short), "--target", "max", "--methods", "lensllm,ats"]
    result = runner.invoke(app, [*args, "--budgets", "8,16", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert f"at target {TARGET}" in result.output and "at target 25600" in result.output
    assert "coverage" in result.output and "mean over 2 tables" in result.output
    recs = json.loads(out.read_text())
    assert [(r["target"], r["budget"]) for r in recs if r["method"] == "ats"] == [
        (TARGET, TARGET // 8),
        (TARGET, TARGET // 16),
        (25600, 3200),
        (25600, 1600),
    ]
    same = runner.invoke(app, [*args, "--budgets", "1/8,1/16", "--json", str(out)])
    assert same.exit_code == 0, same.output
    assert [r["budget"] for r in json.loads(out.read_text())] == [r["budget"] for r in recs]


def test_bench_adaptive_only_prints_its_line_and_cost(table_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "adaptive.json"
    result = runner.invoke(
        app,
        [
            "bench",
            str(table_csv),
            "--target",
            str(TARGET),
            "--methods",
            "adaptive",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "synth adaptive: RelAcc" in result.output and "cost_fraction" in result.output
    assert "1/8" not in result.output  # no empty per-budget grid
    (rec,) = json.loads(out.read_text())
    assert rec["method"] == "adaptive" and 0 < rec["cost_fraction"] <= 0.05
    assert rec["budget"] < TARGET


def _one_error_line(result) -> str:
    text = result.output  # stdout and stderr together
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    return lines[0]


def test_bench_bad_inputs_are_one_line_errors(table_csv: Path, tmp_path: Path) -> None:
    missing = _one_error_line(runner.invoke(app, ["bench", str(tmp_path / "nope.csv")]))
    assert "not found" in missing
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("config name,size\nm,100\n")
    assert "no numeric size columns" in _one_error_line(runner.invoke(app, ["bench", str(nocols)]))
    nan = tmp_path / "nan.csv"
    nan.write_text("config name,0,200,400\nm,3.0,nan,2.0\n")
    assert "finite and positive" in _one_error_line(runner.invoke(app, ["bench", str(nan)]))
    neg = tmp_path / "neg.csv"
    neg.write_text("config name,0,200,400\nm,3.0,-1,2.0\n")
    assert "positive" in _one_error_line(runner.invoke(app, ["bench", str(neg)]))
    line = _one_error_line(runner.invoke(app, ["bench", str(table_csv), "--methods", "ats,oracle"]))
    assert "unknown method 'oracle'" in line
    line = _one_error_line(
        runner.invoke(app, ["bench", str(table_csv), "--target", "3200", "--budgets", "3200"])
    )
    assert "above every budget" in line
    line = _one_error_line(runner.invoke(app, ["bench", str(table_csv), "--budgets", "12x"]))
    assert "--budgets" in line
    line = _one_error_line(runner.invoke(app, ["bench", str(table_csv), "--budgets", "1/0"]))
    assert "--budgets" in line
    line = _one_error_line(runner.invoke(app, ["bench", str(table_csv), "--target", "big"]))
    assert "--target" in line and "'max'" in line
    line = _one_error_line(
        runner.invoke(app, ["bench", str(table_csv), "--target", "max", "--budgets", "1024"])
    )
    assert "below its smallest fine-tuned size 200" in line


def test_fit_command_shows_params_transition_prediction_and_plot(table_csv: Path) -> None:
    result = runner.invoke(
        app,
        [
            "fit",
            str(table_csv),
            "--budget",
            "12800",
            "--model",
            "org/model-1",
            "--method",
            "rectified",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "law rectified: B=" in out and "beta=" in out
    assert "transition (first power-phase size):" in out
    assert f"predicted loss at {TARGET}:" in out and "measured" in out
    assert "1e3" in out and "1e5" in out  # labelled log ticks of the plot
    assert "ranking by rectified" in out


def test_fit_reports_per_model_failures_and_bad_input(table_csv: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    write_wide_csv(short, [Curve("m", (0, 200, 400, 800), (4.0, 3.0, 2.8, 2.7)), *synthetic(2)])
    result = runner.invoke(
        app,
        [
            "fit",
            str(short),
            "--budget",
            "400",
            "--target",
            "800",
            "--method",
            "vanilla",
            "--no-plot",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "too few points" in result.output and "Traceback" not in result.output
    assert "not found" in _one_error_line(runner.invoke(app, ["fit", str(tmp_path / "x.csv")]))
    line = _one_error_line(runner.invoke(app, ["fit", str(table_csv), "--model", "nobody"]))
    assert "no model 'nobody'" in line
    line = _one_error_line(
        runner.invoke(app, ["fit", str(table_csv), "--budget", "800", "--target", "400"])
    )
    assert "must be above the budget" in line
    line = _one_error_line(runner.invoke(app, ["fit", str(table_csv), "--method", "oracle"]))
    assert "unknown method" in line


def test_tables_sharing_a_file_stem_are_kept_apart(tmp_path: Path) -> None:
    """Two flan.csv from different folders: two names, each with its own numbers."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "flan.csv", tmp_path / "b" / "flan.csv"
    write_wide_csv(first, synthetic(4))
    write_wide_csv(second, list(reversed(synthetic(5)))[:3])
    out = tmp_path / "bench.json"
    args = ["bench", str(first), str(second), "--target", str(TARGET), "--budgets", "12800"]
    result = runner.invoke(app, [*args, "--methods", "zeroshot", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "a/flan:" in result.output and "b/flan:" in result.output
    recs = json.loads(out.read_text())
    assert [r["dataset"] for r in recs] == ["a/flan", "b/flan"]
    again = _one_error_line(runner.invoke(app, [*args, str(first)]))
    assert "the same table is given twice" in again


def test_bench_json_is_checked_before_any_fitting(table_csv: Path, tmp_path: Path) -> None:
    for bad, reason in (
        (tmp_path, "Is a directory"),
        (tmp_path / "no-such-dir" / "b.json", "No such file or directory"),
    ):
        args = ["bench", str(table_csv), "--target", str(TARGET), "--budgets", "3200"]
        args += ["--json", str(bad)]
        line = _one_error_line(runner.invoke(app, args))
        assert line.startswith(f"error: --json {bad}") and reason in line, line
