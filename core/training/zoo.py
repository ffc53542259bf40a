"""The built-in tiny zoo: small real transformers, pretrained offline at build time.

Each zoo model is a genuine Hugging Face architecture (GPT-2, Llama, T5) built
from a config, given a real byte-level BPE tokenizer trained with the
``tokenizers`` library, and briefly pretrained (seeded, on CPU) on docstrings
from one half of the Python standard library. The fine-tuning tasks use other
text (the Language Reference paragraphs, or the other half's docstrings), so a
zoo model arrives with a meaningful zero-shot loss, like a real checkpoint.

The models differ the way real candidates do: in capacity (about 4x in
parameters between the -s and -l members of a family) and in pretraining
(the small ones get more steps; the wide ones a learning rate halved with the
width doubled, the usual Adam rule that the stable rate falls as width grows).
The small ones start better; the large ones gain more per fine-tuning sample.
Measured on the built-in task at the default TrainConfig (lr 5e-4, batch 16,
one epoch), test loss at sizes 0/200/400/800/1600 (ZOO_VERSION 3 recipe,
CPU, one thread):

    llama-s  5.617 5.524 5.464 5.369 5.217
    llama-l  5.828 5.653 5.544 5.363 5.070
    gpt2-s   5.792 5.706 5.641 5.544 5.372
    gpt2-l   5.802 5.649 5.530 5.359 5.102

so the model best at 200 samples (llama-s) is not the one best at 1600
(llama-l, which overtakes it at 800). Nothing is tuned per ladder point: the
crossing comes only from capacity versus pretraining.

A model is built once into ``<cache>/zoo/v<ZOO_VERSION>/<name>``: written to a
temporary directory and renamed into place, so a crash never leaves a
half-written model, then loaded back through ``from_pretrained`` exactly like a
user's local model. Builds hold a lock on the zoo directory (core/flock.py), so
two processes never build the same model twice, and the temporary directories
of a build that was killed are removed by the next one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.flock import FileLock
from core.paths import cache_root

ZOO_VERSION = 3
"""Bump when configs, tokenizers or pretraining change: old builds are ignored."""

VOCAB_SIZE = 1024
MAX_POSITIONS = 256


@dataclass(frozen=True)
class ZooEntry:
    """How one tiny model is built."""

    family: str
    """gpt2, llama or t5."""
    config: dict[str, Any]
    """Architecture keyword arguments for the family's config class."""
    pretrain_steps: int
    """Optimizer steps of build-time pretraining (batch ``pretrain_batch``)."""
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 16
    pretrain_length: int = 64
    """Tokens per pretraining example (paragraphs are cut)."""
    seed: int = 0


ZOO: dict[str, ZooEntry] = {
    "gpt2-s": ZooEntry("gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 2}, pretrain_steps=250),
    "gpt2-l": ZooEntry(
        "gpt2", {"n_embd": 128, "n_layer": 3, "n_head": 4}, pretrain_steps=150, pretrain_lr=1e-3
    ),
    "llama-s": ZooEntry(
        "llama",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 176,
        },
        pretrain_steps=200,
    ),
    "llama-l": ZooEntry(
        "llama",
        {
            "hidden_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "intermediate_size": 352,
        },
        pretrain_steps=150,
        pretrain_lr=1e-3,
    ),
    "t5-s": ZooEntry(
        "t5",
        {"d_model": 64, "d_ff": 128, "num_layers": 2, "num_heads": 2, "d_kv": 32},
        pretrain_steps=100,
    ),
}


