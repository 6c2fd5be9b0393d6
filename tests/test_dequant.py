"""Our GGUF dequantizers against gguf's reference implementation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize as ref_dequantize
from gguf.quants import quantize as ref_quantize

from fwdtui.loaders.dequant import DEQUANTIZERS, dequantize

# Byte offsets of the fp16 scale fields inside one block, from ggml's block structs (written out
# here independently of dequant.py, so a wrong layout there cannot hide behind the same mistake).
FP16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.IQ4_NL: [0],
}


def random_blocks(qtype: T, n_blocks: int, seed: int = 0) -> np.ndarray:
    """Random block bytes whose fp16 scales are finite, modest numbers: every bit pattern of q is hit."""
    rng = np.random.default_rng(seed)
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS[qtype]:
        scale = rng.uniform(-0.1, 0.1, size=n_blocks).astype(np.float16)
        raw[:, offset : offset + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw


@pytest.mark.parametrize("qtype", [t for t in FP16_FIELDS if t in DEQUANTIZERS], ids=lambda t: t.name)
def test_random_blocks_match_gguf_exactly(qtype: T) -> None:
    raw = random_blocks(qtype, n_blocks=64)
    ours = DEQUANTIZERS[qtype](raw)
    ref = ref_dequantize(raw, qtype).reshape(-1)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (64 * GGML_QUANT_SIZES[qtype][0],)
    assert np.isfinite(ours).all()
    assert np.abs(ours).max() > 0  # not vacuously equal
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16], ids=lambda t: t.name)
def test_quantized_weights_round_trip(qtype: T) -> None:
    """Weights quantized by gguf come back as gguf reads them, and close to the originals."""
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.05, size=(8, 256)).astype(np.float32)  # [rows, cols]
    raw = ref_quantize(weights, qtype)
    ours = dequantize(raw, qtype, weights.shape)
    np.testing.assert_array_equal(ours, ref_dequantize(raw, qtype))
    # 4-bit formats lose the most; every format stays within a small fraction of the range
    assert np.abs(ours - weights).max() < 0.25 * np.abs(weights).max()


def test_floats() -> None:
    x = np.array([1.5, -2.25, 3e-5, 65504.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(dequantize(x.view(np.uint8), T.F32, (5,)), x)
    np.testing.assert_array_equal(dequantize(x.astype(np.float16).view(np.uint8), T.F16, (5,)), x.astype(np.float16))
    # bf16 keeps the top half of each float32's bits
    top = (x.view(np.uint32) >> 16).astype(np.uint16)
    bf16 = dequantize(top.view(np.uint8), T.BF16, (5,))
    np.testing.assert_array_equal(bf16, (top.astype(np.uint32) << 16).view(np.float32))
    assert bf16[0] == 1.5 and bf16[1] == -2.25


def test_known_q4_0_block() -> None:
    """One Q4_0 block worked by hand: d = 0.5, byte j = (hi << 4) | lo."""
    d = np.array([0.5], dtype=np.float16).view(np.uint8)
    qs = np.array([(15 << 4) | 0] + [(8 << 4) | 9] * 15, dtype=np.uint8)
    w = dequantize(np.concatenate([d, qs]), T.Q4_0, (32,))
    assert w[0] == 0.5 * (0 - 8)  # low nibble of byte 0 is weight 0
    assert w[16] == 0.5 * (15 - 8)  # high nibble of byte 0 is weight 16
    assert w[1] == 0.5 and w[17] == 0.0


def test_shape_and_fallback() -> None:
    raw = random_blocks(T.Q8_0, n_blocks=6)
    assert dequantize(raw, T.Q8_0, (3, 64)).shape == (3, 64)
    # a format we do not implement ourselves goes through gguf and still comes back in shape
    assert T.IQ4_NL not in DEQUANTIZERS
    raw = random_blocks(T.IQ4_NL, n_blocks=4)
    out = dequantize(raw, T.IQ4_NL, (2, 64))
    np.testing.assert_array_equal(out, ref_dequantize(raw, T.IQ4_NL).reshape(2, 64))


def test_partial_block_rejected() -> None:
    with pytest.raises(ValueError):
        DEQUANTIZERS[T.Q4_0](np.zeros(19, dtype=np.uint8))
