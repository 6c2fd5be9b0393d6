"""The journey chapter driven with the keyboard on tiny seeded models: stages, controls, generation."""

from __future__ import annotations

import numpy as np
import pytest
from ui_helpers import PROMPT, journey_app, screen_text, settle

from fwdtui.chapters.transformer.journey import JourneyChapter
from fwdtui.chapters.transformer.stages import STAGES
from fwdtui.testing import random_model

SIZES = [(100, 30), (80, 24)]


def stage_title(text: str) -> str:
    """The "n/17 ..." line of the journey."""
    return next(line.strip() for line in text.splitlines() if line.strip().startswith(tuple(f"{i}/{len(STAGES)}" for i in range(1, 18))))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("size", SIZES)
async def test_space_walks_every_stage_to_sampling_and_each_looks_different(family: str, size) -> None:
    app = journey_app(family)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        seen = [screen_text(app)]
        for _ in range(len(STAGES) - 1):
            await pilot.press("space")
            await settle(pilot)
            seen.append(screen_text(app))
        titles = [stage_title(s) for s in seen]
        assert titles[0].startswith("1/17 text")
        assert titles[-1].startswith("17/17 appended")
        assert len(set(seen)) == len(STAGES)  # every press changed the screen
        assert any("sampling the next token" in t for t in titles)
        assert all("Traceback" not in s for s in seen)
        # backspace steps back
        await pilot.press("backspace")
        await settle(pilot)
        assert stage_title(screen_text(app)).startswith("16/17 sampling")


async def test_numbers_on_screen_are_the_trace_values() -> None:
    model = random_model("gpt2", seed=0)
    ids = model.tokenizer.encode(PROMPT)
    trace = model.trace(ids)
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        chapter = app.screen
        assert isinstance(chapter, JourneyChapter)
        chapter.action_stage([s.key for s in STAGES].index("logits"))
        await settle(pilot)
        text = screen_text(app)
        top = int(np.argmax(trace["logits"][-1]))
        assert f"'{chr(top)}' {trace['logits'][-1, top]:.4f}" in text
        assert "No stored reference for these weights" in text  # a random model has none; the suite's check is named
        # the probability of the top token, as the probs stage prints it
        chapter.action_stage([s.key for s in STAGES].index("probs"))
        await settle(pilot)
        assert f"{trace['probs'][-1, top]:6.1%}".strip() in screen_text(app)
        # the embedding norm of the selected (last) token
        chapter.action_stage([s.key for s in STAGES].index("embed"))
        await settle(pilot)
        assert f"‖x‖ {np.linalg.norm(trace['embed'][-1]):.3f}" in screen_text(app)


async def test_layer_head_and_token_keys_change_what_is_shown() -> None:
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.screen.action_stage([s.key for s in STAGES].index("attn"))
        await settle(pilot)
        assert "Attention (layer 0, head 0;" in screen_text(app)
        await pilot.press("h", "full_stop")
        await settle(pilot)
        text = screen_text(app)
        assert "Attention (layer 1, head 1;" in text
        assert "6/17 layer 1 · head 1 · attention pattern [4, 20, 20]" in text
        assert "query 19 'o'" in text  # the last token is selected at first
        await pilot.press("left", "left")
        await settle(pilot)
        assert "query 17 'l'" in screen_text(app)


async def test_sampling_controls_redraw_the_distribution() -> None:
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.screen.action_stage([s.key for s in STAGES].index("sample"))
        await settle(pilot)
        assert "257 of 257 tokens can be drawn" in screen_text(app)
        await pilot.press("k", "k")  # top-k off -> 40 -> 10
        await settle(pilot)
        text = screen_text(app)
        assert "top-k 10" in text and "10 of 257 tokens can be drawn" in text
        await pilot.press("T", "T", "T", "T")  # down to temperature 0: greedy
        await settle(pilot)
        text = screen_text(app)
        assert "temperature 0" in text and "1 of 257 tokens can be drawn" in text
        assert "◀ chosen" in text


async def test_g_generates_with_the_kv_cache_growing() -> None:
    app = journey_app("llama")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        chapter = app.screen
        assert isinstance(chapter, JourneyChapter)
        bytes_per_token = chapter.cache.bytes_per_token
        await pilot.press("g")
        await settle(pilot)
        text = screen_text(app)
        assert "17/17 appended · 21 tokens · cache 21" in text
        assert f"= {21 * bytes_per_token:,} bytes" in text
        await pilot.press("g")
        await settle(pilot)
        text = screen_text(app)
        assert "cache 22" in text and f"= {22 * bytes_per_token:,} bytes" in text
        assert "attention over 22 keys" in text
        assert len(chapter.generated) == 2


async def test_editing_the_prompt_recomputes_and_resets_generation() -> None:
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("ctrl+a", "ctrl+k")  # clear the input
        await pilot.press(*"abc")
        await pilot.press("enter")
        await settle(pilot)
        chapter = app.screen
        assert isinstance(chapter, JourneyChapter)
        assert app.session.prompt == "abc"
        assert chapter.generated == []
        chapter.action_stage(1)
        await settle(pilot)
        text = screen_text(app)
        assert "tokens · ids [3]" in text
        assert "97 98  99" in text or "97 98 99" in text


async def test_logit_lens_rows_match_the_core() -> None:
    model = random_model("gpt2", seed=0)
    ids = model.tokenizer.encode(PROMPT)
    lens = model.logit_lens(model.trace(ids), -1)
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.screen.action_stage([s.key for s in STAGES].index("lens"))
        await settle(pilot)
        await settle(pilot)
        text = screen_text(app)
        for depth, name in enumerate(["embedding", "block 0", "block 1"]):
            top = int(np.argmax(lens[depth]))
            line = next(line for line in text.splitlines() if line.strip().startswith(name))
            assert f"'{chr(top)}'" in line