def zoo_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else $LENSLLM_TUI_CACHE, else ~/.cache/lensllm-tui; then zoo/v<N>."""
    return cache_root(cache_dir) / "zoo" / f"v{ZOO_VERSION}"


def ensure_built(
    name: str, *, cache_dir: str | Path | None = None, pretrain_steps: int | None = None
) -> Path:
    """The directory of zoo model ``name``, building it first if it is not there.

    ``pretrain_steps`` overrides the recipe (tests build into a temporary
    cache with a couple of steps); it has no effect on an existing build.
    """
    entry = ZOO[name]
    if pretrain_steps is not None:
        entry = replace(entry, pretrain_steps=pretrain_steps)
    root = zoo_root(cache_dir)
    dest = root / name
    if (dest / "config.json").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / BUILD_LOCK):  # one builder at a time; waits for a running one
        if (dest / "config.json").is_file():  # it finished while we waited
            return dest
        remove_stale_builds(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build(name, entry, tmp)
            os.rename(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest


BUILD_LOCK = ".build.lock"
"""Held (flock) by the process building a zoo model; the kernel drops it if that process dies."""


def remove_stale_builds(root: Path) -> list[Path]:
    """Delete temp build directories left by killed builds (call with the build lock held)."""
    stale = [
        p for p in root.glob(".*") if p.is_dir() and any(p.name.startswith(f".{n}-") for n in ZOO)
    ]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def build(name: str, entry: ZooEntry, out: Path) -> None:
    """Config -> random init (seeded) -> pretrain -> save_pretrained model + tokenizer."""
    import torch

    tokenizer = make_tokenizer(entry.family)
    config = make_config(entry, tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(entry.seed)
        model = _model_class(entry.family)(config)
        pretrain(model, tokenizer, entry)
    model.eval()
    from core.training.hub import quiet_progress

    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def make_tokenizer(family: str) -> Any:
    """A byte-level BPE tokenizer trained on the pretraining corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from core.training.data import pretraining_corpus

    if family == "gpt2":
        specials = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
        special_list = ["<|endoftext|>"]
    elif family == "llama":
        specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
        special_list = ["<unk>", "<s>", "</s>"]
    else:
        specials = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        special_list = ["<pad>", "</s>", "<unk>"]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special_list,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pretraining_corpus(), trainer=trainer)
    if family == "llama":
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    elif family == "t5":
        eos = tok.token_to_id("</s>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MAX_POSITIONS, **specials)


def make_config(entry: ZooEntry, tokenizer: Any) -> Any:
    from transformers import GPT2Config, LlamaConfig, T5Config

    vocab = len(tokenizer)
    if entry.family == "gpt2":
        eos = tokenizer.eos_token_id
        return GPT2Config(
            vocab_size=vocab,
            n_positions=MAX_POSITIONS,
            bos_token_id=eos,
            eos_token_id=eos,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            activation_function="gelu_pytorch_tanh",  # same function as gelu_new, one kernel
            **entry.config,
        )
    if entry.family == "llama":
        return LlamaConfig(
            vocab_size=vocab,
            max_position_embeddings=MAX_POSITIONS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
            **entry.config,
        )
    return T5Config(
        vocab_size=vocab,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        num_decoder_layers=entry.config.get("num_layers"),
        **entry.config,
    )


def _model_class(family: str) -> Any:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, T5ForConditionalGeneration

    return {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "t5": T5ForConditionalGeneration}[
        family
    ]


def pretrain(model: Any, tokenizer: Any, entry: ZooEntry) -> None:
    """Brief seeded pretraining on stdlib docstrings, with the engine's own loop.

    Seq2seq models learn to continue text: the first half of a paragraph is
    the encoder input and the second half the target.
    """
    import torch

    from core.training.data import Example, encode_examples, pretraining_corpus
    from core.training.loop import batches_for, optimize

    if entry.pretrain_steps <= 0:
        return
    corpus = pretraining_corpus()
    kind = "seq2seq" if entry.family == "t5" else "causal"
    if kind == "seq2seq":
        examples = [Example(p[: len(p) // 2], p[len(p) // 2 :]) for p in corpus]
    else:
        examples = [Example("", p) for p in corpus]
    encoded = [
        e
        for e in encode_examples(examples, tokenizer, kind, entry.pretrain_length)
        if e.label_tokens > 0
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = batches_for(
        encoded, entry.pretrain_batch, entry.pretrain_steps, entry.seed, group_by_length=True
    )
    optimize(
        model,
        batches,
        kind=kind,
        pad_id=pad,
        device=torch.device("cpu"),
        lr=entry.pretrain_lr,
        warmup_steps=max(1, entry.pretrain_steps // 10),
        weight_decay=0.01,
        max_grad_norm=1.0,
    )
