"""Pilot tests for the inference-engine chapters: open each at 80x24 and 100x30 on a tiny model, press
its keys, and read the screen."""

from __future__ import annotations

import re

import pytest
from ui_helpers import chapter_app, read_screen

from fwdtui.chapters.engine.serving import CELL_MAX, COLUMNS, FRAMEWORKS


SIZES = [(80, 24), (100, 30)]


def _visual(app) -> str:
    """The whole picture of the chapter's canvas (also the part scrolled out of view)."""
    canvas = app.screen.query_one("Canvas")
    return canvas.picture(canvas.size.width, 100).plain


@pytest.mark.parametrize("size", SIZES)
async def test_prefill_decode_times_both_phases(size) -> None:
    app = chapter_app("engine.prefill-decode")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "prefill  22 tokens in one pass" in text
        assert "median of 8" in text
        await read_screen(app, pilot, ["plus"])
        assert "median of 16" in _visual(app)
        assert re.search(r"decode\s+1\s+\S+\s+\S+ \w+\s+\d", _visual(app))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_kv_cache_same_logits_and_the_cache_heatmap(family) -> None:
    app = chapter_app("engine.kv-cache", family)
    async with app.run_test(size=(100, 30)) as pilot:
        await read_screen(app, pilot)
        picture = _visual(app)
        assert "same next token every step: yes" in picture
        assert "cached keys, layer 0, kv head 0" in picture
        await read_screen(app, pilot, ["l", "v"])
        assert "cached values, layer 1, kv head 0" in _visual(app)
        text = await read_screen(app, pilot, ["h"])
        assert "layer 1 · kv head 1 · values" in text


@pytest.mark.parametrize("size", SIZES)
async def test_sampling_knobs_change_the_kept_set(size) -> None:
    app = chapter_app("engine.sampling")
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        assert "kept 257 of 257 tokens" in _visual(app)
        await read_screen(app, pilot, ["k", "k"])  # top-k 40, then 10
        assert "kept 10 of 257 tokens" in _visual(app)
        await read_screen(app, pilot, ["t"] * 3)  # temperature 1.0 -> 1.5 -> 2.0 -> 0 (greedy)
        assert "kept 1 of 257" in _visual(app) and "entropy 0.00 bits" in _visual(app)
        await read_screen(app, pilot, ["s", "s"])
        assert "drawn:" in _visual(app)
        await read_screen(app, pilot, ["n", "r", "o"])
        assert "min-p 0.02" in _visual(app) and "penalty 1.2" in _visual(app) and "top-p 0.95" in _visual(app)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_speculative_greedy_matches_and_keys_change_the_draft(family) -> None:
    app = chapter_app("engine.speculative", family)
    async with app.run_test(size=(100, 30)) as pilot:
        await read_screen(app, pilot)
        assert "Draft: first 1 of 2 layers · target: all 2 · k = 4 · greedy" in _visual(app)
        assert "identical to the whole model's greedy text: yes" in _visual(app)
        assert "tokens per target pass" in _visual(app)
        await read_screen(app, pilot, ["k", "s"])
        assert "k = 6 · sampled at T=0.8" in _visual(app)
        assert "drawn from the target's distribution" in _visual(app)


@pytest.mark.parametrize("size", SIZES)
async def test_flash_attention_equals_and_walks_tiles(size) -> None:
    app = chapter_app("engine.flash-attention", "llama")
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        assert "tile 1/9: queries 0–7, keys 0–7" in _visual(app)  # 22 tokens in tiles of 8: 3 x 3 tiles
        diff = float(re.search(r"attention output: ([0-9.e+-]+)", _visual(app).replace("\n", " ")).group(1))
        assert diff < 1e-5
        await read_screen(app, pilot, ["right", "right"])
        assert "tile 3/9: queries 0–7, keys 16–21" in _visual(app) and "skipped: every key is after every query" in _visual(app)
        await read_screen(app, pilot, ["b"])
        assert "tile 1/4:" in _visual(app)  # tiles of 16: 2 x 2


@pytest.mark.parametrize("size", SIZES)
async def test_prefix_caching_reuses_and_matches(size) -> None:
    app = chapter_app("engine.prefix-caching", "llama")
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        picture = _visual(app).replace("\n", " ")
        assert "shared prefix: 22 tokens" in picture
        assert "reusing A's cache: prefill 20 tokens" in picture  # " Say it in one word." in bytes
        diff = float(re.search(r"largest difference ([0-9.e+-]+)", picture).group(1))
        assert diff < 1e-4
        await read_screen(app, pilot, ["f"])
        assert "For example," in _visual(app)


@pytest.mark.parametrize("size", SIZES)
async def test_serving_table_without_a_model(size) -> None:
    app = chapter_app("engine.serving", family=None)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "vLLM" in text and "PagedAttention" in text and "Ollama" in text
        assert "December 2026" in text  # the date the cells were checked, on the first screen
        text = await read_screen(app, pilot, ["down", "down"])
        assert "▶ llama.cpp" in text
        await read_screen(app, pilot, ["right"])
        assert "GGUF: Q2_K" in _visual(app)
        for _ in range(5):  # every column in turn at the left of the table: no cell is cut short
            assert "…" not in _visual(app).split("Table:")[0]
            await read_screen(app, pilot, ["right"])
        await read_screen(app, pilot, ["up"])
        assert "maintenance mode" in _visual(app).replace("\n", " ")  # TGI's summary says so


def test_serving_cells_fit_the_table() -> None:
    too_long = [(f.name, getattr(f, attr)) for f in FRAMEWORKS for _, attr in COLUMNS
                if len(getattr(f, attr)) > CELL_MAX]
    assert not too_long


@pytest.mark.parametrize("size", SIZES)
async def test_roofline_measures_and_places_the_points(size) -> None:
    app = chapter_app("engine.roofline")
    async with app.run_test(size=size) as pilot:
        await read_screen(app, pilot)
        picture = _visual(app).replace("\n", " ")
        assert re.search(r"memory bandwidth \d+\.\d GB/s · peak compute \d+\.\d GFLOP/s", picture)
        assert "decode ceiling =" in picture and "tokens/s" in picture
        assert re.search(r"D  decode, 1 row: 0\.\d\d FLOP/byte", picture)  # below 1: memory-bound
        assert "P  prefill, 22 rows" in picture and "FLOP/byte" in picture
