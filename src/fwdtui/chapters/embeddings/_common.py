"""What the embedding chapters share: short token labels, wrapped prose, and a labelled text scatter plot
for 2-D maps of word vectors; their picture is `fwdtui.widgets.canvas.Picture` (re-exported here)."""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
from rich.text import Text

from fwdtui.widgets.canvas import Picture
from fwdtui.widgets.palette import DIM, cell_style, xterm
from fwdtui.widgets.token_strip import token_piece


def label(tokenizer, token_id: int, width: int = 12) -> str:
    """A token as the strips show it ('·' for a space, byte escapes for part of a character), cut to `width`."""
    text = token_piece(int(token_id), tokenizer.token_bytes(int(token_id))).label
    return text if len(text) <= width else text[: width - 1] + "…"


def shown(text: str, width: int = 14) -> str:
    """A decoded text with its spaces made visible, cut to `width`."""
    text = text.replace(" ", "·").replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_bytes(n: float) -> str:
    """113246208 -> '108.0 MiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def para(text: str, width: int, style: str = "") -> Text:
    """Prose wrapped to `width` (a canvas never wraps by itself), ending with a newline."""
    lines = textwrap.wrap(text, max(20, width - 1)) or [""]
    return Text("\n".join(lines) + "\n", style=style)


def dim(text: str) -> Text:
    return Text(text, style=DIM)


def keys_line(text: str) -> Text:
    """The chapter's playground keys, as a dim line."""
    return Text("keys: " + text + "\n", style=DIM)


GROUP_COLOURS = tuple(xterm(i) for i in (39, 214, 118, 199, 226, 51, 141))  # bright, told apart easily


def scatter(coords: np.ndarray, labels: Sequence[str], groups: Sequence[str], width: int, height: int) -> Text:
    """A labelled scatter plot of 2-D points on a character grid: a dot per point, its label beside it
    when there is room, one colour per group, and a legend line.

    Kept here because no shared widget draws labelled points yet.
    """
    out = Text(no_wrap=True, overflow="crop")
    n = len(labels)
    if n == 0:
        return Text("(no points)", style="italic")
    names = list(dict.fromkeys(groups))
    colour = {g: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, g in enumerate(names)}
    rows, cols = max(4, height - 1), max(20, width)
    xy = np.asarray(coords, dtype=np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    label_room = 8  # keep a little space on the right so the rightmost labels are not cut at once
    cx = np.round((xy[:, 0] - lo[0]) / span[0] * (cols - 1 - label_room)).astype(int)
    cy = np.round((hi[1] - xy[:, 1]) / span[1] * (rows - 1)).astype(int)  # larger y higher up
    grid: list[list[tuple[str, str | None]]] = [[(" ", None) for _ in range(cols)] for _ in range(rows)]
    # dots first, then labels only into empty cells, so a crowded area keeps every dot
    for i in range(n):
        grid[cy[i]][cx[i]] = ("●", colour[groups[i]])
    for i in sorted(range(n), key=lambda j: cx[j]):
        text = labels[i]
        start = cx[i] + 1
        cells = range(start, min(cols, start + len(text) + 1))
        if len(cells) < 3 or any(grid[cy[i]][c][0] != " " for c in cells):
            continue
        for k, c in enumerate(range(start, min(cols, start + len(text)))):
            grid[cy[i]][c] = (text[k], f"label:{groups[i]}")
    for r in range(rows):
        for ch, style in grid[r]:
            if style is None:
                out.append(ch)
            elif style.startswith("label:"):
                out.append(ch)
            else:
                out.append(ch, style=cell_style(style))
        out.append("\n")
    for g in names:
        out.append("● ", style=cell_style(colour[g]))
        out.append(g + "  ")
    return out


__all__ = ["Picture", "dim", "fmt_bytes", "keys_line", "label", "para", "scatter", "shown"]
