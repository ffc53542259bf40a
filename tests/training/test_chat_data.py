"""Chat data through a model's own chat template: the loss lands on assistant tokens only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DataConfig
from core.training import chat
from core.training.data import IGNORE_INDEX, DataError, Example, load_task
from core.training.encoding import encode_examples
from core.training.examples import Turn

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
"""A Zephyr-like template, unlike the ChatML fallback, with its own special tokens."""


def _tokenizer(zoo_cache: Path, name: str = "tiny:gpt2-s", template: str | None = TEMPLATE):
    from transformers import AutoTokenizer

    from core.training.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(name, cache_dir=zoo_cache).path)
    if template is not None:
        tok.add_special_tokens({"additional_special_tokens": ["<|end|>"]})
        tok.chat_template = template
    return tok


CONVERSATION = (
    Turn("system", "You answer briefly.", False),
    Turn("user", "What is two plus two?", False),
    Turn("assistant", "Four.", True),
    Turn("user", "And three plus three?", False),
    Turn("assistant", "It is six, of course.", True),
)


def _positions(tok, ids) -> list[tuple[int, int]]:
    """Each token's character span in the decoded text, from decoding token by token."""
    spans, at = [], 0
    for t in ids:
        piece = tok.decode([t])
        spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


def _assistant_spans(text: str, opener: str, closer: str) -> list[tuple[int, int]]:
    out, cursor = [], 0
    for turn in CONVERSATION:
        if turn.role == "assistant":
            whole = opener + turn.content + closer
            at = text.index(whole, cursor)
            out.append((at + len(opener), at + len(whole)))
            cursor = at + len(whole)
    return out


@pytest.mark.parametrize(
    ("template", "opener", "closer", "name"),
    [
        (TEMPLATE, "<|assistant|>\n", "<|end|>\n", chat.OWN_NAME),
        (None, "<|im_start|>assistant\n", "<|im_end|>\n", chat.FALLBACK_NAME),
    ],
)
def test_loss_masks_everything_but_assistant_tokens(
    zoo_cache: Path, template, opener: str, closer: str, name: str
) -> None:
    tok = _tokenizer(zoo_cache, template=template)
    assert chat.template_name(tok) == name
    (enc,) = encode_examples([Example("", "", CONVERSATION, row=1)], tok, "causal", 512)
    text = tok.decode(list(enc.input_ids))
    assert text == chat.render(tok, CONVERSATION)
    assert opener + "Four." + closer in text
    spans = _assistant_spans(text, opener, closer)
    for token, label, (a, b) in zip(
        enc.input_ids, enc.labels, _positions(tok, enc.input_ids), strict=True
    ):
        inside = any(s <= a and b <= e for s, e in spans)
        assert label == (token if inside else IGNORE_INDEX), (tok.decode([token]), a, b)
    trained = tok.decode([t for t in enc.labels if t != IGNORE_INDEX])
    assert (
        trained
        == "".join(text[s:e] for s, e in spans)
        == f"Four.{closer}It is six, of course.{closer}"
    )
    assert not enc.truncated


def test_long_turns_are_cut_before_tokenising_with_the_same_tokens(zoo_cache: Path) -> None:
    tok = _tokenizer(zoo_cache)
    long = (*CONVERSATION[:2], Turn("assistant", "lorem ipsum dolor " * 20_000, True))
    ex = Example("", "", long)
    (enc,) = encode_examples([ex], tok, "causal", 64)
    ids, labels, total = chat.encode_chat_causal(ex, tok, 64, [])
    assert enc.truncated and total > 64
    assert (list(enc.input_ids), list(enc.labels)) == (ids, labels) and len(ids) == 64


def test_seq2seq_reads_the_context_and_learns_the_last_assistant_turn(zoo_cache: Path) -> None:
    tok = _tokenizer(zoo_cache, "tiny:t5-s", template=None)
    (enc,) = encode_examples([Example("", "", CONVERSATION)], tok, "seq2seq", 256)
    prompt = tok.decode(list(enc.input_ids), skip_special_tokens=False)
    assert "<|im_start|>user\nAnd three plus three?<|im_end|>" in prompt
    assert prompt.rstrip("</s>").endswith("<|im_start|>assistant\n")
    assert list(enc.labels) == [
        *tok("It is six, of course.", add_special_tokens=False)["input_ids"],
        tok.eos_token_id,
    ]


def test_a_template_that_cannot_render_names_file_and_row(zoo_cache: Path, tmp_path: Path) -> None:
    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    )
    tok = _tokenizer(zoo_cache, template=strict)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(30)
    ]
    rows[7]["messages"].insert(0, {"role": "system", "content": "be brief"})
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = load_task(
        DataConfig(source=str(path), format="messages", test_size=3, validation_size=2)
    )
    with pytest.raises(DataError) as info:
        task.encode(tok, "causal", 64)
    msg = str(info.value)
    assert f"{path}: row 8: the model's own chat template" in msg
    assert "System role not supported" in msg and "expected turns that template accepts" in msg
    assert "\n" not in msg


def test_encoding_report_counts_truncation_and_names_the_template(
    zoo_cache: Path, tmp_path: Path
) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "word " * (3 if i % 4 else 200)},
            ]
        }
        for i in range(40)
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = load_task(
        DataConfig(source=str(path), format="messages", test_size=4, validation_size=4)
    )
    report = task.encoding_report(_tokenizer(zoo_cache), "causal", 32)
    assert report["chat_template"] == chat.OWN_NAME
    assert report["examples"] == 40 and report["truncated"] == 10
    assert report["truncated_share"] == pytest.approx(0.25)


MEMORY_SCRIPT = """
import json, resource, sys
from transformers import AutoTokenizer
from core.config import DataConfig
from core.training.data import load_task
tok = AutoTokenizer.from_pretrained(sys.argv[1])
task = load_task(DataConfig(source=sys.argv[2], validation_size=4, test_size=4))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
enc = task.encode(tok, "causal", 128)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
longest = max(len(e.input_ids) for split in enc.values() for e in split)
print(json.dumps({"grew_kb": after - before, "longest": longest,
                  "truncated": sum(e.truncated for s in enc.values() for e in s)}))
"""


def test_a_50mb_example_encodes_in_bounded_memory(zoo_cache: Path, tmp_path: Path) -> None:
    """One 50 MB example used to cost gigabytes of tokenizer output before it was cut."""
    from core.training.models import resolve_model

    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(
            json.dumps({"text": ("lorem ipsum dolor sit amet " * 2_000_000)[:50_000_000]}) + "\n"
        )
        fh.writelines(json.dumps({"text": f"small example {i}"}) + "\n" for i in range(30))
    env = {
        **os.environ,
        "LENSLLM_TUI_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY_SCRIPT,
            resolve_model("tiny:gpt2-s", cache_dir=zoo_cache).path,
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["longest"] == 128 and got["truncated"] == 1
    assert got["grew_kb"] < 100 * 1024, got  # tokenising the whole text took over 10 GB
    # the Arrow copy went to the tool's cache, none to the Hugging Face datasets cache
    assert list((tmp_path / "cache" / "datasets").rglob("*.arrow"))
    assert not (tmp_path / "hf" / "datasets").exists()
