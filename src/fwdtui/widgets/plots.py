"""Small plots: a sparkline and a braille line plot, for loss curves and throughput."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from rich.text import Text
from textual.widget import Widget

from fwdtui.widgets.palette import DIM, SEQUENTIAL, cell_style

SPARKS = "▁▂▃▄▅▆▇█"
# braille dot bits for (column, row) inside one character cell of 2 x 4 dots
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def _resample(values: np.ndarray, n: int) -> np.ndarray:
    """Mean of equal slices, so a long history fits `n` columns."""
    if values.size <= n:
        return values
    edges = np.linspace(0, values.size, n + 1).astype(int)
    return np.array([values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


def sparkline(values: Sequence[float], width: int, vmin: float | None = None, vmax: float | None = None) -> Text:
    """One line of block heights; the last `width` values when there are more."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Text("")
    v = _resample(v, max(1, width))
    lo = float(v.min()) if vmin is None else vmin
    hi = float(v.max()) if vmax is None else vmax
    span = hi - lo or 1.0
    idx = np.clip(((v - lo) / span * (len(SPARKS) - 1)).round().astype(int), 0, len(SPARKS) - 1)
    return Text("".join(SPARKS[i] for i in idx), style=cell_style(SEQUENTIAL[-4]))


def line_plot(
    values: Sequence[float], width: int, height: int, label: str = "", fmt: str = "{:.3g}"
) -> Text:
    """A braille line plot with the max on the first line and the min on the last."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    out = Text(no_wrap=True, overflow="crop")
    if v.size == 0:
        out.append(f"{label}: no data yet", style="italic")
        return out
    lo, hi = float(v.min()), float(v.max())
    axis_w = max(len(fmt.format(lo)), len(fmt.format(hi))) + 1
    plot_w = max(2, width - axis_w)
    rows = max(1, height - (1 if label else 0))
    dots_x, dots_y = plot_w * 2, rows * 4
    v = _resample(v, dots_x)
    span = hi - lo or 1.0
    ys = ((v - lo) / span * (dots_y - 1)).round().astype(int)  # 0 = bottom
    xs = np.arange(v.size) if v.size > 1 else np.array([0])
    if v.size > 1:
        xs = (np.arange(v.size) * (dots_x - 1) / (v.size - 1)).round().astype(int)
    grid = np.zeros((rows, plot_w), dtype=int)
    prev = None
    for x, y in zip(xs, ys):
        # join consecutive points with a vertical run so steep changes stay connected
        span_y = range(min(y, prev), max(y, prev) + 1) if prev is not None else [y]
        for yy in span_y:
            row = rows - 1 - yy // 4
            grid[row, x // 2] |= _BRAILLE_BITS[x % 2][3 - yy % 4]
        prev = y
    if label:
        out.append(label, style="bold")
        out.append(f"  last {fmt.format(float(values[-1]))}\n", style=DIM)
    for r in range(rows):
        tick = fmt.format(hi) if r == 0 else (fmt.format(lo) if r == rows - 1 else "")
        out.append(tick.rjust(axis_w - 1) + " ", style=DIM)
        out.append("".join(chr(0x2800 + b) for b in grid[r]), style=cell_style(SEQUENTIAL[-4]))
        if r < rows - 1:
            out.append("\n")
    return out


class LinePlot(Widget):
    """A line plot that grows as values are appended (loss per step, tokens per second)."""

    DEFAULT_CSS = "LinePlot { height: 6; text-wrap: nowrap; text-overflow: clip; }"

    def __init__(self, label: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.values: list[float] = []

    def update(self, values: Sequence[float]) -> None:
        self.values = list(values)
        self.refresh()

    def append(self, value: float) -> None:
        self.values.append(float(value))
        self.refresh()

    def render(self) -> Text:
        return line_plot(self.values, self.size.width, self.size.height, self.label)


class Sparkline(Widget):
    """A one-line sparkline."""

    DEFAULT_CSS = "Sparkline { height: 1; text-wrap: nowrap; text-overflow: clip; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values: list[float] = []

    def update(self, values: Sequence[float]) -> None:
        self.values = list(values)
        self.refresh()

    def render(self) -> Text:
        return sparkline(self.values, self.size.width)
