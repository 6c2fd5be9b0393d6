"""Pilot tests for the Architecture Explorer: open each chapter at 80x24 and 100x30, press its keys, read the screen."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ui_helpers import CHAPTER_PROMPT, chapter_app, read_screen, screen_text, settle

from fwdtui.app import FwdtuiApp
from fwdtui.chapters.explorer.live import _label, _n
from fwdtui.testing import random_model

SIZES = [(80, 24), (100, 30)]


async def _scroll_end(app, pilot, selector: str) -> str:
    """Scroll a picture to its end (the scroll lands after a refresh) and read the screen."""
    app.screen.query_one(selector).scroll_end(animate=False)
    await pilot.pause()
    return await read_screen(app, pilot)


# --- explorer.compare --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_compare_table_selection_and_columns(size) -> None:
    app = chapter_app("explorer.compare")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        row = next(line for line in text.splitlines() if "▶ Llama 3 8B " in line)
        assert row.split()[4:10] == ["32", "4096", "32/8", "128", "SwiGLU", "14336"]
        assert "Llama 3 8B: 8,030,261,248 parameters from the config; card 8.03B" in text
        text = await read_screen(app, pilot, ["down", "down"])
        assert "▶ Mistral 7B" in text and "Mistral 7B: 7,241,732,096 parameters" in text
        text = await read_screen(app, pilot, ["t"])  # the recipe columns
        assert "GQA 32:8 SWA" in text and "SWA: sliding window" in text
        row = next(line for line in text.splitlines() if "▶ Mistral 7B " in line)
        assert row.split()[3:7] == ["RMS", "RoPE", "10k", "GQA"]
        text = await read_screen(app, pilot, ["t"])  # the cost columns
        assert "KV/token" in text and "128 KiB" in text and "7.24B  7.24B  +0.0%" in text
        text = await read_screen(app, pilot, ["home"])
        assert "▶ GPT-2 " in text and "124M   124M" in text


@pytest.mark.parametrize("size", SIZES)
async def test_compare_diagram_marks_what_differs_from_gpt2(size) -> None:
    app = chapter_app("explorer.compare")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for _ in range(3):  # Llama 3 8B -> Gemma 2 2B
            await pilot.press("down")
        text = await read_screen(app, pilot, ["enter"])
        assert "Gemma 2 2B (google/gemma-2-2b)" in text and "◆ differs from GPT-2" in text
        assert "block ×26" in text
        assert re.search(r"│ ◆ attention +GQA 8q:4kv ×256 · RoPE · local 4096/global", text)
        assert "cap 50" in text  # on the same line, or wrapped under it at 80 columns
        assert "post-norm of the attention output" in text
        text = await _scroll_end(app, pilot, "#explorer-scroll")
        assert "for the next token" in text  # the cost-of-context lines at the end
        text = await read_screen(app, pilot, ["home", "enter"])  # back to the table, then GPT-2's own diagram
        text = await read_screen(app, pilot, ["enter"])
        assert "GPT-2 (openai-community/gpt2)" in text and "◆ attention" not in text
        assert "learned table 1,024×768, added" in text


async def test_compare_diagram_lists_the_reasons_and_the_parameter_split() -> None:
    app = chapter_app("explorer.compare")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await read_screen(app, pilot, ["enter"])
        for _ in range(4):
            await pilot.press("j")
        text = await read_screen(app, pilot)
        assert "What changed from GPT-2, and why" in text
        assert "GQA: 32 query heads share 8 key/value heads" in text
        text = await _scroll_end(app, pilot, "#explorer-scroll")
        assert re.search(r"total 8,030,261,248 computed · card 8\.03B \(\+0\.00%\)", text)
        assert "4,096 tokens  KV cache    512 MiB" in text


@pytest.mark.parametrize("size", SIZES)
async def test_compare_recipe_matrix(size) -> None:
    app = chapter_app("explorer.compare")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot, ["r"])
        assert "The modern recipe: who uses what" in text
        lines = [line.strip() for line in text.splitlines()]
        assert "GPT-2  Llama 3  Mistral  Gemma 2    Phi-3 Qwen 2.5  SmolLM2" in lines
        row = next(line for line in lines if line.startswith("soft-capping"))
        assert row.split()[1:8] == ["·", "·", "·", "✓", "·", "·", "·"]  # Gemma 2 only
        row = next(line for line in lines if line.startswith("GQA"))
        assert row.split()[1:8] == ["·", "✓", "✓", "✓", "·", "✓", "✓"]  # Phi-3-mini keeps one kv head per query head
        text = await read_screen(app, pilot, ["r"])
        assert "model " in text and "layers" in text


async def test_compare_works_without_a_model_and_adds_an_unknown_loaded_one() -> None:
    app = chapter_app("explorer.compare", family=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "▶ Llama 3 8B" in text and "needs a model" not in text
    app = chapter_app("explorer.compare", family="llama")  # a random model is none of the published rows
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot, ["down"] * 9)
        assert "▶ ▸random-llama" in text


# --- explorer.live -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_live_rows_follow_the_trace_and_keys_move(family, size) -> None:
    model = random_model(family, seed=0)
    app = chapter_app("explorer.live", model=model)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "22 tokens; token #21 't'" in text
        assert "logit lens" in text and "P(final)" in text
        # the numbers on screen are the trace's
        trace = model.trace(list(CHAPTER_PROMPT.encode()))
        norm_in = float(np.linalg.norm(trace["blocks.0.resid_pre"][-1]))
        norm_out = float(np.linalg.norm(trace["blocks.1.resid_post"][-1]))
        row0 = next(line for line in text.splitlines() if re.search(r"│ ▶ +0 ", line))
        assert row0.split()[3] == _n(norm_in)
        row1 = next(line for line in text.splitlines() if re.search(r"│ +1 ", line))
        assert row1.split()[7] == _n(norm_out)
        top = int(np.argmax(trace["probs"][-1]))
        assert f"next token {_label(model, top, 14)} {trace['probs'][-1][top]:.1%}" in text
        text = await read_screen(app, pilot, ["down"])
        assert re.search(r"│ ▶ +1 ", text) and not re.search(r"│ ▶ +0 ", text)
        text = await read_screen(app, pilot, ["left", "left"])
        assert "token #19 'm'" in text
        trace_norm = float(np.linalg.norm(trace["blocks.0.resid_pre"][19]))
        assert f"‖x‖ {_n(trace_norm)} · lens" in text
        text = await read_screen(app, pilot, ["end"])
        assert "token #21 't'" in text


async def test_live_detail_diagram_and_trust_line() -> None:
    model = random_model("llama", seed=0)
    app = chapter_app("explorer.live", model=model)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = await _scroll_end(app, pilot, "#live-scroll")
        assert f"counted in the loaded tensors {model.n_params:,}: the same" in " ".join(text.split())
        assert "block 0 of 0-1" in text and "adds ‖" in text


async def test_live_needs_a_model() -> None:
    app = chapter_app("explorer.live", family=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "needs a model" in text


async def test_live_follows_a_prompt_change() -> None:
    app = chapter_app("explorer.live", family="gpt2")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await read_screen(app, pilot, ["left"])
        app.set_prompt("hello")
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "5 tokens; token #4 'o'" in text


async def test_live_what_to_look_for_names_the_pattern() -> None:
    model = random_model("gpt2", seed=0)
    app = chapter_app("explorer.live", model=model)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "What to look for" in text and "The biggest single change is block" in text
        assert "The final answer" in text


@pytest.mark.smollm2
async def test_live_on_the_real_smollm2() -> None:
    from fwdtui import load_model
    from fwdtui.loaders.registry import local_path

    if local_path("smollm2-135m") is None:
        pytest.skip("SmolLM2-135M is not downloaded (fwdtui download smollm2-135m)")
    model = load_model("smollm2-135m")
    app = FwdtuiApp(chapter_id="explorer.live", model=model, prompt="The capital of France is", load=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = await read_screen(app, pilot)
        assert "30 blocks" in text and "next token '·Paris'" in text
        row = next(line for line in text.splitlines() if re.search(r"│ ▶ +0 ", line))
        assert float(row.split()[3]) > 0
        await _scroll_end(app, pilot, "#live-scroll")
        flat = " ".join(screen_text(app).split())  # the sentence may wrap
        assert "counted in the loaded tensors 134,515,008: the same (model card: 135M, the SmolLM2-135M row" in flat
