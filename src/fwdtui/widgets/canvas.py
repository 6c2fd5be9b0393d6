"""Canvas: a widget whose picture is drawn by a function of its own size, so a resize redraws it to fit."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget

Builder = Callable[[int], Text]  # width -> picture; the canvas grows to the picture's height
Painter = Callable[[int, int], Text]  # (width, height) -> picture for the area the layout gives

FAILURE = "(could not draw this part: {error})"


class Canvas(Widget):
    """Rich text rebuilt for the widget's current size, so a resize redraws the picture to fit.

    Two ways to draw:
    - `show(builder)`: the picture depends on the width only and the canvas is as tall as it
      (chapters that lay out a long explanation in a scroll area);
    - `paint_with(painter)`: the picture is drawn for the width and height the layout gives;
      made with `fill=True` the canvas takes the free height (`1fr`).
    A builder that raises shows `failure` (with the error in place of `{error}`) instead of a
    traceback.
    """

    DEFAULT_CSS = """
    Canvas { height: auto; text-wrap: nowrap; text-overflow: clip; }
    Canvas.-fill { height: 1fr; }
    """

    def __init__(self, *, fill: bool = False, min_width: int = 20, failure: str = FAILURE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fill:
            self.add_class("-fill")
        self.min_width = min_width  # narrower panes get a picture this wide, cropped
        self.failure = failure
        self.painter: Painter | None = None

    def show(self, builder: Builder) -> None:
        """Draw `builder(width)` from now on; the canvas takes the picture's height."""
        self.paint_with(lambda width, height: builder(width))

    def paint_with(self, painter: Painter) -> None:
        """Draw `painter(width, height)` from now on."""
        self.painter = painter
        self.refresh(layout=True)

    def room(self) -> int:
        """Lines the surrounding scroll area shows (to size a picture to the screen), at least 10."""
        parent = self.parent
        height = getattr(getattr(parent, "size", None), "height", 0) if parent is not None else 0
        return max(10, int(height or 0))

    def picture(self, width: int, height: int) -> Text:
        """The picture for this size (an empty text before anything was shown)."""
        if self.painter is None:
            return Text("")
        try:
            return self.painter(max(self.min_width, width), max(1, height))
        except Exception as err:  # a drawing slip shows as a line, never a traceback
            self.log.error(f"canvas {self.id} failed to draw: {err!r}")
            return Text(self.failure.format(error=f"{type(err).__name__}: {err}"), style="italic")

    def render(self) -> Text:
        return self.picture(self.size.width, self.size.height)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(1, len(self.picture(width, self.room()).plain.split("\n")))


SCROLL_BINDINGS: list[BindingType] = [
    Binding("k", "scroll_visual(-1)", "Scroll up", show=False, tooltip="Scroll the picture up"),
    Binding("j", "scroll_visual(1)", "Scroll down", show=False, tooltip="Scroll the picture down"),
]


class Picture:
    """Chapter mixin: the one picture of a chapter; add SCROLL_BINDINGS to the chapter's BINDINGS for `j`/`k`."""

    PICTURE: ClassVar[str]  # the name in the ids `#<PICTURE>-scroll` and `#<PICTURE>-canvas`

    def picture_area(self, *, focusable: bool = False) -> ComposeResult:
        """A Canvas (`#<PICTURE>-canvas`) in a scroll area (`#<PICTURE>-scroll`) that takes the free height.

        The scroll area takes no focus by default, so the chapter's own keys (arrows too) always reach the
        chapter and SCROLL_BINDINGS (`j`/`k`) scroll it. `focusable=True` is for chapters without those keys
        (the engine and embedding sections): Tab focuses the scroll area, then the arrow and page keys scroll it.
        """
        with VerticalScroll(id=f"{self.PICTURE}-scroll", can_focus=focusable):
            yield Canvas(id=f"{self.PICTURE}-canvas")

    def picture_scroll(self) -> VerticalScroll:
        return self.query_one(f"#{self.PICTURE}-scroll", VerticalScroll)  # type: ignore[attr-defined]

    def picture_canvas(self) -> Canvas:
        return self.query_one(f"#{self.PICTURE}-canvas", Canvas)  # type: ignore[attr-defined]

    def action_scroll_visual(self, direction: int) -> None:
        self.picture_scroll().scroll_relative(y=3 * direction, animate=False)
