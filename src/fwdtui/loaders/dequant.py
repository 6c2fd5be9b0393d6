"""Our own numpy dequantizers for GGUF's block formats (F32, F16, BF16, Q4_0 ... Q8_0, Q2_K ... Q6_K).

A quantized GGUF tensor is a run of fixed-size blocks. Each block holds a few scale numbers
(fp16) and many small integers; a weight is rebuilt as `scale * q` or `scale * q - min`.
"Legacy" formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) use blocks of 32 weights with one scale.
"K-quants" (Q2_K ... Q6_K) use super-blocks of 256 weights split into 8 or 16 sub-blocks, each
with its own small integer scale, itself scaled by the super-block's fp16 `d` (and `dmin`).

Every layout is spelled out as a numpy structured dtype, so a block is read by field name.
All multi-byte fields are little-endian, as GGUF stores them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

QK = 32  # weights per block in the legacy formats
QK_K = 256  # weights per super-block in the K-quants

# --- block layouts (field, type, count); sizes are checked against gguf's table below --------

BLOCK_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # 18 bytes: 32 x 4-bit, one scale
BLOCK_Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)])  # 20 bytes: + a min
BLOCK_Q5_0 = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])  # 22 bytes: 32 x 5-bit
BLOCK_Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])  # 24 bytes
BLOCK_Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", 32)])  # 34 bytes: 32 x int8
BLOCK_Q2_K = np.dtype([("scales", "u1", 16), ("qs", "u1", 64), ("d", "<f2"), ("dmin", "<f2")])  # 84
BLOCK_Q3_K = np.dtype([("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12), ("d", "<f2")])  # 110
BLOCK_Q4_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)])  # 144
BLOCK_Q5_K = np.dtype(
    [("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32), ("qs", "u1", 128)]
)  # 176
BLOCK_Q6_K = np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")])  # 210


def _blocks(raw: np.ndarray, block: np.dtype) -> np.ndarray:
    """View raw tensor bytes as an array of blocks (no copy when `raw` is contiguous)."""
    data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if data.size % block.itemsize:
        raise ValueError(f"{data.size} bytes is not a whole number of {block.itemsize}-byte blocks")
    return data.view(block)


def _f32(x: np.ndarray) -> np.ndarray:
    """fp16 (or small int) field -> float32 column, ready to broadcast over a block."""
    return x.astype(np.float32)[..., None]


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[..., n] bytes -> [..., 2n] 4-bit values: all the low nibbles first, then all the high ones."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


# --- floats -------------------------------------------------------------------------------------


def dequant_f32(raw: np.ndarray) -> np.ndarray:
    """F32: 4 bytes per weight, nothing to undo."""
    return np.ascontiguousarray(raw).reshape(-1).view(np.uint8).view("<f4").astype(np.float32)


def dequant_f16(raw: np.ndarray) -> np.ndarray:
    """F16: IEEE half, 2 bytes per weight (1 sign, 5 exponent, 10 mantissa bits)."""
    return np.ascontiguousarray(raw).reshape(-1).view(np.uint8).view("<f2").astype(np.float32)


def dequant_bf16(raw: np.ndarray) -> np.ndarray:
    """BF16: the top 16 bits of a float32 (same 8-bit exponent, 7-bit mantissa): shift them back up."""
    top = np.ascontiguousarray(raw).reshape(-1).view(np.uint8).view("<u2").astype(np.uint32)
    return (top << 16).view(np.float32)


# --- legacy blocks of 32 ------------------------------------------------------------------------


def dequant_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0, 18 bytes / 32 weights: fp16 scale d; 16 bytes of 4-bit q. w = d * (q - 8).

    Byte j holds weight j in its low nibble and weight j+16 in its high nibble.
    """
    b = _blocks(raw, BLOCK_Q4_0)  # [n_blocks]
    q = _nibbles(b["qs"]).astype(np.int8) - 8  # [n_blocks, 32] in -8..7
    return (_f32(b["d"]) * q.astype(np.float32)).reshape(-1)


