"""Pilot tests for the quantization chapters: open each at 80x24 (and 100x30) on a tiny model, press
its keys, and read the screen."""

from __future__ import annotations

import re

import pytest
from ui_helpers import chapter_app, read_screen, screen_text


def _scroll_end(app, selector: str = "#visual VerticalScroll") -> None:
    app.screen.query_one(selector).scroll_end(animate=False)


# --- formats -------------------------------------------------------------------------------------


async def test_formats_without_a_model_uses_the_synthetic_row() -> None:
    app = chapter_app("quantization.formats", family=None)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "synthetic row" in text
        assert "Weight #0 = 0.0050292" in text  # seeded: the same on every machine
        text = await read_screen(app, pilot, ["right", "right"])
        assert "Weight #2 =" in text


async def test_formats_bits_change_when_the_value_is_doubled() -> None:
    app = chapter_app("quantization.formats", "llama")
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot)
        assert "layers.0.self_attn.q_proj.weight, row 0 (32 weights)" in text
        fp16 = re.search(r"FP16\s+([01]{16})", text).group(1)
        text = await read_screen(app, pilot, ["plus"])
        assert "× 2" in text
        fp16_doubled = re.search(r"FP16\s+([01]{16})", text).group(1)
        # doubling adds one to the exponent and leaves sign and mantissa alone
        assert fp16_doubled[0] == fp16[0] and fp16_doubled[6:] == fp16[6:]
        assert int(fp16_doubled[1:6], 2) == int(fp16[1:6], 2) + 1
        text = await read_screen(app, pilot, ["t"])
        assert "k_proj.weight, row 0" in text
        _scroll_end(app)
        text = await read_screen(app, pilot)
        assert "Range against precision" in text and "65504" in text


# --- damage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_damage_fills_the_table_and_more_bits_do_less_harm(family) -> None:
    app = chapter_app("quantization.damage", family)
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot, gone="measuring")
        assert "all layers: " in text and "prompt of 22 tokens" in text
        for name in ("FP16", "INT8 channel", "INT4 g64", "INT2 g64", "Q8_0", "Q4_0", "NF4 b64"):
            assert re.search(rf"^ *▶? *{name} +\d+\.\d\d +[\d.]+ KiB", text, re.M), name
        kl = {name: row.damage.kl.mean() for name, row in app.screen.rows.items()}
        assert kl["FP16"] < kl["INT8 channel"] < kl["INT4 g64"] < kl["INT2 g64"]
        text = await read_screen(app, pilot, ["down", "down", "down", "down"])
        assert "INT8 channel: KL at each of the 22 positions" in text


async def test_damage_scope_and_small_screen() -> None:
    app = chapter_app("quantization.damage", "llama")
    async with app.run_test(size=(80, 24)) as pilot:
        await read_screen(app, pilot, gone="measuring")
        text = await read_screen(app, pilot, ["s"], until="attention only", gone="measuring")
        assert "attention only: 8 of 14 matrices" in text
        text = await read_screen(app, pilot, ["s", "s", "s"], until="last layer", gone="measuring")
        assert "last layer: 7 of 14 matrices" in text


# --- GGUF ----------------------------------------------------------------------------------------


async def test_gguf_block_is_decoded_and_bit_exact_with_gguf() -> None:
    app = chapter_app("quantization.gguf", "llama")
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "A real block: layers.0.self_attn.q_proj.weight, weights 0–31 as Q4_1" in text
        assert "128 bytes in FP32 → 20 bytes (5 bits per weight)" in text
        assert "bytes identical to gguf.quants.quantize" in text
        text = await read_screen(app, pilot, ["f", "b"])
        assert "weights 256–511 as Q4_K" in text and "144 bytes (4.5 bits per weight)" in text
        assert "256-weight" in text  # rows of 32 are not whole K-quant blocks: said on screen
        text = await read_screen(app, pilot, ["f", "f"])
        assert "as Q8_0" in text and "bytes identical to gguf.quants.quantize" in text
        _scroll_end(app)
        text = await read_screen(app, pilot)
        assert "Q6_K  256 w  210 B" in text
        assert "not loaded from a GGUF file" in text


# --- GPTQ, AWQ -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_gptq_beats_rtn_on_the_calibration_tokens(family) -> None:
    app = chapter_app("quantization.gptq", family)
    async with app.run_test(size=(100, 30)) as pilot:
        text = await read_screen(app, pilot)
        view = app.screen.result
        assert view.result.gptq_error < view.result.rtn_error
        assert "calibrated on the prompt (22 tokens)" in " ".join(text.split())  # the line may wrap
        assert re.search(r"round-to-nearest +[\d.e+-]+ +[\d.e+-]+ +[\d.e+-]+", text)
        assert "Step 0: column 0" in text
        text = await read_screen(app, pilot, ["right", "right"])
        assert "Step 2: column 2" in text
        text = await read_screen(app, pilot, ["k", "n"])
        view = app.screen.result
        assert view.bits == 3 and view.calibration.startswith("prompt + ") and view.n_cal > 22
        assert "INT3 groups of 32" in " ".join(text.split())
        text = await read_screen(app, pilot, ["l", "t"])
        name = "h.0.attn.c_proj" if family == "gpt2" else "layers.0.self_attn.k_proj"
        assert name in text


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_awq_scales_the_loud_channels_and_folds_them(family) -> None:
    app = chapter_app("quantization.awq", family)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        v = app.screen.result
        assert v.result.awq_error <= v.result.rtn_error
        assert "AWQ α=" in text and "loudest: #" in text
        # folding 1/s into the norm before gives the same logits as scaling explicitly
        assert v.absorber is not None and v.fold_diff < 1e-3
        _scroll_end(app)
        text = await read_screen(app, pilot)
        assert "Folded for real:" in text
        text = await read_screen(app, pilot, ["t"])
        assert app.screen.result.label in ("attn.c_proj", "k_proj")


# --- bitsandbytes, trade-offs ---------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
async def test_bitsandbytes_outliers_and_nf4(family) -> None:
    app = chapter_app("quantization.bitsandbytes", family)
    async with app.run_test(size=(80, 24)) as pilot:
        await read_screen(app, pilot)
        v = app.screen.result
        # the view opens on the largest activation; halving the threshold until features show up
        for _ in range(6):
            if v.int8.outliers.size:
                break
            await read_screen(app, pilot, ["minus"])
            v = app.screen.result
        text = screen_text(app)
        assert v.int8.outliers.size and v.err_split < v.err_plain
        assert re.search(r"\d+ outlier features? above", text)
        assert v.nf4_err < v.int4_err
        text = await read_screen(app, pilot, ["i"])
        assert "MLP" in text or "attention input" in text
        _scroll_end(app)
        text = await read_screen(app, pilot)
        assert "NF4 (normal quantiles)" in text and "INT4 (evenly spaced)" in text


async def test_tradeoffs_table_and_published_sizes() -> None:
    app = chapter_app("quantization.tradeoffs", "llama")
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot, gone="measuring")
        assert "FP32 (original)" in text and "INT2 g64" in text
        assert len(app.screen.rows) == 8
        _scroll_end(app)
        text = await read_screen(app, pilot)
        assert "13.0 GiB" in text  # 7B at 16 bits
        assert "754.4 GiB" in text  # 405B at 16 bits
