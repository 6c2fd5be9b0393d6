"""Colours that look the same in 256-colour and true-colour terminals, and value-to-colour maps.

Every colour here is an exact entry of the xterm 256-colour palette written as hex, so a
true-colour terminal shows it as is and a 256-colour terminal maps it to itself.
"""

from __future__ import annotations

import math

import numpy as np
from rich.color import Color
from rich.style import Style

_CUBE = (0, 95, 135, 175, 215, 255)


def xterm(index: int) -> str:
    """The hex colour of xterm-256 colour `index` (16..255)."""
    if 16 <= index <= 231:
        i = index - 16
        r, g, b = _CUBE[i // 36], _CUBE[(i // 6) % 6], _CUBE[i % 6]
    elif 232 <= index <= 255:
        r = g = b = 8 + 10 * (index - 232)
    else:
        raise ValueError(f"only the 6x6x6 cube and the grey ramp are fixed colours, not {index}")
    return f"#{r:02x}{g:02x}{b:02x}"


# dark purple -> blue -> teal -> green -> yellow: brightness rises with the value (like viridis)
SEQUENTIAL = tuple(xterm(i) for i in (53, 54, 60, 61, 67, 66, 72, 71, 107, 113, 149, 185, 227))
# blue (negative) -> dark grey (zero) -> orange (positive): sign by hue, size by brightness
DIVERGING = tuple(
    xterm(i) for i in (45, 38, 31, 24, 23) + (238,) + (94, 130, 166, 202, 214)
)
MASKED = xterm(235)  # cells the causal mask hides
MASKED_FG = xterm(240)
CHIP_BACKGROUNDS = tuple(xterm(i) for i in (24, 58, 89, 29, 54, 94))  # token chips, in turn
CHIP_FG = xterm(255)
ACCENT = xterm(214)  # the chosen token, the cursor
DIM = xterm(244)

PALETTES = {"sequential": SEQUENTIAL, "diverging": DIVERGING}


def colour_index(value: float, vmin: float, vmax: float, n: int) -> int:
    """Which of `n` colours a value falls in (values outside [vmin, vmax] are clipped)."""
    if not math.isfinite(value):
        return 0 if value < 0 else n - 1
    if vmax <= vmin:
        return n // 2
    t = (value - vmin) / (vmax - vmin)
    return int(min(n - 1, max(0, math.floor(t * n))))


def colours_for(values: np.ndarray, vmin: float, vmax: float, palette: str = "sequential") -> np.ndarray:
    """Array of hex colours, one per value (same shape)."""
    ramp = PALETTES[palette]
    n = len(ramp)
    flat = np.asarray(values, dtype=np.float64).ravel()
    if vmax <= vmin:
        idx = np.full(flat.shape, n // 2)
    else:
        t = (np.nan_to_num(flat, nan=vmin, posinf=vmax, neginf=vmin) - vmin) / (vmax - vmin)
        idx = np.clip(np.floor(t * n), 0, n - 1).astype(int)
    return np.asarray(ramp, dtype=object)[idx].reshape(np.shape(values))


def value_range(values: np.ndarray, palette: str, mask: np.ndarray | None = None) -> tuple[float, float]:
    """A sensible colour range: symmetric around zero for diverging data."""
    data = np.asarray(values, dtype=np.float64)
    if mask is not None:
        data = data[~mask]
    data = data[np.isfinite(data)]
    if data.size == 0:
        return 0.0, 1.0
    if palette == "diverging":
        m = float(np.max(np.abs(data))) or 1.0
        return -m, m
    lo, hi = float(data.min()), float(data.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def cell_style(fg: str | None = None, bg: str | None = None, bold: bool = False) -> Style:
    """A Rich style from hex colours (cached by Rich, cheap to call per cell)."""
    return Style(
        color=Color.parse(fg) if fg else None, bgcolor=Color.parse(bg) if bg else None, bold=bold
    )


def legend(vmin: float, vmax: float, palette: str = "sequential", fmt: str = "{:.2f}"):
    """A one-line legend: the low value, the colour ramp, the high value."""
    from rich.text import Text

    text = Text(fmt.format(vmin) + " ", style=DIM)
    for colour in PALETTES[palette]:
        text.append("█", style=cell_style(colour))
    text.append(" " + fmt.format(vmax), style=DIM)
    return text
