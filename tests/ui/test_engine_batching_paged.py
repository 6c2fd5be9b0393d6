"""Pilot tests for the batching and PagedAttention chapters: open each at 80x24 and 100x30 on tiny models,
press their keys, and read the screen and the whole picture."""

from __future__ import annotations

import re

import pytest
from ui_helpers import CHAPTER_PROMPT, assert_drawn, chapter_app, read_screen

SIZES = [(80, 24), (100, 30)]
CASES = [(size, family) for size in SIZES for family in ("gpt2", "llama")]


def _visual(app) -> str:
    """The whole picture of the chapter's canvas (also the part scrolled out of view)."""
    canvas = app.screen.query_one("Canvas")
    text = canvas.picture(canvas.size.width, 100).plain
    assert_drawn(text)
    return text


@pytest.mark.parametrize("size,family", CASES)
async def test_batching_simulates_both_policies_and_keys_change_them(size, family) -> None:
    app = chapter_app("engine.batching", family)
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        picture = _visual(app)
        assert "Measured on random-" in picture and "one forward pass over n token rows" in picture
        assert "Simulation: 12 requests (mix 0), batches of 4" in picture
        assert "slot 3 │" in picture and "slot 4 │" not in picture
        useful = [int(x) for x in re.findall(r"(\d+)% of slot-steps useful", picture)]
        assert len(useful) == 2 and useful[1] > useful[0]  # continuous keeps its slots busier
        assert "p90 time to finish" in picture and "This is a simulation" in picture.replace("\n", " ")
        await read_screen(app, pilot, ["b"])
        picture = _visual(app)
        assert "batches of 8" in picture and "slot 7 │" in picture
        await read_screen(app, pilot, ["s"])
        assert "Simulation: 12 requests (mix 1), batches of 8" in _visual(app)
        await read_screen(app, pilot, ["b"])
        assert "slot 1 │" in _visual(app) and "slot 2 │" not in _visual(app)


@pytest.mark.parametrize("size,family", CASES)
async def test_paged_attention_pages_the_real_cache_and_keys_change_the_view(size, family) -> None:
    app = chapter_app("engine.paged-attention", family)
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        picture = _visual(app)
        n_prompt = len(CHAPTER_PROMPT.encode())  # the tiny models' tokens are bytes
        assert f"Three requests on your prompt ({n_prompt} tokens)" in picture
        # A, B, C hold 22 + 9, 22 + 5, 22 + 7 positions: 8 + 7 + 8 pages of 4, and two spare
        assert "The pool: 25 physical pages of 4 positions" in picture
        assert re.search(r"▶ A: 0 1 2 3 4 \d", picture) and "last page 3/4 used" in picture
        flat = picture.replace("\n", " ")
        diff = float(re.search(r"largest difference ([0-9.e+-]+)", flat).group(1))
        assert diff == 0.0
        assert "a mix of 16 requests" in picture and "pages of 4" in picture
        await read_screen(app, pilot, ["b"])
        picture = _visual(app)
        assert "The pool: 14 physical pages of 8 positions" in picture  # 4 + 4 + 4, and two spare
        await read_screen(app, pilot, ["s"])
        picture = _visual(app)
        assert "▶ B:" in picture and "B, block by block:" in picture
        assert "Attention of B's newest token over its gathered pages" in picture
        await read_screen(app, pilot, ["s", "s"])
        assert "▶ A:" in _visual(app)
