"""What the modern-techniques chapters share: one picture in a scroll area (`j`/`k` scroll it), and small
text helpers for tokens and bars."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import DIM
from fwdtui.widgets.token_strip import pieces_for, short_label, visible_text

SCROLL_BINDINGS: list[BindingType] = [
    Binding("k", "scroll_visual(-1)", "Scroll up", show=False, tooltip="Scroll the picture up"),
    Binding("j", "scroll_visual(1)", "Scroll down", show=False, tooltip="Scroll the picture down"),
]


class Picture:
    """A Canvas (`#<PICTURE>-canvas`) in a scroll area (`#<PICTURE>-scroll`) that takes the free height."""

    PICTURE: ClassVar[str]

    def picture_area(self) -> ComposeResult:
        with VerticalScroll(id=f"{self.PICTURE}-scroll", can_focus=False):
            yield Canvas(id=f"{self.PICTURE}-canvas")

    def picture_canvas(self) -> Canvas:
        return self.query_one(f"#{self.PICTURE}-canvas", Canvas)  # type: ignore[attr-defined]

    def action_scroll_visual(self, direction: int) -> None:
        scroll = self.query_one(f"#{self.PICTURE}-scroll", VerticalScroll)  # type: ignore[attr-defined]
        scroll.scroll_relative(y=3 * direction, animate=False)


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
