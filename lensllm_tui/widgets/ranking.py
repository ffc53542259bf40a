"""The ranking as a DataTable: one row per model, re-sorted as the ranking moves."""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import DataTable

from lensllm_tui.view import ModelView, RunView
from lensllm_tui.widgets.loss_chart import series_color

COLUMNS = ("#", "model", "pred.loss", "interval", "phase", "pts", "FLOPs", "status")


def _num(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "—"


def _flops(v: float) -> str:
    if v <= 0:
        return "—"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"


def row_cells(m: ModelView, total_sizes: int, color: str = "") -> tuple[str | Text, ...]:
    """The cells of one model's row; the name takes its chart colour (the legend)."""
    rank = str(m.rank) if m.rank is not None else "—"
    interval = (
        f"{_num(m.low)}–{_num(m.high)}" if math.isfinite(m.low) and math.isfinite(m.high) else "—"
    )
    phase = m.phase or "—"
    if m.transition is not None:
        phase = f"power@{m.transition}"
    points = f"{len([s for s in m.points if s > 0])}/{total_sizes}"
    status: str | Text = m.status
    if m.failed:
        status = Text("failed", style="bold red")
    elif m.eliminated:
        status = Text("eliminated", style="yellow")
    name = Text(m.name, style=f"bold {color}" if color else "")
    return (rank, name, _num(m.predicted), interval, phase, points, _flops(m.flops), status)


class RankingTable(DataTable):
    """Rank, model, predicted target loss with interval, phase, points, FLOPs, status."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, state: RunView) -> None:
        """Rebuild the rows in ranking order, keeping the cursor on the same model."""
        keep = self.selected_model()
        self.clear()
        order = list(state.models)
        for m in state.ordered():
            color = series_color(order.index(m.name))
            self.add_row(*row_cells(m, len(state.sizes), color), key=m.name)
        if keep is not None and keep in state.models:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def selected_model(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # the cursor can point past the end right after clear()
            return None
        return key.value if key is not None else None

    def rows_as_text(self) -> list[list[str]]:
        """The table as plain strings, top row first (what a user reads)."""
        out = []
        for row_key in self.rows:
            out.append([str(c) for c in self.get_row(row_key)])
        return out
