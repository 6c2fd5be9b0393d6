"""Pilot tests for the training chapters: open each at 80x24 and 100x30 on a tiny model, press its keys,
and read the screen."""

from __future__ import annotations

import math

import pytest
from ui_helpers import chapter_app, read_screen, screen_text

SIZES = [(80, 24), (100, 30)]


def _scroll_end(app, name: str) -> None:
    app.screen.query_one(f"#{name}-scroll").scroll_end(animate=False)


@pytest.mark.parametrize("size", SIZES)
async def test_pretraining_shows_real_loss_and_trains_live(size) -> None:
    app = chapter_app("training.pretraining")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "mean loss" in text and "perplexity" in text
        for _ in range(60):  # the tiny run takes about 2 s
            await pilot.pause(0.1)
            if "done, 300 steps" in screen_text(app):
                break
        _scroll_end(app, "pretrain")
        text = await read_screen(app, pilot)
        assert "step 300/300" in text and "sample after:" in text and "(when the run ends)" not in text
        before = app.screen.before
        await read_screen(app, pilot, ["t"])  # a new run with the next seed (the pilot waits for it to end)
        assert app.screen.before != before and len(app.screen.run_losses) == 300
        app.screen.action_train()
        app.screen.action_stop()  # stop it at once (a key press would only arrive after the run)
        for _ in range(30):
            await pilot.pause(0.1)
            if "stopped at step" in screen_text(app):
                break
        _scroll_end(app, "pretrain")
        text = await read_screen(app, pilot)
        assert "stopped at step" in text and "step 300/300" not in text


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_sft_masks_the_prompt_part(family, size) -> None:
    app = chapter_app("training.sft", family)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "plain transcript" in text and "assistant:" in text
        assert "loss with the mask (assistant only)" in text and "grey: masked out" in text
        assert "over 33 tokens" in text  # " The capital of France is Paris.\n": 33 byte tokens
        text = await read_screen(app, pilot, ["l"])
        assert "mask off: every token counts" in text
        text = await read_screen(app, pilot, ["n", "n", "n"])  # the last example asks the user's prompt
        assert app.screen.example_index == 3 and "over 40 tokens" in text


@pytest.mark.parametrize("size", SIZES)
async def test_dpo_starts_at_log2_and_the_shift_lowers_the_loss(size) -> None:
    app = chapter_app("training.dpo")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "Eggs are round." in text and "log ref(chosen)" in text
        assert f"= {math.log(2):.4f}" in text  # margin 0 at step 0
        text = await read_screen(app, pilot, ["right", "right"])
        assert "ref +1.0" in text and "DPO loss = -log σ(0.1·+1.00) = 0.6444" in text
        text = await read_screen(app, pilot, ["b", "left", "left", "left", "left"])
        assert "β = 0.3" in text and "margin = (-1.00)" in text and "= 0.8544" in text


@pytest.mark.parametrize("size", SIZES)
async def test_grpo_samples_a_group_and_ranks_it(size) -> None:
    app = chapter_app("training.grpo")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "answers 4 times (seed 0)" in text and "rewards: mean" in text
        text = await read_screen(app, pilot, ["g"])
        assert "answers 8 times (seed 0)" in text
        text = await read_screen(app, pilot, ["r"])
        assert "answers 8 times (seed 1)" in text
        _scroll_end(app, "grpo")
        text = await read_screen(app, pilot)
        assert "pushed up" in text or "nothing to learn" in text


@pytest.mark.parametrize("size", SIZES)
async def test_rlhf_kl_penalty_is_zero_at_temperature_one(size) -> None:
    app = chapter_app("training.rlhf", "llama")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "policy = model at T 0.7, β 0.1" in text and "KL est" in text
        text = await read_screen(app, pilot, ["t"])
        assert "policy = model at T 1.0" in text and "+0.00" in text
        r = app.screen.result  # at T 1 the policy is the reference: log π = log ref, KL 0
        assert r.logp_policy and all(abs(p - q) < 1e-9 for p, q in zip(r.logp_policy, r.logp_ref))
        text = await read_screen(app, pilot, ["b", "r"])
        assert "β 0.5" in text and "answers (seed 1)" in text


@pytest.mark.parametrize("size", SIZES)
async def test_base_to_assistant_shows_the_recipe_and_both_answers(size) -> None:
    app = chapter_app("training.base-to-assistant")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "1. The recipe" in text and "Pre-training" in text
        _scroll_end(app, "recipe")
        text = await read_screen(app, pilot)
        assert "has no chat template" in text and "as plain text:" in text and "in chat template:" in text
        text = await read_screen(app, pilot, ["n"])
        _scroll_end(app, "recipe")
        assert "rhymes with cat" in await read_screen(app, pilot)


async def test_every_training_chapter_is_registered() -> None:
    import fwdtui.chapters as chapters

    ids = {c.ID for c in chapters.written_chapters() if c.SECTION == "training"}
    assert ids == {"training.pretraining", "training.sft", "training.rlhf", "training.grpo", "training.dpo",
                   "training.base-to-assistant"}
    assert "training" not in chapters.LOAD_ERRORS
