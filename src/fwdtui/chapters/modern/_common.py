"""What the modern-techniques chapters share: one picture in a scroll area (`j`/`k` scroll it), and small
text helpers for tokens and bars."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.canvas import SCROLL_BINDINGS, Canvas, Picture  # noqa: F401 (re-exported)
from fwdtui.widgets.palette import DIM
from fwdtui.widgets.token_strip import pieces_for, short_label, visible_text

# The scroll area with its canvas is shared by every section: see fwdtui.widgets.canvas.


def token_label(tokenizer: Any, token: int, width: int = 10) -> str:
    """A token as a short label with whitespace made visible."""
    return short_label(pieces_for(tokenizer, [token])[0], width)


def shown(text: str, width: int) -> str:
    """Generated text on one line (newlines as ↵), cut to `width` columns."""
    line = visible_text(text).replace("·", " ")
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


def bar_line(label: str, fraction: float, note: str, width: int, label_w: int = 12, style: str = "") -> Text:
    """`label ████▌    note` fitted to `width`."""
    bar_w = max(4, min(40, width - label_w - len(note) - 3))
    out = Text(label[:label_w].ljust(label_w) + " ", style=DIM)
    out.append(bar_string(fraction, bar_w), style=style)
    out.append(" " + note + "\n")
    return out


def wrap_lines(text: str, width: int) -> list[str]:
    """Text wrapped to `width` columns, keeping its own line breaks."""
    import textwrap

    lines: list[str] = []
    for para in text.split("\n"):
        lines += textwrap.wrap(para, max(10, width)) or [""]
    return lines
