"""What the explorer chapters share: a picture in a scroll area that `j`/`k` scroll, because the
arrows are taken by the chapter's own selection (models, layers, tokens)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

from fwdtui.widgets.canvas import Canvas

SCROLL_BINDINGS: list[BindingType] = [
    Binding("k", "scroll_visual(-1)", "Scroll up", show=False, tooltip="Scroll the picture up"),
    Binding("j", "scroll_visual(1)", "Scroll down", show=False, tooltip="Scroll the picture down"),
]


class ScrollingPicture:
    """One Canvas (`#<name>-canvas`) in a scroll area (`#<name>-scroll`) that takes the free height."""

    PICTURE: ClassVar[str]  # the name in the two ids

    def picture_area(self) -> ComposeResult:
        with VerticalScroll(id=f"{self.PICTURE}-scroll", can_focus=False):  # keys stay with the chapter
            yield Canvas(id=f"{self.PICTURE}-canvas")

    def picture_scroll(self) -> VerticalScroll:
        return self.query_one(f"#{self.PICTURE}-scroll", VerticalScroll)  # type: ignore[attr-defined]

    def picture_canvas(self) -> Canvas:
        return self.query_one(f"#{self.PICTURE}-canvas", Canvas)  # type: ignore[attr-defined]

    def action_scroll_visual(self, direction: int) -> None:
        self.picture_scroll().scroll_relative(y=3 * direction, animate=False)
