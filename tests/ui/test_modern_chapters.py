"""Pilot tests for the modern-techniques chapters: open each at 80x24 and 100x30 on a tiny model, press
its keys, and read the screen."""

from __future__ import annotations


import pytest
from ui_helpers import read_screen

from fwdtui.app import FwdtuiApp
from fwdtui.testing import random_model

PROMPT = "the cat sat on the mat"


def _app(chapter: str, family: str = "gpt2", **shape) -> FwdtuiApp:
    return FwdtuiApp(chapter_id=chapter, model=random_model(family, seed=0, **shape), prompt=PROMPT, load=False)


def _scroll_end(app, name: str) -> None:
    app.screen.query_one(f"#{name}-scroll").scroll_end(animate=False)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_moe_routes_tokens_and_k_changes_the_route(family, size) -> None:
    app = _app("modern.moe", family)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "8 experts" in text and "top-2" in text
        assert "Small-scale demo" in text
        assert "chosen" in text and text.count("●") >= 4  # token rows with their chosen experts
        text = await read_screen(app, pilot, ["plus"])
        assert "top-3" in text
        text = await read_screen(app, pilot, ["e"])
        assert "16 experts" in text
        _scroll_end(app, "moe")
        text = await read_screen(app, pilot)
        assert "Mixtral 8x7B" in text and "DeepSeek-V3" in text
        app.screen.query_one("#moe-scroll").scroll_home(animate=False)
        text = await read_screen(app, pilot, ["e"])
        assert "4 experts" in text


async def test_moe_dense_row_is_exact_and_router_switches() -> None:
    app = _app("modern.moe", "llama")
    async with app.run_test(size=(100, 30)) as pilot:
        await read_screen(app, pilot, ["r", "l"])
        result = app.screen.result
        assert result.routed.router == "oracle" and result.routed.layer == 1
        assert result.routed.errors[-1] < 1e-5
        _scroll_end(app, "moe")
        text = await read_screen(app, pilot)
        assert "Published MoE models" in text


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_long_context_on_rope_model_shows_rules_memory_and_loss(size) -> None:
    app = _app("modern.long-context", "llama")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "L = 128 (to 512 = ×4)" in text
        assert "NTK" in text and "YaRN" in text
        text = await read_screen(app, pilot, ["f"])
        assert "(to 1k = ×8)" in text
        _scroll_end(app, "long")
        text = await read_screen(app, pilot)
        assert "nats" in text and "Whole text" in text
        loss = app.screen.result.loss
        assert loss.n_tokens == 128 and loss.complete  # capped at the tiny model's context


async def test_long_context_on_gpt2_explains_learned_positions() -> None:
    app = _app("modern.long-context", "gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot)
        assert "wpe matrix is 128 × 32" in text
        assert "cannot even be run past 128" in text
        text = await read_screen(app, pilot, ["j"])
        assert "KV-cache memory" in text and "Llama 3 8B" in text


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_tool_use_reports_the_tiny_models_failure_honestly(size) -> None:
    app = _app("modern.tool-use", "llama", n_ctx=1024)  # the tool prompt is ~400 byte tokens
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "plain transcript" in text  # the byte tokenizer has no chat template
        for _ in range(8):
            await pilot.press("j")
        text = await read_screen(app, pilot)
        assert "✗ no valid call" in text and "1776" in text
        text = await read_screen(app, pilot, ["h", "h"])
        r = app.screen.result
        assert r.prefill == '{"tool": "calculator", "expression": "'
        assert r.call_text.startswith(r.prefill) and len(r.call_gen.tokens) <= 32
        text = await read_screen(app, pilot, ["n", "n", "n"])
        assert app.screen.result.question == PROMPT  # the fourth question is the user's prompt


async def test_tool_use_says_when_the_context_is_too_short() -> None:
    app = _app("modern.tool-use", "llama")  # 128 positions
    async with app.run_test(size=(80, 24)) as pilot:
        text = " ".join((await read_screen(app, pilot)).split())
        assert "has a context of 128" in text and "press m" in text
