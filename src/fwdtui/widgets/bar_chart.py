"""The bar chart: the top-k next-token probabilities with their token text, the chosen one marked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widget import Widget

from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclass(frozen=True)
class Bar:
    """One bar: a label (token text), a value, and how it is drawn."""

    label: str
    value: float
    chosen: bool = False  # the sampled / greedy token
    excluded: bool = False  # cut by top-k / top-p: drawn dim
    note: str = ""  # e.g. the token id


def bar_string(fraction: float, width: int) -> str:
    """A bar of `width` columns filled to `fraction`, with eighth-block precision."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def render_bars(
    bars: list[Bar],
    width: int,
    title: str = "",
    vmax: float | None = None,
    fmt: str = "{:6.1%}",
    label_width: int = 14,
) -> Text:
    """Rows of `label | bar | value`, scaled to `vmax` (default: the largest value)."""
    out = Text(no_wrap=True, overflow="crop")
    if title:
        out.append(title + "\n", style="bold")
    if not bars:
        out.append("(nothing)", style="italic")
        return out
    top = vmax if vmax is not None else max(b.value for b in bars)
    top = top if top > 0 else 1.0
    lw = min(label_width, max(len(b.label) for b in bars))
    value_w = len(fmt.format(0.5))
    note_w = max((len(b.note) for b in bars), default=0)
    bar_w = max(4, width - lw - value_w - note_w - 14)
    for i, bar in enumerate(bars):
        label = bar.label if len(bar.label) <= lw else bar.label[: lw - 1] + "…"
        colour = ACCENT if bar.chosen else SEQUENTIAL[-3]
        style = DIM if bar.excluded else ("bold" if bar.chosen else "")
        out.append(label.rjust(lw), style=style)
        out.append(" ")
        out.append(bar_string(bar.value / top, bar_w), style=DIM if bar.excluded else cell_style(colour))
        out.append(" ")
        out.append(fmt.format(bar.value), style=style)
        if note_w:
            out.append(" " + bar.note.ljust(note_w), style=DIM)
        if bar.chosen:
            out.append(" ◀ chosen", style=f"bold {ACCENT}")
        elif bar.excluded:
            out.append(" cut", style=DIM)
        if i < len(bars) - 1:
            out.append("\n")
    return out


class BarChart(Widget):
    """A list of bars; `update(bars)` redraws."""

    DEFAULT_CSS = "BarChart { height: auto; text-wrap: nowrap; text-overflow: clip; }"

    def __init__(self, bars: list[Bar] | None = None, title: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bars = bars or []
        self.title = title
        self.vmax: float | None = None

    def update(self, bars: list[Bar], title: str | None = None, vmax: float | None = None) -> None:
        self.bars = list(bars)
        if title is not None:
            self.title = title
        self.vmax = vmax
        self.refresh(layout=True)

    def render(self) -> Text:
        return render_bars(self.bars, self.size.width, self.title, self.vmax)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(1, len(self.bars)) + (1 if self.title else 0)
