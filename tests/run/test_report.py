"""`lensllm-tui report`: an HTML page with every figure, and a TensorBoard export read back."""

from __future__ import annotations

import base64
import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import AdaptiveRunConfig, DataConfig, NTKConfig, RunConfig, TrainConfig
from core.run.runner import run_events
from lensllm_tui.cli import app

pytestmark = pytest.mark.usefixtures("zoo_env")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real adaptive run: NTK probes, an elimination, validation checks, per-step losses."""
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = RunConfig(
        models=["tiny:gpt2-s", "tiny:t5-s"],
        sizes=[25, 50, 100, 200],
        target=1600,
        data=DataConfig(validation_size=8, test_size=24, max_length=32),
        train=TrainConfig(batch_size=8, min_steps=2, early_stopping_patience=50, eval_every=2),
        ntk=NTKConfig(probe_size=8, max_ladder_fraction=1.0),
        device="cpu",
        policy="adaptive",
        adaptive=AdaptiveRunConfig(confidence=0.7),
        out_dir=str(out),
    )
    list(run_events(cfg))
    return out


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, bytes] = {}
        self.ids: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "figure":
            self._in = a.get("id")
        elif tag == "img" and self._in:
            src = str(a.get("src"))
            assert src.startswith("data:image/png;base64,")  # self-contained: nothing to fetch
            self.figures[self._in] = base64.b64decode(src.split(",", 1)[1])


def test_the_report_shows_every_figure(recorded_run: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(recorded_run), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    parser = _Figures()
    parser.feed(page)
    assert set(parser.figures) == {"curves", "ranking", "compute", "spectra", "steps"}
    for name, png in parser.figures.items():
        assert png.startswith(PNG) and (tmp_path / "r" / f"{name}.png").read_bytes() == png
    results = json.loads((recorded_run / "results.json").read_text())
    for row in results["ranking"]:
        assert f"<td>{row['model']}</td><td>{row['predicted_target']:.4f}</td>" in page
    (gone,) = results["policy"]["eliminated"]
    assert "eliminated" in parser.ids and html.escape(gone["reason"]) in page


def test_tensorboard_export_reads_back(recorded_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = CliRunner().invoke(app, ["report", str(recorded_run), "--no-html", "--tensorboard"])
    assert res.exit_code == 0, res.output
    results = json.loads((recorded_run / "results.json").read_text())
    for model in results["models"]:
        acc = EventAccumulator(str(recorded_run / "tensorboard" / model["model"].replace(":", "_")))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        test = [(e.step, e.value) for e in acc.Scalars("test_loss")]
        assert test == [(p["size"], pytest.approx(p["loss"])) for p in model["points"]]
        trained = [p for p in model["points"] if p["steps"] > 0]
        for p in trained:
            steps = acc.Scalars(f"train_loss/size_{p['size']}")
            assert [e.step for e in steps] == list(range(1, p["steps"] + 1))
            assert f"val_loss/size_{p['size']}" in tags
        pred = model["prediction"]
        (at,) = acc.Scalars("predicted_target_loss")
        assert at.step == 1600 and at.value == pytest.approx(pred["predicted"])


def test_a_directory_without_results_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "no results.json (not a lensllm-tui run directory)" in res.output
