"""Candidates checked before training, compared on the same tokens, keyed by what they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.config import ConfigError, DataConfig, NTKConfig, RunConfig, TrainConfig
from core.events import ModelFailed, PointFinished, PointStarted, RunStarted
from core.paths import STORE_NAME
from core.run.runner import run_events
from core.run.store import Store
from core.training.models import resolve_model

pytestmark = pytest.mark.usefixtures("zoo_env")


def _config(out: Path, models: list[str], **overrides: object) -> RunConfig:
    base: dict[str, object] = {
        "models": models,
        "sizes": [16],
        "target": 400,
        "data": DataConfig(validation_size=8, test_size=16, max_length=32),
        "train": TrainConfig(batch_size=8, min_steps=1),
        "ntk": NTKConfig(enabled=False),
        "out_dir": str(out),
        "device": "cpu",
    }
    base.update(overrides)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_a_bad_third_model_is_reported_before_any_training(tmp_path: Path) -> None:
    models = ["tiny:gpt2-s", "tiny:llama-s", "tiny:gpt2-x"]
    events = list(run_events(_config(tmp_path / "out", models)))
    first_point = next(i for i, e in enumerate(events) if isinstance(e, PointStarted))
    failed = [(i, e) for i, e in enumerate(events) if isinstance(e, ModelFailed)]
    assert [e.model for _, e in failed] == ["tiny:gpt2-x"]
    assert failed[0][0] < first_point and "unknown tiny model" in failed[0][1].reason
    assert {e.model for e in events if isinstance(e, PointFinished)} == set(models[:2])


def test_an_encoder_only_candidate_is_refused_at_start(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    bert = tmp_path / "bert"
    BertForMaskedLM(
        BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(bert)
    events = list(run_events(_config(tmp_path / "out", [str(bert), "tiny:gpt2-s"])))
    failed = [e for e in events if isinstance(e, ModelFailed)]
    assert len(failed) == 1 and "encoder-only" in failed[0].reason
    assert events.index(failed[0]) < next(
        i for i, e in enumerate(events) if isinstance(e, PointStarted)
    )


def _short_context_gpt2(folder: Path, zoo: Path) -> Path:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=1024, n_embd=32, n_layer=1, n_head=2, n_positions=16)
    GPT2LMHeadModel(config).save_pretrained(folder)
    src = resolve_model("tiny:gpt2-s", cache_dir=zoo).path
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)
    return folder


def test_every_candidate_is_scored_at_the_smallest_context(tmp_path: Path, zoo_env: Path) -> None:
    short = _short_context_gpt2(tmp_path / "ctx16", zoo_env)
    out = tmp_path / "out"
    events = list(run_events(_config(out, [str(short), "tiny:llama-s"])))
    started = events[0]
    assert isinstance(started, RunStarted)
    assert any("max_length cut from 32 to 16" in w and str(short) in w for w in started.warnings)
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["max_length"] == 16
    with Store(out / STORE_NAME) as store:
        lengths = {p.key.model: p.measured.hparams["max_length"] for p in store.points()}
    assert lengths == {str(short): 16, "tiny:llama-s": 16}


def test_a_replaced_folder_is_not_reused_and_the_run_says_so(tmp_path: Path, zoo_env: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(resolve_model("tiny:gpt2-s", cache_dir=zoo_env).path, folder)
    out = tmp_path / "out"
    first = list(run_events(_config(out, [str(folder)])))
    assert not any(e.reused for e in first if isinstance(e, PointFinished))
    again = list(run_events(_config(out, [str(folder)])))
    assert all(e.reused for e in again if isinstance(e, PointFinished))
    shutil.rmtree(folder)
    shutil.copytree(resolve_model("tiny:llama-s", cache_dir=zoo_env).path, folder)
    swapped = list(run_events(_config(out, [str(folder)])))
    finished = [e for e in swapped if isinstance(e, PointFinished)]
    assert finished and not any(e.reused for e in finished)
    assert isinstance(swapped[0], RunStarted)
    assert any("measured on a different model" in w for w in swapped[0].warnings)


def test_lora_probe_is_over_the_adapters(tmp_path: Path) -> None:
    lora = _config(
        tmp_path / "lora",
        ["tiny:gpt2-s"],
        train=TrainConfig(batch_size=8, min_steps=1, lora=True, lora_r=2),
        ntk=NTKConfig(enabled=True, probe_size=4, max_ladder_fraction=1.0),
    )
    list(run_events(lora))
    res = json.loads((tmp_path / "lora" / "results.json").read_text())
    ntk = res["models"][0]["ntk"]
    assert ntk["ok"] and ntk["projection"] == "exact"
    assert 0 < ntk["num_params"] < res["models"][0]["params"] / 10
    assert 0 < ntk["ladder_fraction"] <= 1.0


def test_the_probe_stays_within_its_share_of_the_ladder(tmp_path: Path) -> None:
    # A ladder of 16 examples at 5% leaves less than one example's compute:
    # the probe is refused with the reason and the model trains with F free.
    cfg = _config(tmp_path / "cap", ["tiny:gpt2-s"], ntk=NTKConfig(probe_size=4))
    events = list(run_events(cfg))
    assert any(isinstance(e, PointFinished) for e in events)
    ntk = json.loads((tmp_path / "cap" / "results.json").read_text())["models"][0]["ntk"]
    assert not ntk["ok"] and "max_ladder_fraction" in ntk["reason"]
    # At 25% of it (4 examples' compute) three of the four probe examples fit.
    cfg = _config(
        tmp_path / "quarter", ["tiny:gpt2-s"], ntk=NTKConfig(probe_size=4, max_ladder_fraction=0.25)
    )
    list(run_events(cfg))
    ntk = json.loads((tmp_path / "quarter" / "results.json").read_text())["models"][0]["ntk"]
    assert ntk["ok"] and 2 <= ntk["n"] < 4 and ntk["ladder_fraction"] <= 0.25


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:7", "quantum"])
def test_unusable_device_is_refused_before_the_run_starts(tmp_path: Path, device: str) -> None:
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("a machine with 8 GPUs")
    with pytest.raises(ConfigError, match="device"):
        run_events(_config(tmp_path / "out", ["tiny:gpt2-s"], device=device))
    assert not (tmp_path / "out").exists()


def test_cli_device_cuda_without_cuda_is_one_line_exit_2(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    from typer.testing import CliRunner

    from lensllm_tui.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["run", "--no-ui", "--models", "tiny:gpt2-s", "--device", "cuda", "--out", str(out)]
    )
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cuda" in lines[0] and "Traceback" not in res.output
    assert not (out / "results.json").exists()
