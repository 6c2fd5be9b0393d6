"""What the training chapters share: one picture in a scroll area (`j`/`k` scroll it) and token chips
coloured by a value (the loss), with masked tokens drawn dim."""

from __future__ import annotations

import textwrap
from typing import Any, Sequence

import numpy as np
from rich.text import Text

from fwdtui.widgets.canvas import SCROLL_BINDINGS, Canvas, Picture  # noqa: F401 (re-exported)
from fwdtui.widgets.palette import CHIP_FG, DIM, MASKED, MASKED_FG, cell_style, colours_for
from fwdtui.widgets.token_strip import pieces_for, short_label

# The scroll area with its canvas is shared by every section: see fwdtui.widgets.canvas.


def labels_for(tokenizer: Any, ids: Sequence[int], width: int = 12) -> list[str]:
    """Short visible labels of tokens (whitespace shown as · and ↵)."""
    return [short_label(p, width) for p in pieces_for(tokenizer, ids)]


def loss_chips(labels: Sequence[str], values: Sequence[float | None], width: int, vmax: float,
               keep: Sequence[bool] | None = None, show_values: bool = True) -> Text:
    """Tokens as chips wrapped to `width`, each coloured by its value (None: no value, e.g. the first
    token, which nothing predicts); chips with keep=False are drawn in the masked grey."""
    out = Text(no_wrap=True, overflow="crop")
    vals = np.array([np.nan if v is None else float(v) for v in values])
    colours = colours_for(vals, 0.0, max(vmax, 1e-6), "sequential")
    col = 0
    for i, label in enumerate(labels):
        number = "" if (not show_values or np.isnan(vals[i])) else f" {vals[i]:.1f}"
        chip = f" {label}{number} "
        if col and col + len(chip) + 1 > width:
            out.append("\n")
            col = 0
        if keep is not None and not keep[i]:
            style = cell_style(MASKED_FG, MASKED)
        elif np.isnan(vals[i]):
            style = cell_style(DIM, MASKED)
        else:
            style = cell_style(CHIP_FG if vals[i] < 0.6 * vmax else "#000000", str(colours[i]))
        out.append(chip, style=style)
        out.append(" ")
        col += len(chip) + 1
    out.append("\n")
    return out


def block(out: Text, text: str, width: int, style: Any = "") -> None:
    """Append `text` wrapped to `width`, indented by two spaces."""
    for para in text.split("\n"):
        for line in textwrap.wrap(para, max(10, width - 2)) or [""]:
            out.append("  " + line + "\n", style=style)
