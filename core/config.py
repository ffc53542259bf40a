"""Run configuration: typed dataclasses checked on construction, stored as TOML.

A config is the full description of a run: what is trained, on what, for how
long, and where results go. It is validated in ``__post_init__`` so that a bad
value fails with one clear line before any model is loaded, and it round-trips
through TOML so a run can be repeated or resumed from its saved config.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from core.errors import ConfigError

DEFAULT_SIZES: tuple[int, ...] = (200, 400, 800, 1600)
"""The default ladder: geometric, doubling from 200 samples, as in LensLLM."""

DEFAULT_TARGET = 6400
"""The default full-dataset size the ranking predicts for."""

SCHEDULES: tuple[str, ...] = ("halving", "challenger", "compute", "size")
"""The adaptive policy's schedules, named here so the config can check them without importing the policy."""

DEFAULT_MODELS: tuple[str, ...] = ("tiny:gpt2-s", "tiny:gpt2-l", "tiny:llama-s", "tiny:llama-l")
"""The built-in tiny zoo (``tiny:`` names resolve through core.training.models)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


FORMATS: tuple[str, ...] = ("text", "prompt_completion", "messages", "alpaca", "auto")
"""Data formats ``data.format`` accepts (core/training/sources.py reads them)."""

SAMPLE_BY: tuple[str, ...] = ("line", "paragraph", "document")
"""How a .txt file is cut into examples (``datasets``' text builder ``sample_by``)."""


@dataclass
class DataConfig:
    """Where the task data comes from and how examples are read."""

    source: str = field(default="builtin", metadata={"flag": "dataset"})
    """``builtin`` (offline text shipped with Python), a local file path
    (.jsonl/.json/.csv/.tsv/.parquet/.txt, also compressed as .gz), a folder
    written by ``save_to_disk``, or a Hugging Face hub dataset name."""
    format: str = "text"
    """``text`` (language modelling on the whole example), ``prompt_completion``
    (loss on completion tokens only; prompt and completion may be strings or
    lists of chat messages), ``messages`` (chat: a list of {role, content},
    rendered with each model's chat template, loss on assistant turns),
    ``alpaca`` (instruction / input / output) or ``auto`` (chosen from the columns)."""
    text_column: str = "text"
    """Column holding the text (format ``text``)."""
    prompt_column: str = "prompt"
    """Column holding the prompt (format ``prompt_completion``)."""
    completion_column: str = "completion"
    """Column holding the completion (format ``prompt_completion``)."""
    messages_column: str = "messages"
    """Column holding a conversation (format ``messages``)."""
    sample_by: str = "line"
    """A .txt file's examples: one per ``line``, per ``paragraph`` (blank-line separated)
    or the whole ``document``."""
    hub_config: str | None = None
    """Hub dataset configuration name, if the dataset has several."""
    hub_split: str = "train"
    """Split of a hub dataset, or of a saved DatasetDict, to read."""
    validation_file: str | None = None
    """Your own validation examples (same format and columns); used as given, and the
    validation split is then not drawn from ``source``."""
    test_file: str | None = None
    """Your own test examples (same format and columns); every point is scored on them as
    given, none is ever trained on, and the test split is then not drawn from ``source``."""
    validation_size: int = 64
    """Held-out examples for early stopping (drawn from ``source`` unless validation_file)."""
    test_size: int = 128
    """Held-out examples every point's test loss is measured on (fixed per run; drawn from
    ``source`` unless test_file)."""
    max_length: int = 128
    """Tokens per example; longer examples are truncated."""
    seed: int = field(default=0, metadata={"flag": "data-seed"})
    """Seed of the train / validation / test split and of the nested subsets."""

    def __post_init__(self) -> None:
        _check(bool(self.source), "data.source must not be empty")
        _check(
            self.format in FORMATS,
            f"data.format must be one of {', '.join(FORMATS)}, not {self.format!r}",
        )
        _check(
            self.sample_by in SAMPLE_BY,
            f"data.sample_by must be one of {', '.join(SAMPLE_BY)}, not {self.sample_by!r}",
        )
        for name in ("text_column", "prompt_column", "completion_column", "messages_column"):
            _check(bool(getattr(self, name)), f"data.{name} must not be empty")
        _check(self.validation_size >= 1, "data.validation_size must be at least 1")
        _check(self.test_size >= 1, "data.test_size must be at least 1")
        _check(self.max_length >= 8, "data.max_length must be at least 8")


@dataclass
class TrainConfig:
    """How one point is fine-tuned; recorded with every point in the store."""

    learning_rate: float = field(default=5e-4, metadata={"aliases": ("lr",)})
    """Peak learning rate of AdamW (linear warm-up, then cosine decay to zero)."""
    batch_size: int = 16
    """Examples per optimizer step."""
    epochs: float = 1.0
    """Passes over the subset; steps = ceil(epochs * size / batch_size)."""
    min_steps: int = 8
    """Lower bound on optimizer steps so tiny subsets still move the weights."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming the learning rate up from zero."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    precision: str = "auto"
    """``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, more time."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights, for large models."""
    lora_r: int = 8
    """Rank of the LoRA adapters."""
    early_stopping_patience: int = 0
    """Validation checks without improvement before stopping; 0 disables."""
    eval_every: int = 0
    """Steps between validation checks when early stopping; 0 = once per epoch."""
    seed: int = 0
    """Seed of the fine-tuning (torch's generator: batch order, dropout, adapters) and the fits."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding, same examples
    per epoch, batch order still shuffled)."""

    def __post_init__(self) -> None:
        _check(self.learning_rate > 0, "train.learning_rate must be positive")
        _check(self.batch_size >= 1, "train.batch_size must be at least 1")
        _check(self.epochs > 0, "train.epochs must be positive")
        _check(self.min_steps >= 0, "train.min_steps must be non-negative")
        _check(0 <= self.warmup_ratio < 1, "train.warmup_ratio must be in [0, 1)")
        _check(self.weight_decay >= 0, "train.weight_decay must be non-negative")
        _check(
            self.precision in ("auto", "bf16", "fp32"),
            f"train.precision must be auto, bf16 or fp32, not {self.precision!r}",
        )
        _check(self.lora_r >= 1, "train.lora_r must be at least 1")
        _check(self.early_stopping_patience >= 0, "train.early_stopping_patience must be >= 0")


@dataclass
class NTKConfig:
    """The empirical-NTK probe that informs the LensLLM law's F(Theta, t)."""

    enabled: bool = field(default=True, metadata={"flag": "ntk"})
    """Probe the empirical NTK of every model before its first point (off: the law's F is free)."""
    probe_size: int = 32
    """Examples in the NTK probe set (the kernel is probe_size x probe_size)."""
    projection_dim: int | None = None
    """Randomly project per-example gradients to this many dimensions. None (the default)
    chooses: the exact kernel where the probe's gradients fit in memory, else a
    16,384-wide CountSketch (core/training/ntk.py), which keeps 0.1B-8B models cheap."""
    seed: int = field(default=0, metadata={"flag": "ntk-seed"})
    """Seed of the probe set and of the random projection."""
    max_ladder_fraction: float = field(default=0.05, metadata={"flag": "ntk-max-fraction"})
    """Most of one model's ladder compute (FLOPs) its probe may cost: the probe set is cut to
    fit, and a ladder too short for even 2 probe examples leaves the law's F free."""

    def __post_init__(self) -> None:
        _check(self.probe_size >= 2, "ntk.probe_size must be at least 2")
        _check(
            self.projection_dim is None or self.projection_dim >= 1,
            "ntk.projection_dim must be at least 1",
        )
        _check(
            math.isfinite(self.max_ladder_fraction) and self.max_ladder_fraction > 0,
            "ntk.max_ladder_fraction must be positive",
        )


@dataclass
class AdaptiveRunConfig:
    """The adaptive policy's knobs on a live run (used when ``policy = "adaptive"``).

    Defaults match ``core.policy.adaptive.AdaptiveConfig`` except the budget. There the
    default cap is 5% of full fine-tuning, a budget for a user's real job, where
    the ladder is cheap next to the target (a ladder to 3200 samples against a
    target of 100,000+ costs about 6% of fine-tuning every candidate at the
    target, so the cap decides how much of it runs). Live runs default to no cap
    because the ladder itself already bounds the spend, and on short demo runs
    a 5% cap would stop before any model could be judged: the default ladder
    200..1600 against the default target 6400 costs about 0.47 of full
    fine-tuning, and its first two rungs alone cost 0.09. Set ``budget`` to
    spend at most that fraction; the run then stops when the next point would
    exceed it.
    """

    confidence: float = 0.9
    """Two-sided confidence of the intervals elimination compares; higher is safer and costlier."""
    budget: float | None = None
    """Most compute to spend, as a fraction of full fine-tuning (every candidate once at
    the target size); None: no cap (the ladder bounds the spend)."""
    gamma: float = 0.01
    """A fit is stable when its predicted target loss moved by at most this fraction."""
    tau: int = 2
    """A model stops getting points after this many successive stable fits."""
    min_points: int | None = None
    """Fine-tuned points a model needs before it may be eliminated or stopped; None:
    all but the last ladder size (between 2 and 4)."""
    schedule: str | None = None
    """Which survivor gets the next point (SCHEDULES: ``halving``,
    ``challenger``, ``compute``, ``size``); None: the policy's default."""

    def __post_init__(self) -> None:
        _check(0 < self.confidence < 1, "adaptive.confidence must be in (0, 1)")
        _check(
            self.budget is None or 0 < self.budget <= 1,
            "adaptive.budget must be a fraction in (0, 1] of full fine-tuning, or none",
        )
        _check(0 < self.gamma < 1, "adaptive.gamma must be in (0, 1)")
        _check(self.tau >= 1, "adaptive.tau must be at least 1")
        _check(
            self.min_points is None or self.min_points >= 2,
            "adaptive.min_points must be at least 2",
        )
        if self.schedule is not None:
            _check(
                self.schedule in SCHEDULES,
                f"adaptive.schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}",
            )

    def min_points_for(self, ladder: int) -> int:
        """``min_points``, or by default all but the last of ``ladder`` sizes (2 to 4)."""
        if self.min_points is not None:
            return self.min_points
        return max(2, min(4, ladder - 1))


EXECUTORS: tuple[str, ...] = ("auto", "local", "pool", "ray")
"""Where points train: ``auto`` picks ``pool`` on a box with more than one GPU, else ``local``."""


@dataclass
class ExecutorConfig:
    """Where the points of a run are trained (``[executor]``); never part of a point's identity.

    The driver keeps the policy and the store whatever runs the points, and a point
    trains the same on every backend, so a run may be resumed with another executor.
    """

    backend: str = field(default="auto", metadata={"flag": "executor"})
    """``local`` (in this process, one point at a time), ``pool`` (one spawned worker
    process per device), ``ray`` (Ray actors on a cluster or a local instance), or
    ``auto``: pool on a box with more than one GPU, else local."""
    workers: int | None = None
    """Workers for pool and ray; None: one per visible GPU (a CPU-only run: one per core;
    ray on a cluster: as many as its GPUs, else its CPUs, allow)."""
    threads: int | None = None
    """Torch threads per worker (and CPUs a Ray worker reserves); None: the cores shared
    out evenly among the workers, at least 1."""
    retries: int = field(default=2, metadata={"flag": "worker-retries"})
    """Times a point is retried on another worker after its worker died (SIGKILL, a lost
    Ray node) before its model fails. Out-of-memory retries, which halve the
    micro-batch, are not counted: they stop at a micro-batch of 1."""
    ray_address: str | None = None
    """Ray cluster to join (``host:6379``, or ``ray://host:10001`` through Ray Client);
    None: $RAY_ADDRESS, else a local Ray instance started for the run."""
    gpus_per_worker: float | None = None
    """GPUs each Ray worker holds (fractions share a GPU); None: 1 when the cluster has
    GPUs, else 0."""

    def __post_init__(self) -> None:
        _check(
            self.backend in EXECUTORS,
            f"executor.backend must be one of {', '.join(EXECUTORS)}, not {self.backend!r}",
        )
        _check(self.workers is None or self.workers >= 1, "executor.workers must be at least 1")
        _check(self.threads is None or self.threads >= 1, "executor.threads must be at least 1")
        _check(self.retries >= 0, "executor.retries must be non-negative")
        _check(
            self.gpus_per_worker is None or self.gpus_per_worker >= 0,
            "executor.gpus_per_worker must be non-negative",
        )


@dataclass
class RunConfig:
    """A whole run: candidates, data, ladder, target, training and where to write."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    """Candidates: ``tiny:NAME`` (the built-in zoo), Hugging Face ids or local paths."""
    data: DataConfig = field(default_factory=DataConfig)
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    """The ladder: training-subset sizes every candidate is fine-tuned on."""
    target: int = DEFAULT_TARGET
    """Full dataset size the ranking predicts the test loss at."""
    train: TrainConfig = field(default_factory=TrainConfig)
    ntk: NTKConfig = field(default_factory=NTKConfig)
    policy: str = "ladder"
    """``ladder`` (every size for every model) or ``adaptive`` (stop early)."""
    selector: str = "lensllm"
    """How the curves become a ranking: ``lensllm`` (the LensLLM law) or a baseline
    selector (``ats``, ``rectified``, ``vanilla``, ``subtuning``, ``zeroshot``, ``modelsize``)."""
    out_dir: str | None = field(default=None, metadata={"flag": "out"})
    """Results directory; None makes a new one under ./runs/."""
    device: str = "auto"
    """``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``."""
    adaptive: AdaptiveRunConfig = field(default_factory=AdaptiveRunConfig)
    """The adaptive policy's confidence, budget and thresholds (``policy = "adaptive"``)."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Where points train: in this process, a pool of worker processes, or Ray."""

    def __post_init__(self) -> None:
        # TOML round trips hand us plain dicts; build (and type-check) their sections.
        for name, kind in sections().items():
            if isinstance(value := getattr(self, name), dict):
                setattr(self, name, _build_section(name, kind, value))
        self.models = list(self.models)
        self.sizes = sorted(int(s) for s in self.sizes)
        _check(len(self.models) >= 1, "at least one model is needed")
        _check(len(set(self.models)) == len(self.models), "models must not repeat")
        _check(len(self.sizes) >= 1, "at least one ladder size is needed")
        _check(all(s > 0 for s in self.sizes), "ladder sizes must be positive")
        _check(len(set(self.sizes)) == len(self.sizes), "ladder sizes must not repeat")
        _check(
            self.target > self.sizes[-1],
            f"target ({self.target}) must be above the largest ladder size ({self.sizes[-1]})",
        )
        _check(
            self.policy in ("ladder", "adaptive"),
            f"policy must be 'ladder' or 'adaptive', not {self.policy!r}",
        )
        _check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            f"device must be auto, cpu or cuda[:N], not {self.device!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict; None values are dropped (TOML has no null)."""
        return _drop_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from a nested dict (parsed TOML), naming any unknown key or mistyped value."""
        hints = _hints(cls)
        unknown = sorted(set(raw) - set(hints))
        _check(not unknown, f"unknown config key(s): {', '.join(unknown)}")
        tables = sections()
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in tables:
                _check(isinstance(value, dict), f"[{key}] must be a table")
                values[key] = _build_section(key, tables[key], value)
            else:
                values[key] = typed(value, hints[key], key)
        return cls(**values)

    def save_toml(self, path: str | Path) -> None:
        Path(path).write_text(tomli_w.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load_toml(cls, path: str | Path) -> RunConfig:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"{p}: a directory, not a config file (TOML)")
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{p}: not a TOML text file (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start} is not UTF-8)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
        return cls.from_dict(raw)


@dataclass(frozen=True)
class ConfigKey:
    """One TOML key as declared above: its table, name, type, default and meaning."""

    section: str | None
    """The ``[table]`` it lives in; None for the top level."""
    name: str
    type: Any
    default: Any
    doc: str
    """The attribute docstring, on one line."""
    flag: str = ""
    """The command-line flag's name when it is not the key's (``out`` for ``out_dir``)."""
    aliases: tuple[str, ...] = ()
    """Customary short names (``lr`` for ``learning_rate``)."""

    @property
    def where(self) -> str:
        """How messages name the key: ``[train] batch_size`` or ``sizes``."""
        return self.name if self.section is None else f"[{self.section}] {self.name}"


def sections() -> dict[str, type]:
    """RunConfig's tables (``[data]``, ``[train]`` ...): its fields that are dataclasses."""
    hints = _hints(RunConfig)
    return {name: kind for name, kind in hints.items() if dataclasses.is_dataclass(kind)}


def config_keys() -> list[ConfigKey]:
    """Every key a run configuration has, top level first, then table by table.

    Read from the dataclasses themselves (types, defaults, attribute docstrings,
    field metadata), so a field added above is a TOML key, a type check and a
    command-line flag without being named anywhere else.
    """
    tables = sections()
    keys = [k for k in _keys(None, RunConfig) if k.name not in tables]
    for name, kind in tables.items():
        keys += _keys(name, kind)
    return keys


def _keys(section: str | None, kind: type) -> list[ConfigKey]:
    hints, docs, default = _hints(kind), _attribute_docs(kind), kind()
    return [
        ConfigKey(
            section,
            f.name,
            hints[f.name],
            getattr(default, f.name),
            docs.get(f.name, ""),
            f.metadata.get("flag", ""),
            tuple(f.metadata.get("aliases", ())),
        )
        for f in dataclasses.fields(kind)
    ]


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    """Field name -> resolved annotation (this module uses postponed annotations)."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


@functools.cache
def _attribute_docs(kind: type) -> dict[str, str]:
    """The string literal after each field of ``kind``'s class body, by field name.

    Python keeps no attribute docstrings at run time, so they are read back from
    the source, which is where they are written for readers anyway.
    """
    body = ast.parse(textwrap.dedent(inspect.getsource(kind))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body.body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _build_section(name: str, kind: type, raw: dict[str, Any]) -> Any:
    hints = _hints(kind)
    bad = sorted(set(raw) - set(hints))
    _check(not bad, f"unknown key(s) in [{name}]: {', '.join(bad)}")
    return kind(**{k: typed(v, hints[k], f"[{name}] {k}") for k, v in raw.items()})


def typed(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against the annotation ``kind``; ints widen to floats.

    TOML and JSON give bools, ints, floats, strings and lists, and Python would
    take ``batch_size = 2.5`` or ``lora = "yes"`` without a word (``"yes"`` is
    truthy), so each value is checked before a dataclass sees it. ``where``
    names the key in the one-line error: ``[train] batch_size``.
    """
    if value is None and unwrap_optional(kind) is not None:
        return None
    inner = unwrap_optional(kind) or kind
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        ok = isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
        _check(ok, f"{where} must be {describe(inner)}, not {value!r}")
        return [float(v) if item is float else v for v in value]
    _check(_fits(value, inner), f"{where} must be {describe(inner)}, not {value!r}")
    return float(value) if inner is float else value


def unwrap_optional(kind: Any) -> Any:
    """``X`` for an ``X | None`` annotation, else None (``kind`` is not optional)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else None
    return None


def _fits(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typing.get_origin(kind) is typing.Literal:
        return any(_fits(value, type(v)) and value == v for v in typing.get_args(kind))
    origin = typing.get_origin(kind) or kind
    return isinstance(value, origin) if isinstance(origin, type) else True


def describe(kind: Any) -> str:
    """An annotation in words, for messages and help: ``a list of integers such as [200, 400]``."""
    if (inner := unwrap_optional(kind)) is not None:
        return f"{describe(inner)} or 'none'"
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        example = "[200, 400]" if item is int else '["a", "b"]'
        return f"a list of {_NAMES.get(item, 'value')}s such as {example}"
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(kind, "a table" if (typing.get_origin(kind) or kind) is dict else str(kind))


_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
