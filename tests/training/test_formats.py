"""Data formats people keep for fine-tuning: each read into the same examples, bad rows one line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pytest

from core.config import DataConfig
from core.training.data import DataError, Example, load_task
from core.training.examples import Turn


def _rows(n: int = 60) -> list[dict]:
    return [
        {"prompt": f"Question {i}: what follows {i}?", "completion": f" {i + 1}."} for i in range(n)
    ]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _cfg(source: Path | str, **kw) -> DataConfig:
    return DataConfig(source=str(source), validation_size=5, test_size=5, **kw)


def _writers(tmp: Path, rows: list[dict]) -> dict[str, Path]:
    """The same rows in every supported shape."""
    ds = datasets.Dataset.from_list(rows)
    out = {"jsonl": _jsonl(tmp / "d.jsonl", rows)}
    with gzip.open(tmp / "d.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    out["jsonl.gz"] = tmp / "d.jsonl.gz"
    (tmp / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    out["json"] = tmp / "d.json"
    ds.to_csv(tmp / "d.csv", index=False)
    out["csv"] = tmp / "d.csv"
    ds.to_csv(tmp / "d.tsv", sep="\t", index=False)
    out["tsv"] = tmp / "d.tsv"
    ds.to_parquet(tmp / "d.parquet")
    out["parquet"] = tmp / "d.parquet"
    ds.save_to_disk(str(tmp / "saved"))
    out["save_to_disk"] = tmp / "saved"
    datasets.DatasetDict({"train": ds, "other": ds.select(range(3))}).save_to_disk(str(tmp / "dd"))
    out["save_to_disk dict"] = tmp / "dd"
    return out


def test_every_file_shape_reads_into_identical_examples(tmp_path: Path) -> None:
    tasks = {
        name: load_task(_cfg(path, format="prompt_completion"))
        for name, path in _writers(tmp_path, _rows()).items()
    }
    first = tasks["jsonl"]
    assert len(first.train) == 50
    for name, task in tasks.items():
        assert (task.train, task.validation, task.test) == (
            first.train,
            first.validation,
            first.test,
        ), name


def test_txt_paragraph_mode_keeps_wrapped_paragraphs_whole(tmp_path: Path) -> None:
    paragraphs = [
        f"Paragraph {i} starts here and it is wrapped\nover a second line and\na third one."
        for i in range(40)
    ]
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    by_line = load_task(_cfg(path))
    by_para = load_task(_cfg(path, sample_by="paragraph"))
    # one example per line: 120 fragments, the 39 blank separator lines dropped as empty
    assert (by_line.stats.rows, by_line.stats.empty) == (159, 39)
    assert by_para.stats.rows == 40
    texts = {ex.completion for ex in (*by_para.train, *by_para.validation, *by_para.test)}
    assert texts == set(paragraphs)
    # the same paragraphs as a jsonl text column read the same examples
    as_jsonl = load_task(_cfg(_jsonl(tmp_path / "p.jsonl", [{"text": p} for p in paragraphs])))
    assert as_jsonl.train == by_para.train


def _chat(i: int) -> list[dict]:
    return [
        {"role": "system", "content": "You add one."},
        {"role": "user", "content": f"What follows {i}?"},
        {"role": "assistant", "content": f"{i + 1}."},
    ]


def test_messages_and_conversational_prompt_completion_read_the_same_turns(tmp_path: Path) -> None:
    msgs = _jsonl(tmp_path / "m.jsonl", [{"messages": _chat(i)} for i in range(40)])
    conv = _jsonl(
        tmp_path / "c.jsonl",
        [{"prompt": _chat(i)[:2], "completion": _chat(i)[2:]} for i in range(40)],
    )
    a = load_task(_cfg(msgs, format="messages"))
    b = load_task(_cfg(conv, format="prompt_completion"))
    auto = load_task(_cfg(msgs, format="auto"))
    assert (a.format, b.format, auto.format) == ("messages", "prompt_completion", "messages")
    assert a.train == b.train == auto.train
    ex = a.train[0]
    assert ex.is_chat and [t.role for t in ex.turns] == ["system", "user", "assistant"]
    assert [t.trained for t in ex.turns] == [False, False, True]


def test_alpaca_rows_become_the_alpaca_prompt_and_output(tmp_path: Path) -> None:
    rows = [
        {
            "instruction": f"Add one to {i}.",
            "input": "" if i % 2 else f"n={i}",
            "output": f"{i + 1}",
        }
        for i in range(30)
    ]
    task = load_task(_cfg(_jsonl(tmp_path / "a.jsonl", rows), format="alpaca"))
    assert load_task(_cfg(tmp_path / "a.jsonl", format="auto")).train == task.train
    by_output = {ex.completion: ex for ex in (*task.train, *task.validation, *task.test)}
    with_input, without = by_output["1"], by_output["2"]
    assert (
        "### Instruction:\nAdd one to 0.\n\n### Input:\nn=0\n\n### Response:\n" in with_input.prompt
    )
    assert "### Input:" not in without.prompt and without.prompt.endswith("### Response:\n")


def test_own_test_and_validation_files_are_used_as_given_and_never_trained_on(
    tmp_path: Path,
) -> None:
    rows = [{"text": f"example sentence number {i}"} for i in range(100)]
    test_rows = rows[:12]  # also present in the source: must be kept out of training
    val_rows = [{"text": f"validation sentence {i}"} for i in range(7)]
    src = _jsonl(tmp_path / "train.jsonl", rows)
    test_file = _jsonl(tmp_path / "test.jsonl", test_rows)
    val_file = _jsonl(tmp_path / "val.jsonl", val_rows)
    task = load_task(_cfg(src, test_file=str(test_file), validation_file=str(val_file)))
    assert [ex.completion for ex in task.test] == [r["text"] for r in test_rows]
    assert [ex.completion for ex in task.validation] == [r["text"] for r in val_rows]
    assert not set(task.test) & set(task.train)
    assert len(task.train) == 88 and task.stats.held_out_overlap == 12
    assert task.fingerprint != load_task(_cfg(src)).fingerprint


def test_duplicates_and_empty_rows_are_counted(tmp_path: Path) -> None:
    rows = [{"text": f"row {i % 30}"} for i in range(70)] + [{"text": "  "}] * 3
    task = load_task(_cfg(_jsonl(tmp_path / "d.jsonl", rows)))
    assert (task.stats.rows, task.stats.empty, task.stats.duplicates) == (73, 3, 40)
    assert task.stats.to_dict()["duplicates_share"] == pytest.approx(40 / 73)
    assert "40 duplicates dropped (54.8%)" in task.stats.summary()


def _bad_saved(tmp: Path) -> Path:
    path = tmp / "saved"
    datasets.Dataset.from_list(_rows(20)).save_to_disk(str(path))
    for arrow in path.glob("*.arrow"):
        arrow.write_bytes(b"not arrow at all")
    return path


@pytest.mark.parametrize(
    ("make", "kw", "match"),
    [
        (_bad_saved, {}, r"saved: cannot read the saved dataset .*expected a folder written by"),
        (
            lambda d: _jsonl(
                d / "m.jsonl",
                [{"messages": _chat(i)} for i in range(3)]
                + [{"messages": [{"role": "robot", "content": "hi"}]}],
            ),
            {"format": "messages"},
            r"m.jsonl: row 4: message 1 has role 'robot'; expected one of system, user",
        ),
        (
            lambda d: _jsonl(d / "body.jsonl", [{"body": f"b{i}"} for i in range(30)]),
            {},
            r"body.jsonl: missing column\(s\) text for format text \(found: body\); name the"
            r" column\(s\) with --text-column",
        ),
        (
            lambda d: _jsonl(d / "m2.jsonl", [{"messages": _chat(i)} for i in range(30)]),
            {},
            r"found: messages\).*look like --format messages",
        ),
        (lambda d: d / "empty_dir", {}, r"not one written by save_to_disk"),
    ],
)
def test_bad_sources_are_one_line_errors(tmp_path: Path, make, kw: dict, match: str) -> None:
    (tmp_path / "empty_dir").mkdir()
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        load_task(_cfg(path, **kw))
    assert "\n" not in str(info.value)


def test_test_file_without_the_columns_names_file_and_columns(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "train.jsonl", [{"text": f"t {i}"} for i in range(40)])
    bad = _jsonl(tmp_path / "held.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as info:
        load_task(_cfg(src, test_file=str(bad)))
    msg = str(info.value)
    assert "test file" in msg and "held.jsonl" in msg and "missing column(s) text" in msg
    assert "found: question, answer" in msg and "\n" not in msg
    with pytest.raises(DataError, match="test file not found"):
        load_task(_cfg(src, test_file=str(tmp_path / "nope.jsonl")))


def test_chat_examples_keep_the_row_they_came_from(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": _chat(i)} for i in range(30)])
    task = load_task(_cfg(path, format="messages"))
    ex = next(e for e in task.train)
    i = int(ex.turns[1].content.split()[-1].rstrip("?"))
    assert ex.row == i + 1
    assert Example("", "", (Turn("user", "a", False),), row=3) == Example(
        "", "", (Turn("user", "a", False),), row=9
    )
