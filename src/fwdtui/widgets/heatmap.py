"""The heatmap: a matrix (attention pattern, similarities) with labelled axes, legend and a cursor.

Small matrices get wide cells (two columns per value, one line per row, square-looking); large
ones get half-block cells (one column per value, two rows per line: `▀` with the upper row as
foreground and the lower as background). Larger still, a window around the cursor is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from fwdtui.widgets.palette import (
    ACCENT,
    DIM,
    MASKED,
    MASKED_FG,
    cell_style,
    colours_for,
    legend,
    value_range,
)

LABEL_WIDTH = 10


@dataclass(frozen=True)
class HeatmapData:
    """What a heatmap draws; `mask` is True where a cell is hidden (the causal mask's future)."""

    values: np.ndarray  # [n_rows, n_cols]
    row_labels: tuple[str, ...] = ()
    col_labels: tuple[str, ...] = ()
    mask: np.ndarray | None = None
    palette: str = "sequential"
    vmin: float | None = None
    vmax: float | None = None
    title: str = ""
    row_name: str = "row"
    col_name: str = "col"
    fmt: str = "{:.3f}"


def _window(n: int, size: int, cursor: int) -> tuple[int, int]:
    """Start and stop of a window of `size` over `n` items that keeps `cursor` inside."""
    if n <= size:
        return 0, n
    start = max(0, min(cursor - size // 2, n - size))
    return start, start + size


def _label(labels: Sequence[str], i: int, width: int) -> str:
    text = labels[i] if i < len(labels) else str(i)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_heatmap(data: HeatmapData, width: int, height: int, cursor: tuple[int, int] | None = None) -> Text:
    """The heatmap as text fitting `width` x `height` cells."""
    values = np.asarray(data.values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        return Text("(nothing to show)", style="italic")
    n_rows, n_cols = values.shape
    mask = data.mask if data.mask is not None else np.zeros(values.shape, dtype=bool)
    lo, hi = value_range(values, data.palette, mask)
    vmin = lo if data.vmin is None else data.vmin
    vmax = hi if data.vmax is None else data.vmax
    colours = colours_for(values, vmin, vmax, data.palette)
    r_cur, c_cur = cursor if cursor is not None else (-1, -1)

    label_w = min(LABEL_WIDTH, max([len(s) for s in data.row_labels] + [len(str(n_rows - 1))]))
    prefix_w = label_w + 2  # label, a space, the row marker
    # legend and axis note share a line when the width allows (about 70 columns)
    footer = (1 if width >= 72 else 2) + (cursor is not None)
    header = (1 if data.title else 0) + 1  # title, column axis
    grid_w = max(4, width - prefix_w)
    grid_h = max(1, height - header - footer)

    wide = n_cols * 2 <= grid_w and n_rows <= grid_h
    if wide:
        cell_w = 3 if n_cols * 3 <= grid_w and n_cols <= 12 else 2
        r0, r1 = 0, n_rows
        c0, c1 = 0, n_cols
    else:
        # half-block cells: one column per value is square; few columns get two for readability
        cell_w = 2 if n_cols * 2 <= grid_w and n_cols <= 40 else 1
        r0, r1 = _window(n_rows, grid_h * 2, max(r_cur, 0))
        c0, c1 = _window(n_cols, grid_w // cell_w, max(c_cur, 0))

    out = Text(no_wrap=True, overflow="crop")
    if data.title:
        out.append(data.title[:width], style="bold")
        out.append("\n")
    # column axis: an index every few columns and a marker over the cursor column
    axis = [" "] * ((c1 - c0) * cell_w)
    step = 5 if cell_w == 1 else (3 if cell_w == 2 else 2)
    for c in range(c0, c1):
        if (c - c0) % step == 0:
            for k, ch in enumerate(str(c)):
                pos = (c - c0) * cell_w + k
                if pos < len(axis):
                    axis[pos] = ch
    out.append(" " * prefix_w)
    for pos, ch in enumerate(axis):
        c = c0 + pos // cell_w
        out.append(ch, style=f"bold {ACCENT}" if c == c_cur else DIM)
    out.append("\n")

    def row_prefix(r: int, marked: bool) -> None:
        label = _label(data.row_labels, r, label_w).rjust(label_w)
        out.append(label, style="bold" if marked else DIM)
        out.append(" ▶" if marked else "  ", style=ACCENT)

    if wide:
        for r in range(r0, r1):
            row_prefix(r, r == r_cur)
            for c in range(c0, c1):
                if mask[r, c]:
                    out.append("·".center(cell_w), style=cell_style(MASKED_FG, MASKED))
                elif r == r_cur and c == c_cur:
                    out.append("◆".center(cell_w), style=cell_style("#ffffff", colours[r, c], bold=True))
                else:
                    out.append(" " * cell_w, style=cell_style(None, colours[r, c]))
            out.append("\n")
    else:
        for r in range(r0, r1, 2):
            marked = r_cur in (r, r + 1)
            row_prefix(r, marked)
            for c in range(c0, c1):
                top = MASKED if mask[r, c] else colours[r, c]
                if r + 1 < r1:
                    bottom = MASKED if mask[r + 1, c] else colours[r + 1, c]
                    out.append("▀" * cell_w, style=cell_style(top, bottom))
                else:
                    out.append("▀" * cell_w, style=cell_style(top))
            out.append("\n")
    note = Text(style=DIM)
    note.append(f"↓ {data.row_name} ({n_rows}) · → {data.col_name} ({n_cols})")
    if (r0, r1, c0, c1) != (0, n_rows, 0, n_cols):
        note.append(f" · showing {r0}-{r1 - 1} × {c0}-{c1 - 1}")
    if not wide:
        note.append(" · 2 rows per line")
    key = legend(vmin, vmax, data.palette, "{:.2f}")
    if mask.any():
        key.append("  ")
        key.append("·", style=cell_style(MASKED_FG, MASKED))
        key.append(" masked: the future", style=DIM)
    if key.cell_len + 3 + note.cell_len <= width:
        out.append_text(key)
        out.append("   ")
        out.append_text(note)
    else:
        out.append_text(note)
        out.append("\n")
        out.append_text(key)
    if cursor is not None and 0 <= r_cur < n_rows and 0 <= c_cur < n_cols:
        out.append("\n")
        out.append_text(describe_cell(data, r_cur, c_cur))
    return out


def describe_cell(data: HeatmapData, r: int, c: int) -> Text:
    """The selected cell: its row, column and value."""
    text = Text()
    row = data.row_labels[r] if r < len(data.row_labels) else str(r)
    col = data.col_labels[c] if c < len(data.col_labels) else str(c)
    text.append(f"{data.row_name} {r} ", style="bold")
    text.append(f"{row!r}")
    text.append(f" → {data.col_name} {c} ", style="bold")
    text.append(f"{col!r}")
    text.append("  ")
    masked = data.mask is not None and bool(data.mask[r, c])
    value = float(np.asarray(data.values)[r, c])
    text.append("masked" if masked else data.fmt.format(value), style=f"bold {ACCENT}")
    return text


class Heatmap(Widget, can_focus=True):
    """A matrix as coloured cells. Arrow keys move the selected cell (when focused)."""

    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
    ]

    DEFAULT_CSS = "Heatmap { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: clip; }"

    cursor: reactive[tuple[int, int] | None] = reactive(None)

    class CellSelected(Message):
        def __init__(self, heatmap: "Heatmap", row: int, col: int) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.row = row
            self.col = col

    def __init__(self, data: HeatmapData | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def update(self, data: HeatmapData, cursor: tuple[int, int] | None = None) -> None:
        self.data = data
        if cursor is not None:
            self.cursor = cursor
        self.refresh()

    def render(self) -> Text:
        if self.data is None:
            return Text("")
        return render_heatmap(self.data, self.size.width, self.size.height, self.cursor)

    def action_move(self, dr: int, dc: int) -> None:
        if self.data is None:
            return
        n_rows, n_cols = np.shape(self.data.values)
        r, c = self.cursor or (0, 0)
        r = max(0, min(n_rows - 1, r + dr))
        c = max(0, min(n_cols - 1, c + dc))
        self.cursor = (r, c)
        self.post_message(self.CellSelected(self, r, c))

    def watch_cursor(self, value: Any) -> None:
        self.refresh()
