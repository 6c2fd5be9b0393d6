"""Pilot tests for the reasoning and multimodal chapters: open each at 80x24 and 100x30 on a tiny model,
press its keys, and read the screen."""

from __future__ import annotations

import numpy as np
import pytest
from ui_helpers import read_screen

from fwdtui.app import FwdtuiApp
from fwdtui.testing import random_model

PROMPT = "the cat sat on the mat"
SIZES = [(80, 24), (100, 30)]


def _app(chapter: str, family: str | None = "gpt2", **shape) -> FwdtuiApp:
    model = random_model(family, seed=0, **shape) if family else None
    return FwdtuiApp(chapter_id=chapter, model=model, prompt=PROMPT, load=False)


def _scroll_end(app, name: str) -> None:
    app.screen.query_one(f"#{name}-scroll").scroll_end(animate=False)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_reasoning_generates_both_ways_and_grades_them(family, size) -> None:
    app = _app("modern.reasoning", family)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot, until="answer:")
        assert "What is 15 + 27?" in text and "known answer: 42" in text
        assert "A. asked plainly" in text and "B. + step by step" in text
        r = app.screen.result
        plain, chain = r.attempts
        assert 0 < len(plain.gen.tokens) <= 48 and 0 < len(chain.gen.tokens) <= 48
        assert chain.n_prompt == plain.n_prompt + len("\nLet's think step by step.")  # byte tokens
        assert all(lp <= 0 for lp in plain.gen.logprobs)
        _scroll_end(app, "reason")
        text = await read_screen(app, pilot)
        assert "full pass" in text and ("Both wrong" in text or "right" in text)
        text = await read_screen(app, pilot, ["t"], until="reply starts")
        r2 = app.screen.result
        assert r2.cue_place == "reply" and r2.attempts[1].prefill == "Let's think step by step."
        assert r2.attempts[0] is plain  # the plain answer is reused, not generated again
        app.screen.query_one("#reason-scroll").scroll_home(animate=False)
        text = await read_screen(app, pilot, ["n"], until="apples")
        assert "known answer: 3" in text


async def test_reasoning_asks_the_users_prompt_last_without_grading() -> None:
    app = _app("modern.reasoning", "llama")
    async with app.run_test(size=(100, 30)) as pilot:
        await read_screen(app, pilot, ["n", "n", "n", "n"])
        r = app.screen.result
        assert r.question == PROMPT and r.known is None
        text = await read_screen(app, pilot)
        assert "no known answer" in text and "✓" not in text and "✗" not in text


async def test_reasoning_says_when_the_context_is_too_short() -> None:
    app = _app("modern.reasoning", "gpt2", n_ctx=40)
    async with app.run_test(size=(80, 24)) as pilot:
        text = " ".join((await read_screen(app, pilot)).split())
        assert "has a context of 40" in text and "press p" in text


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_multimodal_cuts_the_picture_and_joins_the_text(family, size) -> None:
    app = _app("modern.multimodal", family)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot, until="patches")
        assert "cut into 16×16-pixel patches: 4×4 = 16" in text and "▀" in text
        r = app.screen.result
        assert r.n_embd == 32 and r.cut.tokens.shape == (16, 32)  # the tiny model's own width
        text = await read_screen(app, pilot, ["s"])
        assert "32×32-pixel patches: 2×2 = 4" in text
        text = await read_screen(app, pilot, ["s"])
        assert "8×8-pixel patches: 8×8 = 64" in text and app.screen.result.cut.tokens.shape == (64, 32)
        _scroll_end(app, "mm")
        text = await read_screen(app, pilot)
        assert "Where they enter the language model" in text and "text token embeddings" in text
        assert "[64 image tokens]" in text
        norm = float(np.linalg.norm(app.screen.result.cut.tokens, axis=-1).mean())
        assert f"projected patches {norm:.2f}" in text
        before = app.screen.result.image
        await read_screen(app, pilot, ["i"])
        assert app.screen.result.seed == 1 and not np.array_equal(app.screen.result.image, before)


async def test_multimodal_works_without_a_model_and_counts_encoder_tokens() -> None:
    app = _app("modern.multimodal", None)
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot, until="patches")
        assert app.screen.result.n_embd == 768 and app.screen.result.model_name is None
        for _ in range(30):  # scroll down to the encoder table
            text = await read_screen(app, pilot, ["j"])
            if " 577 " in text:
                break
        assert "CLIP ViT-L/14 @224" in text and " 257 " in text and " 577 " in text
        _scroll_end(app, "mm")
        text = await read_screen(app, pilot)
        assert "1,500 tokens" in text and "No model loaded" in text
