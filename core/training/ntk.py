"""Empirical NTK of a pretrained language model on a probe set, and its spectrum.

The LensLLM law's F(Theta, t) needs Theta = G G^T, where row i of G is the
gradient of probe example i's mean token cross-entropy (over its labelled
tokens) with respect to the trainable parameters, and r0, those per-example
losses themselves. This module computes both, then hands them to
core.science.spectrum.NTKSpectrum, which is all the numpy-only curve science sees.

Per-example gradients come from torch.func (functional_call + vmap over grad),
one vectorised pass per chunk of examples. Hugging Face models whose forward has
data-dependent control flow (e.g. a padding mask checked with ``.all()``) cannot
be vmapped; the first such error switches to one backward per example, and the
result says which path ran and why.

Memory stays bounded: examples are processed in chunks so that a chunk's
gradients stay under ``max_chunk_bytes``; with ``projection_dim=k`` each chunk's
gradients are projected to k dimensions block by block, each block's random
(rows x k) matrix regenerated on the fly from a generator seeded by (seed, block),
so no parameters-by-k matrix is ever held. The exact kernel needs all n
gradients at once and refuses (with a reason) beyond ``max_exact_bytes``.

Real LLMs (0.1B-8B parameters) need neither: ``projection_dim="auto"`` keeps the
exact kernel where the n gradients fit (under ``max_exact_bytes`` and a quarter
of the device's free memory) and otherwise sketches each gradient as it is
produced with a CountSketch (Charikar, Chen and Farach-Colton, 2002; the
sketch of Woodruff's "Sketching as a tool for numerical linear algebra", 2014):
every parameter is hashed to one of k buckets with a random sign, so
E[<Sg_i, Sg_j>] = <g_i, g_j> while the cost is one pass over the gradient (no
params x k matrix, no random numbers per parameter: the hash is a seeded
multiply-shift of the parameter's index). The probe then costs what n forward
and backward passes cost, a few percent of a ladder of a few thousand samples.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from core.errors import NTKError, one_line
from core.science.spectrum import NTKSpectrum
from core.training.models import memory_available

PATHS = ("auto", "vmap", "backward")

_SDPA_FALLBACK_NOTE = (
    r"There is a performance drop because we have not yet implemented the batching rule"
)
PROJECTIONS = ("rademacher", "gaussian", "countsketch")
AUTO_SKETCH_DIM = 16384
"""Sketch width ``projection_dim="auto"`` uses when the exact kernel does not fit: the
relative error of a sketched inner product is about sqrt(2 / k), under 1.2% here,
while the sketch costs n x k floats whatever the model size."""
DEFAULT_MAX_CHUNK_BYTES = 256 * 2**20
DEFAULT_MAX_BLOCK_BYTES = 64 * 2**20
DEFAULT_MAX_EXACT_BYTES = 4 * 2**30


@dataclass(frozen=True)
class NTKResult:
    """A computed kernel with what it cost and how it was computed."""

    theta: torch.Tensor
    """n x n kernel, float64 on the CPU, symmetric positive semi-definite."""
    r0: torch.Tensor
    """Per-example losses of the model as given (float64, CPU)."""
    path: str
    """``vmap`` (torch.func) or ``backward`` (one backward per example)."""
    fallback_reason: str
    """Why vmap was not used ('' when it was, or when ``backward`` was asked for)."""
    seconds: float
    peak_memory_bytes: int | None
    """Peak CUDA allocation during the call, or peak RSS growth on the CPU."""
    memory_kind: str
    """``cuda_allocated``, ``rss`` or ``''`` (not measured)."""
    num_params: int
    """Number of scalar parameters the gradients are taken over."""
    total_params: int
    """Every parameter of the model (what a forward and backward pass costs)."""
    n: int
    tokens: int
    """Tokens the probe forward passes run over (after truncation)."""
    projection_dim: int | None
    projection: str
    """``exact``, or the projection used (``countsketch`` when chosen automatically)."""
    truncated: bool
    """Whether any probe example was cut to the model's context length."""
    flops: float
    """Estimate: 6 x model params x tokens (forward+backward) + projection + Gram."""

    @property
    def spectrum(self) -> NTKSpectrum:
        return NTKSpectrum.from_kernel(self.theta.numpy(), self.r0.numpy())


