"""Loss curves and the benchmark wide-format table they are exchanged in.

One ``Curve`` per model: held-out test loss against training-set size, size 0
being the zero-shot loss. The wide format (``config name,0,200,...,size,family``)
is the one the published benchmark tables use, so the tool reads those tables
and writes its own runs the same way. Malformed tables raise ``CurveTableError``
with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.errors import CurveTableError
from core.science.spectrum import NTKSpectrum

NAME_COLUMN = "config name"


@dataclass(frozen=True)
class Curve:
    """A model's measured test losses by training-set size (ascending, 0 = zero-shot)."""

    model: str
    sizes: tuple[int, ...]
    losses: tuple[float, ...]
    params: float | None = None
    """Parameter count, when known (the ``size`` column)."""
    family: str = ""
    spectrum: NTKSpectrum | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.losses):
            raise ValueError(f"{self.model}: {len(self.sizes)} sizes but {len(self.losses)} losses")
        if list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"{self.model}: sizes must be strictly increasing")

    @property
    def x(self) -> np.ndarray:
        return np.asarray(self.sizes, dtype=np.float64)

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.losses, dtype=np.float64)

    def up_to(self, budget: int) -> Curve:
        """The points a selector with this sample budget may see (sizes <= budget)."""
        keep = [i for i, s in enumerate(self.sizes) if s <= budget]
        return replace(
            self,
            sizes=tuple(self.sizes[i] for i in keep),
            losses=tuple(self.losses[i] for i in keep),
        )

    def loss_at(self, size: int) -> float:
        """The measured loss at ``size``; KeyError if that point was not measured."""
        try:
            return self.losses[self.sizes.index(size)]
        except ValueError:
            raise KeyError(f"{self.model} has no point at size {size}") from None

    def valid(self) -> Curve:
        """Only the finite, positive points (a curve with gaps keeps the rest)."""
        keep = [i for i, v in enumerate(self.losses) if math.isfinite(v) and v > 0]
        return replace(
            self,
            sizes=tuple(self.sizes[i] for i in keep),
            losses=tuple(self.losses[i] for i in keep),
        )


def read_wide_csv(path: str | Path) -> list[Curve]:
    """Read a benchmark wide-format table; empty cells become missing points.

    Non-numeric, NaN or non-positive loss cells are rejected with the row and
    column named, since a silently dropped point changes a fitted law.
    """
    p = Path(path)
    if p.is_dir():
        raise CurveTableError(f"{p}: a directory, not a CSV file")
    if not p.is_file():
        raise CurveTableError(f"{p}: file not found")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CurveTableError(f"{p}: cannot read as CSV ({exc})") from None
    if not rows:
        raise CurveTableError(f"{p}: empty file")
    header = [h.strip() for h in rows[0]]
    size_cols = _size_columns(p, header)
    if NAME_COLUMN not in header:
        raise CurveTableError(
            f"{p}: no {NAME_COLUMN!r} column; the header must start with "
            f"'{NAME_COLUMN},0,200,...' so that model names are not taken from a loss column"
        )
    name_i = header.index(NAME_COLUMN)
    params_i = header.index("size") if "size" in header else None
    family_i = header.index("family") if "family" in header else None
    curves: list[Curve] = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        name = row[name_i].strip()
        if not name:
            raise CurveTableError(f"{p}:{line_no}: row has no model name")
        if name in seen:
            raise CurveTableError(f"{p}:{line_no}: model {name!r} appears twice")
        seen.add(name)
        sizes: list[int] = []
        losses: list[float] = []
        for col, size in size_cols:
            cell = row[col].strip()
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                raise CurveTableError(
                    f"{p}:{line_no}: {name} at size {size}: {cell!r} is not a number"
                ) from None
            if not math.isfinite(value) or value <= 0:
                raise CurveTableError(
                    f"{p}:{line_no}: {name} at size {size}: loss must be finite and positive, got {cell}"
                )
            sizes.append(size)
            losses.append(value)
        params = None
        if params_i is not None and row[params_i].strip():
            try:
                params = float(row[params_i])
            except ValueError:
                raise CurveTableError(
                    f"{p}:{line_no}: {name}: size {row[params_i]!r} is not a number"
                ) from None
        family = row[family_i].strip() if family_i is not None else ""
        order = np.argsort(sizes)
        curves.append(
            Curve(
                name,
                tuple(sizes[i] for i in order),
                tuple(losses[i] for i in order),
                params,
                family,
            )
        )
    if not curves:
        raise CurveTableError(f"{p}: no model rows")
    return curves


def _size_columns(path: Path, header: list[str]) -> list[tuple[int, int]]:
    """(column index, size) of every size column; a header that looks numeric must be one.

    A size header is a whole, non-negative number of samples ("0", "200"). A header
    such as "2e2", "200.5" or "-200" is refused rather than skipped: dropping that
    column would silently change every fitted law.
    """
    cols: list[tuple[int, int]] = []
    seen: dict[int, str] = {}
    for i, h in enumerate(header):
        if h.isdecimal() and h.isascii():
            size = int(h)
        elif _looks_numeric(h):
            raise CurveTableError(
                f"{path}: column header {h!r} is not a size (sizes are whole, non-negative "
                "numbers of samples, written as digits: 0,200,400,...)"
            )
        else:
            continue
        if size in seen:
            raise CurveTableError(f"{path}: size {size} has two columns ({seen[size]!r}, {h!r})")
        seen[size] = h
        cols.append((i, size))
    if not cols:
        raise CurveTableError(f"{path}: no numeric size columns (expected '0,200,400,...')")
    return cols


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_wide_csv(path: str | Path, curves: Sequence[Curve]) -> None:
    """Write curves in the benchmark wide format; missing points are empty cells."""
    sizes = sorted({s for c in curves for s in c.sizes})
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([NAME_COLUMN, *map(str, sizes), "size", "family"])
        for c in curves:
            by_size = dict(zip(c.sizes, c.losses, strict=True))
            cells = [repr(by_size[s]) if s in by_size else "" for s in sizes]
            params = "" if c.params is None else str(int(c.params))
            w.writerow([c.model, *cells, params, c.family])
