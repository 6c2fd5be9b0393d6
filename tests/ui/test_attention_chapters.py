"""Pilot tests for the eight attention chapters: open each at 80x24 (and 100x30) on a tiny model,
press its keys, and read the screen."""

from __future__ import annotations

import re

import pytest
from ui_helpers import chapter_app, read_screen


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_why_shows_sources_vectors_and_the_two_contexts(family) -> None:
    app = chapter_app("attention.why", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "Token #21 't' in layer 0 (heads averaged) drew from:" in text
        assert "before" in text and "+ attn" in text and "after" in text
        await pilot.press("left", "l", "h")
        text = await read_screen(app, pilot)
        assert "Token #20 'a' in layer 1 (head 0)" in text
        app.screen.query_one("#why-scroll").scroll_end(animate=False)
        text = await read_screen(app, pilot, ["x"])
        assert "He swung the heavy baseball bat" in text
        assert "input 1.00" in text or family == "gpt2"  # GPT-2 adds position vectors to the input


async def test_why_updates_when_the_prompt_changes() -> None:
    app = chapter_app("attention.why")
    async with app.run_test(size=(80, 24)) as pilot:
        await read_screen(app, pilot)
        app.set_prompt("hello")
        text = await read_screen(app, pilot)
        assert "Token #4 'o'" in text


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_scaled_dot_product_matches_the_trace_and_playground_changes_it(family) -> None:
    app = chapter_app("attention.scaled-dot-product", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "query #21 't'" in text
        assert "÷√8" in text
        diff = float(re.search(r"max \|difference\| ([0-9.e+-]+)", text).group(1))
        assert diff < 1e-5
        entropy_scaled = float(re.search(r"entropy ([0-9.]+) bits", text).group(1))
        text = await read_screen(app, pilot, ["s"])
        assert "(no scale)" in text and "with no scale z moves" in text
        entropy_raw = float(re.search(r"entropy ([0-9.]+) bits", text).group(1))
        assert entropy_raw <= entropy_scaled
        text = await read_screen(app, pilot, ["s", "left", "left", "u"])
        assert "with no mask z moves" in text


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_multi_head_tiles_roles_and_ablation(family) -> None:
    app = chapter_app("attention.multi-head", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "Layer 0: 4 heads on your prompt" in text
        assert "H3" in text and "strongest: induction" in text
        text = await read_screen(app, pilot, ["h", "a"])
        assert "Without L0.H1: KL" in text
        text = await read_screen(app, pilot, ["r"])
        assert "repeated random sequence (49 tokens)" in text or "repeated random sequence (48 tokens)" in text


@pytest.mark.parametrize("family,own", [("gpt2", "learned"), ("llama", "rotary")])
async def test_positional_encoding_starts_on_the_models_own_scheme(family, own) -> None:
    app = chapter_app("attention.positional-encoding", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert f"{own}{' table' if own == 'learned' else ''} ★" in text
        if own == "rotary":
            assert "offset Δ" in text and "never where the" in text
            text = await read_screen(app, pilot, ["v"])
            assert "This model has no table of positions." in text
        else:
            assert "cosine between GPT-2's learned position vectors" in text
            text = await read_screen(app, pilot, ["v"])
            assert "PE(p, 2i) = sin" in text
            text = await read_screen(app, pilot, ["v"])
            assert "as if it did" in text and "offset Δ" in text


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_gqa_grouping_and_pooling_table(family) -> None:
    app = chapter_app("attention.gqa", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        kv = 4 if family == "gpt2" else 2
        assert f"4 query heads over {kv} kv heads" in text
        assert "(as trained)" in text and "Pooling this model's kv heads" in text
        before = text
        text = await read_screen(app, pilot, ["k"])
        assert text != before  # the detailed row moved


async def test_mla_absorbed_equals_plain_on_screen() -> None:
    app = chapter_app("attention.mla", "llama")
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "Small-scale demonstration" in text
        diff = float(re.search(r"max \|Δ output\| ([0-9.e+-]+)", text).group(1))
        assert diff < 1e-4
        assert "c = x·W_dkv [22, 16]" in text
        text = await read_screen(app, pilot, ["plus"])
        assert "c = x·W_dkv [22, 32]" in text
        text = await read_screen(app, pilot, ["minus", "minus", "minus"])
        assert "c = x·W_dkv [22, 4]" in text


async def test_sparse_patterns_and_window_sweep() -> None:
    app = chapter_app("attention.sparse", "llama")
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "window (window 4)" in text and "full" in text
        assert "first 0 tokens kept visible" in text
        text = await read_screen(app, pilot, ["v"])
        assert "window+sinks (window 4)" in text
        text = await read_screen(app, pilot, ["v", "s"])
        assert "strided (stride 4)" in text and "first 1 tokens kept visible" in text
        text = await read_screen(app, pilot, ["v", "v", "plus"])
        assert "block (block 5)" in text


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_hybrid_recurrent_equals_parallel_on_screen(family) -> None:
    app = chapter_app("attention.hybrid", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        diff = float(re.search(r"max \|Δ\| ([0-9.e+-]+)", text).group(1))
        assert diff < 1e-9
        assert "decay 1," in text
        text = await read_screen(app, pilot, ["d"])
        assert "decay 0.99" in text


@pytest.mark.parametrize("chapter", ["attention.why", "attention.scaled-dot-product", "attention.multi-head",
                                     "attention.positional-encoding", "attention.gqa", "attention.mla",
                                     "attention.sparse", "attention.hybrid"])
async def test_every_chapter_at_100x30_with_code_panel(chapter) -> None:
    app = chapter_app(chapter, "llama")
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot, ["c"])
        assert "fwdtui/core/" in text  # the code panel shows the real source file


@pytest.mark.parametrize("chapter", ["attention.why", "attention.scaled-dot-product", "attention.multi-head",
                                     "attention.positional-encoding", "attention.gqa", "attention.mla",
                                     "attention.sparse", "attention.hybrid"])
async def test_every_chapter_survives_a_one_token_prompt_and_all_its_keys(chapter) -> None:
    app = chapter_app(chapter, "llama", prompt="x")
    async with app.run_test(size=(80, 24)) as pilot:
        await read_screen(app, pilot, ["l", "h", "left", "right", "a", "r", "v", "s", "u", "x", "k", "d", "plus", "minus"])