def dequant_q4_1(raw: np.ndarray) -> np.ndarray:
    """Q4_1, 20 bytes / 32 weights: fp16 scale d, fp16 min m; 4-bit q as in Q4_0. w = d * q + m."""
    b = _blocks(raw, BLOCK_Q4_1)  # [n_blocks]
    q = _nibbles(b["qs"]).astype(np.float32)  # [n_blocks, 32] in 0..15
    return (_f32(b["d"]) * q + _f32(b["m"])).reshape(-1)


def _five_bit(b: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1 quants: low 4 bits as in Q4_0, bit 4 of weight j is bit j of the 32-bit qh."""
    high = (b["qh"][:, None] >> np.arange(QK, dtype=np.uint32)) & 1  # [n_blocks, 32]
    return _nibbles(b["qs"]) | (high.astype(np.uint8) << 4)  # [n_blocks, 32] in 0..31


def dequant_q5_0(raw: np.ndarray) -> np.ndarray:
    """Q5_0, 22 bytes / 32 weights: fp16 d; 4 bytes of 5th bits; 16 bytes of low nibbles. w = d * (q - 16)."""
    b = _blocks(raw, BLOCK_Q5_0)
    q = _five_bit(b).astype(np.int8) - 16  # [n_blocks, 32] in -16..15
    return (_f32(b["d"]) * q.astype(np.float32)).reshape(-1)


def dequant_q5_1(raw: np.ndarray) -> np.ndarray:
    """Q5_1, 24 bytes / 32 weights: fp16 d, fp16 m; 5-bit q as in Q5_0. w = d * q + m."""
    b = _blocks(raw, BLOCK_Q5_1)
    q = _five_bit(b).astype(np.float32)  # [n_blocks, 32] in 0..31
    return (_f32(b["d"]) * q + _f32(b["m"])).reshape(-1)


def dequant_q8_0(raw: np.ndarray) -> np.ndarray:
    """Q8_0, 34 bytes / 32 weights: fp16 scale d; 32 signed bytes q. w = d * q."""
    b = _blocks(raw, BLOCK_Q8_0)
    return (b["qs"].astype(np.float32) * _f32(b["d"])).reshape(-1)


# --- K-quants: super-blocks of 256 --------------------------------------------------------------


def dequant_q2_k(raw: np.ndarray) -> np.ndarray:
    """Q2_K, 84 bytes / 256 weights: 16 sub-blocks of 16, 2-bit q. w = d * sc * q - dmin * m.

    scales[i]: low nibble = sc, high nibble = m of sub-block i (4 bits each), scaled by the fp16
    d and dmin at the end of the block. qs: each half (128 weights) uses 32 bytes; the four 2-bit
    fields of byte l (bits 0-1, 2-3, 4-5, 6-7) are weights l, l+32, l+64, l+96 of that half.
    """
    b = _blocks(raw, BLOCK_Q2_K)
    n = b.shape[0]
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]  # [4, 1]
    q = (b["qs"].reshape(n, 2, 1, 32) >> shifts) & 3  # [n, half, field, 32]
    q = q.reshape(n, 16, 16).astype(np.float32)  # [n, sub-block, 16] in weight order
    sc = _f32(b["d"]) * (b["scales"] & 0x0F).astype(np.float32)  # [n, 16]
    m = _f32(b["dmin"]) * (b["scales"] >> 4).astype(np.float32)  # [n, 16]
    return (sc[..., None] * q - m[..., None]).reshape(-1)


def _q3_k_scales(scales: np.ndarray) -> np.ndarray:
    """[n, 12] bytes -> [n, 16] six-bit scales minus 32.

    Scale i: low 4 bits in byte i % 8 (low nibble for i < 8, high nibble after); its top 2 bits
    in byte 8 + i % 4, at bit position 2 * (i // 4).
    """
    i = np.arange(16)
    low = (scales[:, i % 8] >> (4 * (i // 8)).astype(np.uint8)) & 0x0F  # [n, 16]
    high = (scales[:, 8 + i % 4] >> (2 * (i // 4)).astype(np.uint8)) & 0x03  # [n, 16]
    return (low | (high << 4)).astype(np.int8) - 32  # [n, 16] in -32..31


def dequant_q3_k(raw: np.ndarray) -> np.ndarray:
    """Q3_K, 110 bytes / 256 weights: 16 sub-blocks of 16, 3-bit q (-4..3). w = d * sc * q.

    The low 2 bits of q are packed like Q2_K's qs. The third bit comes from hmask: weight
    32 * g + l (g = 0..7) takes bit g of hmask[l]; a *clear* bit means subtract 4.
    Scales are 6 bits each, packed into 12 bytes (see _q3_k_scales), stored plus 32.
    """
    b = _blocks(raw, BLOCK_Q3_K)
    n = b.shape[0]
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]  # [4, 1]
    low = ((b["qs"].reshape(n, 2, 1, 32) >> shifts) & 3).reshape(n, 8, 32)  # [n, group g, l]
    bit = (b["hmask"][:, None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1  # [n, g, l]
    q = low.astype(np.int8) - 4 * (1 - bit.astype(np.int8))  # [n, 8, 32] in -4..3
    sc = _f32(b["d"]) * _q3_k_scales(b["scales"]).astype(np.float32)  # [n, 16]
    return (sc[..., None] * q.reshape(n, 16, 16).astype(np.float32)).reshape(-1)


def _k4_scales_mins(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: [n, 12] bytes -> 8 six-bit scales and 8 six-bit mins, each [n, 8].

    Sub-blocks 0-3: scale = low 6 bits of byte j, min = low 6 bits of byte j+4.
    Sub-blocks 4-7: low 4 bits from byte j+4 (scale: low nibble, min: high nibble); top 2 bits
    are the spare top bits of bytes j-4 (scale) and j (min).
    """
    s = scales.astype(np.uint8)
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
    return sc, mn


def dequant_q4_k(raw: np.ndarray) -> np.ndarray:
    """Q4_K, 144 bytes / 256 weights: 8 sub-blocks of 32, 4-bit q. w = d * sc * q - dmin * m.

    fp16 d and dmin; 12 bytes of six-bit (sc, m) pairs; 128 bytes of nibbles. Each 32-byte run
    of qs covers 64 weights: low nibbles are sub-block 2c, high nibbles sub-block 2c+1.
    """
    b = _blocks(raw, BLOCK_Q4_K)
    n = b.shape[0]
    q = _nibbles(b["qs"].reshape(n, 4, 32)).reshape(n, 8, 32).astype(np.float32)  # [n, sub, 32]
    sc, mn = _k4_scales_mins(b["scales"])
    d = _f32(b["d"]) * sc.astype(np.float32)  # [n, 8]
    m = _f32(b["dmin"]) * mn.astype(np.float32)  # [n, 8]
    return (d[..., None] * q - m[..., None]).reshape(-1)


def dequant_q5_k(raw: np.ndarray) -> np.ndarray:
    """Q5_K, 176 bytes / 256 weights: Q4_K plus a 5th bit: weight l of sub-block s takes bit s of qh[l]."""
    b = _blocks(raw, BLOCK_Q5_K)
    n = b.shape[0]
    low = _nibbles(b["qs"].reshape(n, 4, 32)).reshape(n, 8, 32)  # [n, sub, 32]
    high = (b["qh"][:, None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1  # [n, sub, 32]
    q = (low | (high << 4)).astype(np.float32)  # [n, 8, 32] in 0..31
    sc, mn = _k4_scales_mins(b["scales"])
    d = _f32(b["d"]) * sc.astype(np.float32)
    m = _f32(b["dmin"]) * mn.astype(np.float32)
    return (d[..., None] * q - m[..., None]).reshape(-1)


def dequant_q6_k(raw: np.ndarray) -> np.ndarray:
    """Q6_K, 210 bytes / 256 weights: 16 sub-blocks of 16, 6-bit q (-32..31). w = d * sc * q.

    Each half (128 weights) uses 64 bytes of ql (low 4 bits), 32 of qh (top 2 bits), 8 int8
    scales. Weight l, l+32 take the low nibbles of ql[l], ql[l+32]; weights l+64, l+96 their high
    nibbles; the top bits of weights l, l+32, l+64, l+96 are bits 0-1, 2-3, 4-5, 6-7 of qh[l].
    """
    b = _blocks(raw, BLOCK_Q6_K)
    n = b.shape[0]
    low = _nibbles(b["ql"].reshape(n, 2, 64))  # [n, half, 128] in weight order
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]  # [4, 1]
    high = ((b["qh"].reshape(n, 2, 1, 32) >> shifts) & 3).reshape(n, 2, 128)  # [n, half, 128]
    q = (low | (high << 4)).astype(np.int8) - 32  # [n, 2, 128] in -32..31
    sc = _f32(b["d"]) * b["scales"].astype(np.float32)  # [n, 16]
    return (sc[..., None] * q.reshape(n, 16, 16).astype(np.float32)).reshape(-1)


T = GGMLQuantizationType
DEQUANTIZERS: dict[GGMLQuantizationType, Callable[[np.ndarray], np.ndarray]] = {
    T.F32: dequant_f32,
    T.F16: dequant_f16,
    T.BF16: dequant_bf16,
    T.Q4_0: dequant_q4_0,
    T.Q4_1: dequant_q4_1,
    T.Q5_0: dequant_q5_0,
    T.Q5_1: dequant_q5_1,
    T.Q8_0: dequant_q8_0,
    T.Q2_K: dequant_q2_k,
    T.Q3_K: dequant_q3_k,
    T.Q4_K: dequant_q4_k,
    T.Q5_K: dequant_q5_k,
    T.Q6_K: dequant_q6_k,
}

_BLOCKS = {
    T.Q4_0: BLOCK_Q4_0, T.Q4_1: BLOCK_Q4_1, T.Q5_0: BLOCK_Q5_0, T.Q5_1: BLOCK_Q5_1, T.Q8_0: BLOCK_Q8_0,
    T.Q2_K: BLOCK_Q2_K, T.Q3_K: BLOCK_Q3_K, T.Q4_K: BLOCK_Q4_K, T.Q5_K: BLOCK_Q5_K, T.Q6_K: BLOCK_Q6_K,
}
for _qtype, _block in _BLOCKS.items():  # our layouts must agree with gguf's table of sizes
    assert GGML_QUANT_SIZES[_qtype][1] == _block.itemsize, _qtype.name


def tensor_nbytes(qtype: GGMLQuantizationType, n_elements: int) -> int:
    """Bytes a tensor of `n_elements` weights takes in format `qtype`."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    return n_elements // block_size * type_size


def dequantize(raw: np.ndarray, qtype: GGMLQuantizationType | int, shape: tuple[int, ...]) -> np.ndarray:
    """Raw GGUF tensor bytes -> float32 array of `shape` (numpy order, slowest dimension first)."""
    qtype = GGMLQuantizationType(qtype)
    ours = DEQUANTIZERS.get(qtype)
    if ours is not None:
        flat = ours(raw)
    else:
        # Formats we do not teach (the IQ* and ternary ones) go through gguf's own code.
        from gguf.quants import dequantize as gguf_dequantize

        block_size, type_size = GGML_QUANT_SIZES[qtype]
        rows = np.ascontiguousarray(raw).reshape(-1).view(np.uint8).reshape(-1, type_size)
        flat = gguf_dequantize(rows, qtype).reshape(-1)
    return flat.reshape(shape)
