"""The interactive widgets in a small app: keys move the selection, pin tokens, move the heatmap cursor;
the canvas redraws for its size; a chapter's picture scrolls with j/k, or with the arrows once focused."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from ui_helpers import screen_text

from fwdtui.widgets.canvas import SCROLL_BINDINGS, Canvas, Picture
from fwdtui.widgets.heatmap import Heatmap, HeatmapData
from fwdtui.widgets.token_strip import TokenStrip, token_piece


class StripApp(App[None]):
    def compose(self) -> ComposeResult:
        pieces = [token_piece(i, t.encode()) for i, t in enumerate(["The", " cat", " sat", " on"])]
        yield TokenStrip(pieces, id="strip")
        yield Heatmap(HeatmapData(np.eye(4), tuple("abcd"), tuple("abcd")), id="map")

    def on_mount(self) -> None:
        self.selected: list[int] = []
        self.query_one(TokenStrip).focus()

    def on_token_strip_selected(self, message: TokenStrip.Selected) -> None:
        self.selected.append(message.index)


async def test_token_strip_keys_select_and_pin() -> None:
    app = StripApp()
    async with app.run_test(size=(80, 24)) as pilot:
        strip = app.query_one(TokenStrip)
        await pilot.press("right", "right")
        await pilot.pause()
        assert strip.cursor == 2 and app.selected[-1] == 2
        await pilot.press("x", "end")
        await pilot.pause()
        assert strip.pinned == 2 and strip.cursor == 3
        text = screen_text(app)
        assert "#3 id 3 ' on'" in text and "pinned #2 id 2 ' sat'" in text


async def test_heatmap_cursor_moves_with_arrows_when_focused() -> None:
    app = StripApp()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one(Heatmap)
        heatmap.focus()
        await pilot.press("down", "down", "right")
        await pilot.pause()
        assert heatmap.cursor == (2, 1)
        assert "row 2 'c' → col 1 'b'  0.000" in screen_text(app)


# --- Canvas: a picture drawn for the widget's own size ----------------------------------------


class CanvasApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Canvas(id="auto", min_width=30)
        yield Canvas(id="fill", fill=True, failure="stage failed ({error}); press space")


def sized(tag: str, width: int, height: int | None = None) -> Text:
    """A picture that says the size it was drawn for, one line per 10 columns of width."""
    lines = [f"{tag} w={width}" + ("" if height is None else f" h={height}")] + ["." * 10] * (width // 10 - 1)
    return Text("\n".join(lines))


async def test_canvas_redraws_for_its_width_and_takes_the_pictures_height() -> None:
    app = CanvasApp()
    async with app.run_test(size=(80, 24)) as pilot:
        auto = app.query_one("#auto", Canvas)
        auto.show(lambda width: sized("auto", width))
        await pilot.pause()
        assert auto.size.height == 8  # 80 columns -> 8 lines
        assert "auto w=80" in screen_text(app)
        await pilot.resize_terminal(60, 24)
        await pilot.pause()
        assert auto.size.height == 6 and "auto w=60" in screen_text(app)
        await pilot.resize_terminal(20, 24)  # narrower than min_width: drawn 30 wide, cropped
        await pilot.pause()
        assert auto.size.height == 3 and "auto w=30" in screen_text(app)


async def test_filled_canvas_gets_the_free_height_and_a_failing_painter_shows_its_message() -> None:
    app = CanvasApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#auto", Canvas).show(lambda width: Text("one line"))
        fill = app.query_one("#fill", Canvas)
        fill.paint_with(lambda width, height: sized("fill", width, height))
        await pilot.pause()
        assert fill.size.height == 23 and "fill w=80 h=23" in screen_text(app)
        fill.paint_with(lambda width, height: Text(str(1 / 0)))
        await pilot.pause()
        assert "stage failed (ZeroDivisionError: division by zero); press space" in screen_text(app)


# --- Picture: a chapter's canvas in a scroll area --------------------------------------------


class PictureScreen(Picture, Screen[None]):
    PICTURE = "demo"
    BINDINGS = [*SCROLL_BINDINGS]
    AUTO_FOCUS = ""  # as in a chapter: nothing is focused until Tab

    def __init__(self, focusable: bool) -> None:
        super().__init__()
        self.picture_focusable = focusable

    def compose(self) -> ComposeResult:
        yield from self.picture_area(focusable=self.picture_focusable)

    def on_mount(self) -> None:
        self.picture_canvas().show(lambda width: Text("\n".join(f"line {i}" for i in range(60))))


class PictureApp(App[None]):
    def __init__(self, focusable: bool = False) -> None:
        super().__init__()
        self.picture_focusable = focusable

    def on_mount(self) -> None:
        self.push_screen(PictureScreen(self.picture_focusable))


async def test_picture_scrolls_with_j_and_k_and_never_takes_focus() -> None:
    app = PictureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PictureScreen)
        scroll = screen.query_one("#demo-scroll", VerticalScroll)
        assert screen.picture_scroll() is scroll and screen.picture_canvas().parent is scroll
        assert screen.picture_canvas().size.height == 60 and scroll.size.height == 24
        await pilot.press("j", "j")
        await pilot.pause()
        assert scroll.scroll_y == 6 and "line 6" in screen_text(app).splitlines()[0]
        await pilot.press("k")
        await pilot.pause()
        assert scroll.scroll_y == 3
        await pilot.press("tab")
        assert app.focused is None  # the chapter keeps every key


async def test_focusable_picture_scrolls_with_the_arrows_after_tab() -> None:
    app = PictureApp(focusable=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        scroll = app.screen.query_one("#demo-scroll", VerticalScroll)
        await pilot.press("down")
        await pilot.pause()
        assert scroll.scroll_y == 0  # nothing focused yet
        await pilot.press("tab", "down", "down")
        await pilot.pause()
        assert app.focused is scroll and scroll.scroll_y == 2
