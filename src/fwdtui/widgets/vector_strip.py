"""The vector strip: one vector (an embedding, a residual row) as coloured cells, with its norm and extremes.

Each character shows two dimensions (`▌`: left half foreground, right half background). A vector
longer than the strip is binned; each bin keeps its value of largest magnitude, so a spike in one
dimension stays visible instead of being averaged away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

from fwdtui.widgets.palette import DIM, cell_style, colours_for


def bin_extremes(vec: np.ndarray, n_bins: int) -> np.ndarray:
    """[n] -> [min(n, n_bins)]: per bin, the value with the largest absolute size (sign kept)."""
    vec = np.asarray(vec, dtype=np.float64).ravel()
    if vec.size <= n_bins:
        return vec
    edges = np.linspace(0, vec.size, n_bins + 1).astype(int)
    out = np.empty(n_bins)
    for i in range(n_bins):
        part = vec[edges[i] : edges[i + 1]]
        out[i] = part[np.argmax(np.abs(part))]
    return out


@dataclass(frozen=True)
class VectorStats:
    norm: float
    min: float
    argmin: int
    max: float
    argmax: int
    mean: float


def vector_stats(vec: np.ndarray) -> VectorStats:
    v = np.asarray(vec, dtype=np.float64).ravel()
    return VectorStats(
        float(np.linalg.norm(v)), float(v.min()), int(v.argmin()), float(v.max()), int(v.argmax()), float(v.mean())
    )


def render_vector(
    vec: np.ndarray, width: int, label: str = "", scale: float | None = None, stats: bool = True
) -> Text:
    """Label, cells, and (on a second line) the size, norm, min and max of the vector."""
    v = np.asarray(vec, dtype=np.float64).ravel()
    out = Text(no_wrap=True, overflow="crop")
    if v.size == 0:
        return Text("(empty vector)", style="italic")
    label_w = len(label) + 1 if label else 0
    n_chars = max(2, width - label_w)
    m = scale if scale is not None else float(np.max(np.abs(v))) or 1.0
    if label:
        out.append(label + " ", style="bold")
    if v.size <= n_chars:
        # room for whole cells: one or two columns per dimension, easier to read than halves
        per_dim = 2 if v.size * 2 <= n_chars else 1
        for colour in colours_for(v, -m, m, "diverging"):
            out.append("█" * per_dim, style=cell_style(colour))
    else:
        shown = bin_extremes(v, n_chars * 2)
        colours = colours_for(shown, -m, m, "diverging")
        for i in range(0, len(shown), 2):
            right = colours[i + 1] if i + 1 < len(shown) else None
            out.append("▌", style=cell_style(colours[i], right))
    if stats:
        s = vector_stats(v)
        out.append("\n")
        line = Text(" " * label_w, style=DIM)
        binned = f" ({v.size} dims in {n_chars} cells, largest magnitude per cell)" if v.size > n_chars * 2 else ""
        binned = binned or (" (2 dims per cell)" if v.size > n_chars else "")
        line.append(f"‖x‖ {s.norm:.2f} · min {s.min:+.3f} @{s.argmin} · max {s.max:+.3f} @{s.argmax}{binned}")
        out.append_text(line)
    return out


class VectorStrip(Widget):
    """One vector as a strip of coloured cells (blue negative, orange positive)."""

    DEFAULT_CSS = "VectorStrip { height: auto; text-wrap: nowrap; text-overflow: clip; }"

    def __init__(self, vec: np.ndarray | None = None, label: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vec = vec
        self.label = label
        self.scale: float | None = None

    def update(self, vec: np.ndarray, label: str | None = None, scale: float | None = None) -> None:
        self.vec = vec
        if label is not None:
            self.label = label
        self.scale = scale
        self.refresh(layout=True)

    def render(self) -> Text:
        if self.vec is None:
            return Text("")
        return render_vector(self.vec, self.size.width, self.label, self.scale)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return 2 if self.vec is not None else 1
