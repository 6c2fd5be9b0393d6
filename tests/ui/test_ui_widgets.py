"""The interactive widgets in a small app: keys move the selection, pin tokens, move the heatmap cursor."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult
from ui_helpers import screen_text

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
