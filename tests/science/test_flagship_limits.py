"""benchmarks/flagship_limits.py: its null figures checked by hand, and the script runnable."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from core.errors import CurveTableError, run_script
from core.science.metrics import pearson, rel_acc

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "flagship_limits.py"


@pytest.fixture(scope="module")
def limits():
    spec = importlib.util.spec_from_file_location("flagship_limits", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_a_null_without_error_always_picks_the_best_and_correlates_fully(limits) -> None:
    truth = np.log([1.5, 1.2, 2.0, 1.7])
    noise = np.random.default_rng(0).standard_normal((50, 4))
    rel, pear = limits.null_ranking(truth, 0.0, noise)
    assert np.allclose(rel, 1.0) and np.allclose(pear, 1.0)
    rel, pear = limits.null_ranking(truth, 0.5, noise)
    assert rel.min() < 1.0 and pear.min() < 1.0  # errors this large cost picks


def test_scaled_errors_match_the_metrics_and_vanish_at_zero(limits) -> None:
    truth = np.log([1.5, 1.2, 2.0, 1.7])
    guess = np.log([1.3, 1.4, 1.9, 1.8])  # picks the 1.5 model: RelAcc (2 - 1.5) / 0.8
    cell = limits.Cell(0, 0, truth, guess, None)
    rel, pear = limits.scaled([cell], 1.0)
    assert rel == pytest.approx(rel_acc(list(guess), list(np.exp(truth))))
    assert rel == pytest.approx(0.625)
    assert pear == pytest.approx(pearson(list(np.exp(guess)), list(np.exp(truth))))
    assert limits.scaled([cell], 0.0) == pytest.approx((1.0, 1.0))


def test_an_exactly_calibrated_independent_null_misses_the_band_binomially(limits) -> None:
    # 10 models, one cell, independent errors: coverage is Binomial(10, 0.9) / 10,
    # outside 80-98% when 7 or fewer or all 10 are covered
    out = limits.null_outside([(10, 1)], np.array([1.0, 0.0]), 40_000, np.random.default_rng(1))
    exact = binom.cdf(7, 10, 0.9) + binom.pmf(10, 10, 0.9)
    assert out.mean() == pytest.approx(exact, abs=0.01)


def test_errors_that_persist_across_cells_push_more_tables_out(limits) -> None:
    rng = np.random.default_rng(2)
    shapes = [(12, 4)] * 20
    free = limits.null_outside(shapes, np.array([1.0, 0.0]), 2000, rng).mean()
    stuck = limits.null_outside(shapes, np.array([1.0, 0.95, 0.9, 0.85]), 2000, rng).mean()
    assert stuck > 2 * free


def test_lag_correlations_and_level_slope_by_hand(limits) -> None:
    truth = np.log([1.0, 2.0, 3.0, 4.0, 5.0])
    err = np.array([0.1, -0.2, 0.3, 0.0, -0.1])
    same = [
        limits.Cell(0, 0, truth, truth + err, None),
        limits.Cell(0, 0, truth, truth + 2 * err, None),
    ]
    flipped = [same[0], limits.Cell(0, 0, truth, truth - err, None)]
    assert limits.lag_correlations([same], 1)[1] == pytest.approx(1.0)
    assert limits.lag_correlations([flipped], 1)[1] == pytest.approx(-1.0)
    level = np.array([-0.2, 0.1, 0.0, 0.3, -0.2])
    horizon = np.array([2.0, 2.0, 3.0, 3.0, 4.0])
    assert limits.level_slope(-0.05 * level * horizon, level, horizon) == pytest.approx(-0.05)


def _table(path: Path, sizes: list[int], rows: list[tuple[str, list[float]]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config name", *map(str, sizes), "size", "family"])
        for name, losses in rows:
            w.writerow([name, *losses, "", name])


def _curves(sizes: list[int], seed: int, models: int) -> list[tuple[str, list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for m in range(models):
        e, b, beta = 0.5 + 0.1 * m, 3.0 + m, 0.3 + 0.02 * m
        noise = 1 + 0.01 * rng.standard_normal(len(sizes))
        out.append(
            (
                f"m{m}",
                [
                    float((e + b * max(s, 1) ** -beta) * n)
                    for s, n in zip(sizes, noise, strict=True)
                ],
            )
        )
    return out


def test_the_script_runs_on_a_small_bench_folder(
    limits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    llm_sizes = [0] + [200 * 2**k for k in range(14)]
    for i, name in enumerate(("flan", "gigaword")):
        _table(tmp_path / f"{name}.csv", llm_sizes, _curves(llm_sizes, i, 5))
    (tmp_path / "learners").mkdir()
    learner_sizes = [16 * 2**k for k in range(10)]
    for i in range(2):
        _table(tmp_path / "learners" / f"t{i}.csv", learner_sizes, _curves(learner_sizes, 9 + i, 4))
    assert limits.main(["--bench", str(tmp_path), "--draws", "50"]) == 0
    out = capsys.readouterr().out
    assert "The null reaches mean RelAcc 97" in out
    assert "same sign in" in out and "learner tables" in out
    assert "tables outside 80-98%, of 4" in out and "P(none)" in out


def test_the_scripts_say_a_missing_table_in_one_line(limits, tmp_path: Path) -> None:
    # the same exit both benchmark scripts take (core.errors.run_script)
    with pytest.raises(SystemExit) as exit_:
        run_script(lambda: limits.main(["--bench", str(tmp_path)]))
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        run_script(lambda: 1)
    assert exit_.value.code == 1


def test_run_script_prints_the_reason_alone(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> int:
        raise CurveTableError("flan.csv: file not found\n(second line)")

    with pytest.raises(SystemExit):
        run_script(bad)
    assert capsys.readouterr().err == "error: flan.csv: file not found (second line)\n"
