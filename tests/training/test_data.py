"""Task data: formats, splits, nested subsets, fingerprints and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import DataConfig
from core.training.data import IGNORE_INDEX, DataError, Example, collate, encode_examples, load_task


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _pc_rows(n: int) -> list[dict]:
    return [{"question": f"What is {i} plus one?", "answer": f"It is {i + 1}."} for i in range(n)]


def test_builtin_text_is_big_enough_for_the_default_ladder() -> None:
    task = load_task(DataConfig())
    assert task.max_train_size >= 1600
    assert len(task.test) == 128 and len(task.validation) == 64
    # the splits are disjoint
    held = set(task.test) | set(task.validation)
    assert not held & set(task.train)


def test_builtin_prompt_completion_task_exists() -> None:
    task = load_task(DataConfig(format="prompt_completion", test_size=16, validation_size=8))
    assert task.max_train_size > 200
    ex = task.train[0]
    assert ex.prompt.strip() and ex.completion.strip()


def test_subsets_are_nested_and_split_is_seeded(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": f"example number {i}"} for i in range(300)])
    cfg = DataConfig(source=str(path), validation_size=10, test_size=20)
    a, b = load_task(cfg), load_task(cfg)
    assert a.train == b.train and a.test == b.test and a.fingerprint == b.fingerprint
    s50, s100 = a.subset(50), a.subset(100)
    assert s100[:50] == s50 and len(set(s100)) == 100
    other = load_task(DataConfig(source=str(path), validation_size=10, test_size=20, seed=1))
    assert other.test != a.test and other.fingerprint != a.fingerprint


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}"} for i in range(40)])
    cfg = DataConfig(source=str(p), validation_size=5, test_size=5)
    before = load_task(cfg).fingerprint
    _jsonl(p, [{"text": f"row {i}!"} for i in range(40)])
    assert load_task(cfg).fingerprint != before


def test_ladder_larger_than_train_split(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}"} for i in range(120)])
    task = load_task(DataConfig(source=str(p), validation_size=10, test_size=10))
    assert task.max_train_size == 100
    assert task.clip_ladder([25, 50, 100, 200]) == ([25, 50, 100], [200])
    with pytest.raises(DataError, match="a subset of 200 is not possible"):
        task.subset(200)


def test_csv_prompt_completion_with_custom_columns(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(30)), encoding="utf-8")
    cfg = DataConfig(
        source=str(p),
        format="prompt_completion",
        prompt_column="question",
        completion_column="answer",
        validation_size=2,
        test_size=3,
    )
    task = load_task(cfg)
    assert len(task.train) == 25 and task.train[0].prompt.startswith("q")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "nope.jsonl", "not found"),
        (lambda d: _write(d / "empty.jsonl", ""), "empty"),
        (lambda d: _jsonl(d / "cols.jsonl", _pc_rows(50)), "missing column"),
        (lambda d: _jsonl(d / "few.jsonl", [{"text": "a"}, {"text": "b"}]), "usable examples"),
        (lambda d: _write(d / "bad.jsonl", "{not json\n"), "cannot read"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path: Path, make, match: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        load_task(DataConfig(source=str(path), validation_size=4, test_size=4))
    assert "\n" not in str(info.value)


def test_unknown_hub_dataset_offline_fails_fast() -> None:
    with pytest.raises(DataError) as info:
        load_task(DataConfig(source="no-such-user/no-such-dataset"))
    assert "\n" not in str(info.value) and "no-such-user/no-such-dataset" in str(info.value)


def test_loss_only_on_completion_tokens(zoo_cache: Path) -> None:
    from core.training.models import load_model, resolve_model

    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    _, tok = load_model(spec, "cpu")
    ex = Example("Question: what is two plus two?\nAnswer:", " four")
    (enc,) = encode_examples([ex], tok, "causal", 64)
    n_prompt = len(tok(ex.prompt)["input_ids"])
    assert all(label == IGNORE_INDEX for label in enc.labels[:n_prompt])
    completion = [t for t in enc.labels if t != IGNORE_INDEX]
    assert completion == [
        *tok(ex.completion, add_special_tokens=False)["input_ids"],
        tok.eos_token_id,
    ]
    assert list(enc.input_ids[n_prompt:]) == completion
    # padding is ignored too, and batches pad only to their own longest example
    short = encode_examples([Example("Q:", " a")], tok, "causal", 64)[0]
    batch = collate([enc, short], tok.pad_token_id)
    assert batch["input_ids"].shape[1] == len(enc.input_ids)
    assert (batch["labels"][1, len(short.input_ids) :] == IGNORE_INDEX).all()
    assert batch["attention_mask"][1].sum() == len(short.input_ids)


def test_truncation_keeps_completion_tokens(zoo_cache: Path) -> None:
    from core.training.models import load_model, resolve_model

    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    _, tok = load_model(spec, "cpu")
    ex = Example("word " * 200, "the answer " * 50)
    (enc,) = encode_examples([ex], tok, "causal", 32)
    assert len(enc.input_ids) == 32 and enc.label_tokens >= 16