def empirical_ntk(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    params: Mapping[str, torch.Tensor] | Iterable[str] | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """The n x n empirical NTK of ``model`` on ``batch`` (see :func:`probe_ntk`)."""
    return probe_ntk(model, batch, params=params, projection_dim=projection_dim, seed=seed).theta


def compute_spectrum(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    params: Mapping[str, torch.Tensor] | Iterable[str] | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
) -> NTKSpectrum:
    """Eigenvalues of the NTK and the weights (u_k . r0)^2 of the initial losses."""
    return probe_ntk(model, batch, params=params, projection_dim=projection_dim, seed=seed).spectrum


def probe_ntk(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    params: Mapping[str, torch.Tensor] | Iterable[str] | None = None,
    projection_dim: int | str | None = None,
    seed: int = 0,
    path: str = "auto",
    projection: str = "rademacher",
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    max_exact_bytes: int = DEFAULT_MAX_EXACT_BYTES,
    max_cost_examples: float | None = None,
) -> NTKResult:
    """Compute the empirical NTK and the initial losses, with cost and path.

    ``batch`` holds input_ids, attention_mask and labels (-100 where ignored);
    for encoder-decoder models the labels are the decoder labels. ``params``
    selects the parameters (a name -> tensor mapping such as a filtered
    ``dict(model.named_parameters())``, or names); by default every parameter
    with requires_grad, which for a peft model is its LoRA adapters.
    ``path`` forces ``vmap`` or ``backward``; ``auto`` tries vmap first.
    ``projection_dim`` None is the exact kernel, an int a random projection of
    that width (``projection``), ``"auto"`` the choice of :func:`auto_projection`.
    ``max_cost_examples`` caps the probe at the FLOPs of training on that many
    examples (the run passes its share of the ladder): the probe keeps the first
    examples that fit, and refuses when not even two do.
    """
    if path not in PATHS:
        raise NTKError(f"path must be one of {', '.join(PATHS)}, not {path!r}")
    if projection not in PROJECTIONS:
        raise NTKError(f"projection must be one of {', '.join(PROJECTIONS)}, not {projection!r}")
    names = _select_params(model, params)
    device = next(iter(model.parameters())).device
    inputs, truncated = _prepare(model, batch, device)
    num_params = sum(_param(model, nm).numel() for nm in names)
    elem = _param(model, names[0]).element_size()
    total = sum(p.numel() for p in model.parameters())
    if max_cost_examples is not None:
        inputs = _within_cost(
            inputs,
            max_cost_examples,
            (total, num_params, elem),
            device,
            (projection_dim, projection),
            max_exact_bytes,
        )
    n = int(inputs["input_ids"].shape[0])
    projection_dim, projection = _resolve_projection(
        projection_dim, projection, n, num_params, elem, device, max_exact_bytes
    )
    chunk = max(1, min(n, max_chunk_bytes // max(1, num_params * elem)))

    # Restore each submodule's own mode afterwards: model.train(flag) would, e.g.,
    # switch on the dropout of a peft model whose base was left in eval mode.
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    meter = _PeakMemory(device)
    start = time.perf_counter()
    try:
        with meter:
            _check_lm(model, inputs)
            chunks, used, reason = _gradients(model, inputs, names, chunk, path)
            if projection_dim is None:
                theta, r0 = _exact_kernel(chunks, names)
            elif projection == "countsketch":
                theta, r0 = _sketched_kernel(chunks, names, projection_dim, seed, max_block_bytes)
            else:
                theta, r0 = _projected_kernel(
                    chunks, names, projection_dim, seed, projection, max_block_bytes
                )
    finally:
        for module, mode in modes:
            module.training = mode
    seconds = time.perf_counter() - start
    theta = 0.5 * (theta + theta.T)
    tokens = _tokens(inputs)
    flops = probe_flops(n, tokens, total, num_params, projection_dim, projection)
    return NTKResult(
        theta=theta,
        r0=r0,
        path=used,
        fallback_reason=reason,
        seconds=seconds,
        peak_memory_bytes=meter.peak,
        memory_kind=meter.kind,
        num_params=num_params,
        total_params=total,
        n=n,
        tokens=tokens,
        projection_dim=projection_dim,
        projection="exact" if projection_dim is None else projection,
        truncated=truncated,
        flops=flops,
    )


def _resolve_projection(
    projection_dim: int | str | None,
    projection: str,
    n: int,
    num_params: int,
    elem: int,
    device: torch.device,
    max_exact_bytes: int,
) -> tuple[int | None, str]:
    """The projection width and kind a probe of ``n`` examples runs with.

    ``"auto"`` becomes :func:`auto_projection`'s choice (a count sketch when it
    projects); an exact kernel whose gradients would not fit ``max_exact_bytes``
    is refused with the size it would need.
    """
    if projection_dim == "auto":
        projection_dim = auto_projection(n, num_params, elem, device, max_exact_bytes)
        if projection_dim is not None:
            projection = "countsketch"
    if isinstance(projection_dim, str) or (projection_dim is not None and projection_dim < 1):
        raise NTKError(f"projection_dim must be 'auto' or at least 1, not {projection_dim!r}")
    if projection_dim is None and n * num_params * elem > max_exact_bytes:
        raise NTKError(
            f"the exact NTK would hold {n * num_params * elem / 2**30:.1f} GiB of gradients "
            f"({n} examples x {num_params:,} parameters); set a projection_dim"
        )
    return projection_dim, projection


def probe_flops(
    n: int,
    tokens: int,
    total_params: int,
    num_params: int,
    projection_dim: int | None,
    projection: str,
) -> float:
    """Estimated FLOPs of a probe: n forward and backward passes, the projection, the Gram.

    One forward and backward pass costs what a training step costs per token
    (6 x parameters), which makes the probe comparable with the ladder's FLOPs.
    """
    width = projection_dim or num_params
    flops = 6.0 * total_params * tokens + 2.0 * n * n * width
    if projection == "countsketch" and projection_dim is not None:
        flops += 8.0 * n * num_params  # hash, sign, scale and scatter per gradient entry
    elif projection_dim is not None:
        flops += 2.0 * n * num_params * projection_dim
    return flops


def _tokens(inputs: Mapping[str, torch.Tensor]) -> int:
    tokens = int(inputs["input_ids"].numel())
    if "decoder_input_ids" in inputs:
        tokens += int(inputs["decoder_input_ids"].numel())
    return tokens


def _within_cost(
    inputs: dict[str, torch.Tensor],
    max_cost_examples: float,
    sizes: tuple[int, int, int],
    device: torch.device,
    projecting: tuple[int | str | None, str],
    max_exact_bytes: int,
) -> dict[str, torch.Tensor]:
    """The first examples whose probe costs at most ``max_cost_examples`` training examples.

    Cost is counted as :func:`probe_flops` counts it, against 6 x parameters x
    tokens per example for each training example, so the fraction the run
    reports afterwards is the one bounded here. Fewer than two examples give no
    kernel worth fitting: that is an NTKError, and the law's F stays free.
    """
    total, num_params, elem = sizes
    projection_dim, projection = projecting
    n = int(inputs["input_ids"].shape[0])
    per_example = _tokens(inputs) / n
    budget = 6.0 * total * per_example * max_cost_examples
    for m in range(n, 1, -1):
        dim, kind = projection_dim, projection
        if dim == "auto":
            dim = auto_projection(m, num_params, elem, device, max_exact_bytes)
            kind = projection if dim is None else "countsketch"
        assert not isinstance(dim, str)
        cost = probe_flops(m, round(m * per_example), total, num_params, dim, kind)
        if cost <= budget:
            return {k: v[:m] for k, v in inputs.items()}
    raise NTKError(
        "even 2 probe examples cost more than the probe's share of the ladder (the compute "
        f"of {max_cost_examples:.3g} training examples); raise ntk.max_ladder_fraction"
    )


def auto_projection(
    n: int,
    num_params: int,
    elem: int,
    device: torch.device,
    max_exact_bytes: int = DEFAULT_MAX_EXACT_BYTES,
) -> int | None:
    """None (exact) when n gradients fit, else the CountSketch width ``AUTO_SKETCH_DIM``.

    "Fit" means under ``max_exact_bytes`` and under a quarter of the memory free
    on ``device`` (the rest is for the model, its activations and one backward).
    """
    need = n * num_params * elem
    free = memory_available(device)
    limit = max_exact_bytes if free is None else min(max_exact_bytes, free // 4)
    if need <= limit:
        return None
    return min(AUTO_SKETCH_DIM, num_params)


def context_length(model: torch.nn.Module) -> int | None:
    """The longest input the model's position scheme allows, if it has a limit."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# --------------------------------------------------------------------------- inputs


def _param(model: torch.nn.Module, name: str) -> torch.Tensor:
    return model.get_parameter(name)


def _select_params(
    model: torch.nn.Module, params: Mapping[str, torch.Tensor] | Iterable[str] | None
) -> list[str]:
    available = dict(model.named_parameters())
    if params is None:
        names = [nm for nm, p in available.items() if p.requires_grad]
        if not names:
            raise NTKError("the model has no trainable parameters (none requires grad)")
        return names
    if isinstance(params, str):
        raise NTKError("params must be names or a name -> tensor mapping, not one string")
    names = list(params.keys()) if isinstance(params, Mapping) else list(params)
    if not names:
        raise NTKError("params selects no parameters")
    unknown = [nm for nm in names if nm not in available]
    if unknown:
        raise NTKError(f"unknown parameter name(s): {', '.join(unknown[:3])}")
    if isinstance(params, Mapping):
        stale = [nm for nm in names if params[nm] is not available[nm]]
        if stale:
            raise NTKError(f"params[{stale[0]!r}] is not the model's own parameter tensor")
    return list(dict.fromkeys(names))


def _is_seq2seq(model: torch.nn.Module) -> bool:
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def _prepare(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[dict[str, torch.Tensor], bool]:
    """Check the batch, truncate to the context, build decoder inputs."""
    missing = [k for k in ("input_ids", "labels") if k not in batch]
    if missing:
        raise NTKError(f"the probe batch lacks {', '.join(missing)}")
    ids = torch.as_tensor(batch["input_ids"]).to(device)
    labels = torch.as_tensor(batch["labels"]).to(device)
    if ids.ndim != 2 or labels.ndim != 2 or ids.shape[0] != labels.shape[0]:
        raise NTKError("input_ids and labels must be (n, length) tensors with the same n")
    if ids.shape[0] < 1:
        raise NTKError("the probe batch is empty")
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).to(device)
    if mask.shape != ids.shape:
        raise NTKError(f"attention_mask {tuple(mask.shape)} does not match input_ids")
    seq2seq = _is_seq2seq(model)
    if not seq2seq and labels.shape != ids.shape:
        raise NTKError("for a causal model labels must have the shape of input_ids")
    limit = context_length(model)
    truncated = False
    if limit is not None and ids.shape[1] > limit:
        ids, mask, truncated = ids[:, :limit], mask[:, :limit], True
        if not seq2seq:
            labels = labels[:, :limit]
    if limit is not None and seq2seq and labels.shape[1] > limit:
        labels, truncated = labels[:, :limit], True
    target = labels if seq2seq else labels[:, 1:]
    empty = (target != -100).sum(dim=1) == 0
    if bool(empty.any()):
        i = int(torch.nonzero(empty)[0])
        raise NTKError(f"probe example {i} has no labelled tokens (after truncation)")
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if seq2seq:
        prep = getattr(model, "prepare_decoder_input_ids_from_labels", None)
        if prep is None:
            raise NTKError(f"{type(model).__name__} cannot build decoder inputs from labels")
        inputs["decoder_input_ids"] = prep(labels=labels)
        if "decoder_attention_mask" in batch:
            inputs["decoder_attention_mask"] = torch.as_tensor(batch["decoder_attention_mask"]).to(
                device
            )
    return inputs, truncated


def _forward_kwargs(model: torch.nn.Module, row: dict[str, torch.Tensor]) -> dict[str, object]:
    kw: dict[str, object] = {k: v for k, v in row.items() if k != "labels"}
    sig = inspect.signature(model.forward).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    if accepts_any or "use_cache" in sig:
        kw["use_cache"] = False
    return kw


def _logits(out: object) -> torch.Tensor:
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
        raise NTKError("the model has no language-modelling head (its output has no logits)")
    return logits


def _example_loss(logits: torch.Tensor, labels: torch.Tensor, seq2seq: bool) -> torch.Tensor:
    """Mean token cross-entropy over the labelled tokens of one example (batch of 1)."""
    logits, labels = logits[0], labels[0]
    if not seq2seq:  # position t predicts token t+1
        logits, labels = logits[:-1], labels[1:]
    keep = (labels != -100).to(torch.promote_types(logits.dtype, torch.float32))
    wide = torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 -> fp32, fp64 kept
    ce = torch.nn.functional.cross_entropy(logits.to(wide), labels.clamp(min=0), reduction="none")
    return (ce * keep).sum() / keep.sum()


def _check_lm(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    """One forward on the first example: a model without logits fails here, clearly."""
    row = {k: v[:1] for k, v in inputs.items()}
    try:
        with torch.no_grad():
            out = model(**_forward_kwargs(model, row))
    except NTKError:
        raise
    except Exception as exc:
        raise NTKError(f"forward pass failed: {one_line(exc)}") from exc
    logits = _logits(out)
    labels = row["labels"]
    if int(labels.max()) >= logits.shape[-1]:
        raise NTKError(f"labels exceed the model's vocabulary of {logits.shape[-1]}")


# --------------------------------------------------------------------------- gradients


def _chunks(n: int, size: int) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


Chunk = tuple[dict[str, torch.Tensor], torch.Tensor]
"""Per-example gradients (name -> (c, *shape)) and the c losses of one chunk."""


def _gradients(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    names: list[str],
    chunk: int,
    path: str,
) -> tuple[Iterator[Chunk], str, str]:
    """Per-example gradients chunk by chunk, and the path used (with why, if not vmap).

    The first chunk is computed eagerly so that a vmap failure is caught once, up
    front; the rest are produced lazily so only one chunk is alive at a time.
    """
    n = int(inputs["input_ids"].shape[0])
    slices = list(_chunks(n, chunk))
    used, reason = path, ""
    first: Chunk | None = None
    if path in ("auto", "vmap"):
        try:
            first = _vmap_chunk(model, inputs, names, slices[0])
            used = "vmap"
        except NTKError:
            raise
        except Exception as exc:
            if path == "vmap":
                raise NTKError(f"vmap path failed: {one_line(exc)}") from exc
            used, reason = "backward", one_line(exc)
    if first is None:
        first = _backward_chunk(model, inputs, names, slices[0])
    fn = _vmap_chunk if used == "vmap" else _backward_chunk
    _check_finite(first, names, 0)

    def produce(first: Chunk) -> Iterator[Chunk]:
        yield first
        del first
        for sl in slices[1:]:
            got = fn(model, inputs, names, sl)
            _check_finite(got, names, sl.start)
            yield got

    return produce(first), used, reason


def _row_inputs(
    inputs: dict[str, torch.Tensor], sl: slice
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The chunk's per-example tensors, and tensors shared by every example.

    When the padding cannot change the loss (see ``_padding_matters``) the
    per-example attention mask is replaced by one all-ones row shared across the
    vmapped examples: Hugging Face checks masks (and, without one, the input ids
    for pad tokens) with data-dependent control flow, which vmap cannot trace on
    a batched tensor but runs fine on an unbatched one.
    """
    rows = {k: v[sl] for k, v in inputs.items()}
    shared: dict[str, torch.Tensor] = {}
    mask = rows.get("attention_mask")
    if mask is not None and not _padding_matters(mask, rows["labels"], inputs):
        rows.pop("attention_mask")
        shared["attention_mask"] = torch.ones_like(mask[:1])
    return rows, shared


def _padding_matters(
    mask: torch.Tensor, labels: torch.Tensor, inputs: dict[str, torch.Tensor]
) -> bool:
    """Whether attending to the padding could change any example's loss.

    An all-ones mask has no padding. For a decoder-only model, right padding whose
    labels are ignored changes nothing either: causal attention never lets a real
    token see the pads after it, and the positions of real tokens are the same.
    """
    if bool((mask == 1).all()):
        return False
    if "decoder_input_ids" in inputs:
        return True
    right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all()) and bool((mask[:, 0] == 1).all())
    pads_ignored = bool((labels[mask == 0] == -100).all())
    return not (right_padded and pads_ignored)


def _vmap_chunk(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], names: list[str], sl: slice
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    seq2seq = _is_seq2seq(model)
    rows, shared = _row_inputs(inputs, sl)
    keys = sorted(rows)
    extra = {**_forward_kwargs(model, {}), **shared}

    def loss_fn(p: dict[str, torch.Tensor], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        row = {k: t.unsqueeze(0) for k, t in zip(keys, tensors, strict=True)}
        labels = row.pop("labels")
        out = functional_call(model, p, (), {**row, **extra})
        loss = _example_loss(_logits(out), labels, seq2seq)
        return loss, loss.detach()

    detached = {nm: _param(model, nm).detach() for nm in names}
    in_dims = (None, *([0] * len(keys)))
    # Under no_grad the outer autograd graph is not built; torch.func.grad still
    # differentiates (it ignores an enclosing no_grad by design).
    with torch.no_grad(), warnings.catch_warnings():
        # torch notes, once per op, that vmap falls back to a loop for CPU SDPA; the
        # cost is what bench_ntk.py measures, and the note only alarms users of a run.
        warnings.filterwarnings("ignore", message=_SDPA_FALLBACK_NOTE, category=UserWarning)
        g, loss = vmap(grad(loss_fn, has_aux=True), in_dims=in_dims)(
            detached, *(rows[k] for k in keys)
        )
    return g, loss.detach()


def _backward_chunk(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], names: list[str], sl: slice
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    seq2seq = _is_seq2seq(model)
    tensors = [_param(model, nm) for nm in names]
    frozen = [t for t in tensors if not t.requires_grad]
    for t in frozen:  # a chosen subset may include frozen weights
        t.requires_grad_(True)
    per: list[tuple[torch.Tensor, ...]] = []
    losses = []
    try:
        for i in range(sl.start, sl.stop):
            row = {k: v[i : i + 1] for k, v in inputs.items()}
            labels = row.pop("labels")
            with torch.enable_grad():
                out = model(**_forward_kwargs(model, row))
                loss = _example_loss(_logits(out), labels, seq2seq)
                gs = torch.autograd.grad(loss, tensors, allow_unused=True)
            per.append(
                tuple(
                    torch.zeros_like(t) if g is None else g
                    for g, t in zip(gs, tensors, strict=True)
                )
            )
            losses.append(loss.detach())
    finally:
        for t in frozen:
            t.requires_grad_(False)
    stacked = {nm: torch.stack([p[j] for p in per]) for j, nm in enumerate(names)}
    return stacked, torch.stack(losses)


def _check_finite(chunk: Chunk, names: list[str], offset: int) -> None:
    grads, loss = chunk
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        i = offset + int(torch.nonzero(bad)[0])
        raise NTKError(f"non-finite loss on probe example {i} (NaN/inf in weights or logits)")
    for nm in names:
        ok = torch.isfinite(grads[nm].flatten(1)).all(dim=1)
        if not bool(ok.all()):
            i = offset + int(torch.nonzero(~ok)[0])
            raise NTKError(f"non-finite gradient for probe example {i} in {nm}")


# --------------------------------------------------------------------------- kernels


def _exact_kernel(chunks: Iterable[Chunk], names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrix of the flattened gradients, accumulated in float64 by column block."""
    rows, losses = [], []
    for g, loss in chunks:
        rows.append(torch.cat([g[nm].flatten(1) for nm in names], dim=1))
        losses.append(loss.detach().double().cpu())
    big = torch.cat(rows, dim=0)
    del rows
    n = big.shape[0]
    theta = torch.zeros(n, n, dtype=torch.float64, device=big.device)
    step = max(1, DEFAULT_MAX_BLOCK_BYTES // (8 * n))
    for lo in range(0, big.shape[1], step):
        block = big[:, lo : lo + step].double()
        theta += block @ block.T
    return theta.cpu(), torch.cat(losses)


def _block_seed(seed: int, block: int) -> int:
    return (seed * 1_000_003 + block * 7_919 + 12_345) % (2**63 - 1)


def _projected_kernel(
    chunks: Iterable[Chunk],
    names: list[str],
    k: int,
    seed: int,
    kind: str,
    max_block_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrix of the gradients projected by a seeded random (params x k) matrix.

    The matrix is never formed: parameter blocks of at most ``max_block_bytes / (4k)``
    rows are visited in a fixed order and each block's rows are drawn from a
    generator seeded by (seed, block index), so the same seed gives the same
    projection whatever the chunking over examples. Entries are +-1/sqrt(k)
    (Rademacher) or N(0, 1/k), so E[Z Z^T] = G G^T.
    """
    rows_per_block = max(1, max_block_bytes // (4 * k))
    scale = 1.0 / math.sqrt(k)
    projected, losses = [], []
    for g, loss in chunks:
        losses.append(loss.detach().double().cpu())
        first = g[names[0]]
        gen = torch.Generator(device=first.device)
        z = torch.zeros(first.shape[0], k, dtype=torch.float32, device=first.device)
        block = 0
        for nm in names:
            flat = g[nm].flatten(1)
            for lo in range(0, flat.shape[1], rows_per_block):
                part = flat[:, lo : lo + rows_per_block].float()
                gen.manual_seed(_block_seed(seed, block))
                shape = (part.shape[1], k)
                if kind == "gaussian":
                    r = torch.randn(shape, generator=gen, device=part.device)
                else:
                    r = torch.randint(0, 2, shape, generator=gen, device=part.device)
                    r = r.to(torch.float32).mul_(2.0).sub_(1.0)
                z += part @ r
                block += 1
                del r
        projected.append((z * scale).double().cpu())
    zall = torch.cat(projected, dim=0)
    return zall @ zall.T, torch.cat(losses)


_HASH_MASK = (1 << 62) - 1

SKETCH_CACHE_BYTES = 2**30
"""Buckets and signs kept between examples (12 bytes a parameter: about 89M parameters);
beyond that they are recomputed per example, which costs a few elementwise passes."""


def _hash_constants(seed: int) -> tuple[int, int]:
    """Odd multiplier and offset of the multiply-shift hash, from ``seed``."""
    gen = np.random.default_rng(seed)
    a, b = (int(x) for x in gen.integers(1, 2**61, size=2))
    return a | 1, b


class _Sketch:
    """CountSketch of flattened gradients: bucket h(p) and sign s(p) of every parameter p.

    p is the parameter's index in the flattened, name-ordered gradient; with
    x = (a p + b) mod 2^62 the bucket is the top 31 bits of x scaled to [0, k) and
    the sign is bit 30 (multiply-shift hashing: the high bits of an odd multiple
    are the well-mixed ones). It depends only on (seed, p), so chunking over
    examples changes nothing.
    """

    def __init__(self, k: int, seed: int, rows: int) -> None:
        self.k = k
        self.a, self.b = _hash_constants(seed)
        self.rows = rows
        self._cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._cached_bytes = 0

    def _hash(
        self, lo: int, n: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (lo, f"{device}:{dtype}")
        got = self._cache.get(key)
        if got is not None:
            return got
        idx = torch.arange(lo, lo + n, dtype=torch.int64, device=device)
        x = (idx * self.a + self.b) & _HASH_MASK
        bucket = ((x >> 31) * self.k) >> 31
        sign = ((x >> 30) & 1).to(dtype).mul_(2).sub_(1)
        if self._cached_bytes + n * (8 + sign.element_size()) <= SKETCH_CACHE_BYTES:
            self._cache[key] = (bucket, sign)
            self._cached_bytes += n * (8 + sign.element_size())
        return bucket, sign

    def apply(self, grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
        """(c, k) sketches of a chunk's c gradients, float64 on the CPU."""
        first = grads[names[0]]
        z = torch.zeros(first.shape[0], self.k, dtype=torch.float32, device=first.device)
        offset = 0
        for nm in names:
            flat = grads[nm].flatten(1)
            for lo in range(0, flat.shape[1], self.rows):
                part = flat[:, lo : lo + self.rows].float()
                bucket, sign = self._hash(offset + lo, part.shape[1], part.device, part.dtype)
                z.index_add_(1, bucket, part * sign)
            offset += flat.shape[1]
        return z.double().cpu()


def _sketched_kernel(
    chunks: Iterable[Chunk], names: list[str], k: int, seed: int, max_block_bytes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrix of CountSketch-ed gradients (see ``_Sketch``), and the losses."""
    sketch = _Sketch(k, seed, max(1, max_block_bytes // 16))
    sketches, losses = [], []
    for g, loss in chunks:
        losses.append(loss.detach().double().cpu())
        sketches.append(sketch.apply(g, names))
    zall = torch.cat(sketches, dim=0)
    return zall @ zall.T, torch.cat(losses)


# --------------------------------------------------------------------------- cost


class _PeakMemory:
    """Peak CUDA allocation, or peak growth of the process RSS sampled every few ms."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak: int | None = None
        self.kind = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._max = 0

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_allocated"
        else:
            base = _rss()
            if base is not None:
                self._base = self._max = base
                self.kind = "rss"
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            now = _rss()
            if now is not None and now > self._max:
                self._max = now

    def __exit__(self, *exc: object) -> None:
        if self.kind == "cuda_allocated":
            torch.cuda.synchronize(self.device)
            self.peak = int(torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            now = _rss()
            self.peak = int(max(self._max, now or 0) - self._base)


def _rss() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


try:
    import os

    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
    _PAGE = 4096


def kernel_to_numpy(theta: torch.Tensor) -> np.ndarray:
    """A kernel as a float64 numpy array (for NTKSpectrum.from_kernel)."""
    return theta.detach().double().cpu().numpy()
