"""The interactive widgets in a small app: keys move the selection, pin tokens, move the heatmap cursor;
the canvas redraws for its size."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult
from ui_helpers import screen_text

from fwdtui.widgets.canvas import Canvas
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
