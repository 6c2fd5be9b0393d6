"""What the inference-engine chapters share: wrapped notes, number formats and bars; their picture is
`fwdtui.widgets.canvas.Picture` (re-exported here)."""

from __future__ import annotations

import textwrap

import numpy as np
from rich.text import Text

from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.canvas import Canvas, Picture
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style
from fwdtui.tokenizers import fragment_text

__all__ = ["ACCENT", "DIM", "Canvas", "Picture", "bar", "fmt_bytes", "fmt_count", "fmt_seconds",
           "heading", "note", "piece"]


def note(text: str, width: int, style: str = DIM) -> Text:
    """A paragraph wrapped to the width, dim by default, ending in a newline."""
    lines = textwrap.wrap(text, max(20, width - 1)) or [""]
    return Text("\n".join(lines) + "\n", style=style)


def heading(text: str) -> Text:
    return Text(text + "\n", style="bold")


def bar(value: float, vmax: float, width: int, colour: str | None = None) -> Text:
    """One horizontal bar of `width` cells filled to value / vmax."""
    frac = 0.0 if vmax <= 0 or not np.isfinite(value) else value / vmax
    return Text(bar_string(frac, max(1, width)), style=cell_style(colour or SEQUENTIAL[-3]))


def fmt_seconds(s: float) -> str:
    if not np.isfinite(s):
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_count(n: float) -> str:
    """1.2G, 35M, 4.1K: FLOPs and parameter counts."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def piece(tokenizer, token: int, width: int = 12) -> str:
    """A token as readable text: spaces as ·, newlines as ⏎, cut to `width`."""
    try:
        text = fragment_text(tokenizer, [token])
    except Exception:  # a byte of a multi-byte character on its own
        text = f"#{token}"
    text = text.replace(" ", "·").replace("\n", "⏎").replace("\t", "→") or f"#{token}"
    return text if len(text) <= width else text[: width - 1] + "…"


def colour(i: int) -> str:
    """A distinct colour per request or sequence (cycling)."""
    ramp = (SEQUENTIAL[-1], SEQUENTIAL[4], ACCENT, SEQUENTIAL[8], SEQUENTIAL[2], SEQUENTIAL[10])
    return ramp[i % len(ramp)]
