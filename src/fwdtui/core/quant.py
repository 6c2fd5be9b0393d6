"""Quantization in numpy: float formats, integer and NF4 grids, LLM.int8, GPTQ, AWQ and GGUF blocks.

Everything here turns float32 weights into fewer bits and back ("quantize, then dequantize"), so
the model can run the dequantized copy through its ordinary float32 forward pass and we can
measure exactly what the rounding cost. Conventions:

- A weight matrix is handled in the [n_out, n_in] orientation (nn.Linear's). GPT-2's Conv1D
  weights are stored [n_in, n_out]; `weight_out_in` / `weight_from_out_in` turn them around, so
  "per channel" always means one scale per output row and groups always run along the inputs.
- Calibration activations X are [n_tokens, n_in]; a layer computes Y = X @ W.T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from fwdtui.loaders import dequant

# ================================================================================================
# Float formats
# ================================================================================================


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: 1 sign bit, `exp_bits` exponent bits, `man_bits` mantissa bits."""

    name: str
    exp_bits: int
    man_bits: int
    has_inf: bool = True  # E4M3 (the "FN" variant) gives its top codes to finite values instead

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def max_value(self) -> float:
        if self.has_inf:  # the all-ones exponent is reserved for inf / nan
            return (2 - 2.0 ** -self.man_bits) * 2.0 ** (2 ** self.exp_bits - 2 - self.bias)
        # E4M3FN: all-ones exponent is a normal binade; only mantissa all-ones there is NaN
        return (2 - 2.0 ** (1 - self.man_bits)) * 2.0 ** (2 ** self.exp_bits - 1 - self.bias)

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.man_bits)

    @property
    def epsilon(self) -> float:
        """Gap between 1 and the next value: the relative precision of every normal number."""
        return 2.0 ** -self.man_bits


FP32 = FloatFormat("FP32", 8, 23)
FP16 = FloatFormat("FP16", 5, 10)
BF16 = FloatFormat("BF16", 8, 7)
FP8_E4M3 = FloatFormat("FP8 E4M3", 4, 3, has_inf=False)
FP8_E5M2 = FloatFormat("FP8 E5M2", 5, 2)
FLOAT_FORMATS = (FP32, FP16, BF16, FP8_E4M3, FP8_E5M2)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding the dropped 16 bits to nearest, ties to even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    # add 0x7FFF plus the lowest kept bit: a tie rounds up only when that bit is 1 (to even)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, 0x7FC0, rounded).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns -> float32: they are the top half of a float32."""
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def minifloat_grid(fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray]:
    """Every finite non-negative value of a small float format, ascending, with its bit code (no sign)."""
    values, codes = [], []
    top_exp = 2 ** fmt.exp_bits - (1 if fmt.has_inf else 0)
    for e in range(top_exp):
        for m in range(2 ** fmt.man_bits):
            if not fmt.has_inf and e == 2 ** fmt.exp_bits - 1 and m == 2 ** fmt.man_bits - 1:
                continue  # E4M3FN: S.1111.111 is NaN
            frac = m / 2 ** fmt.man_bits
            # exponent 0 holds the subnormals: no implicit leading 1, same scale as exponent 1
            v = frac * 2.0 ** (1 - fmt.bias) if e == 0 else (1 + frac) * 2.0 ** (e - fmt.bias)
            values.append(v)
            codes.append((e << fmt.man_bits) | m)
    return np.array(values, dtype=np.float64), np.array(codes, dtype=np.int64)


def round_to_grid(x: np.ndarray, grid: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    """Index of the nearest grid value for each |x| (grid ascending); ties go to the even code.

    Values past the end saturate to the largest grid value.
    """
    a = np.abs(np.asarray(x, dtype=np.float64))
    hi = np.clip(np.searchsorted(grid, a), 1, len(grid) - 1)  # grid[hi-1] <= a <= grid[hi] inside
    lo = hi - 1
    d_lo, d_hi = a - grid[lo], grid[hi] - a
    pick_hi = d_hi < d_lo
    if codes is not None:
        tie = d_hi == d_lo
        pick_hi |= tie & (codes[hi] % 2 == 0)
    idx = np.where(pick_hi, hi, lo)
    return np.where(a >= grid[-1], len(grid) - 1, idx)


def round_to_format(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """float32 values -> the nearest value `fmt` can hold (as float32): what storing them in it keeps."""
    x = np.asarray(x, dtype=np.float32)
    if fmt is FP32:
        return x.copy()
    if fmt is FP16:
        return x.astype(np.float16).astype(np.float32)  # IEEE round-to-nearest-even in numpy
    if fmt is BF16:
        return bf16_to_f32(bf16_bits(x))
    return round_minifloat(x, fmt)


def round_minifloat(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Round to a small float format with arithmetic instead of a table (fast on whole matrices).

    Inside one binade [2^e, 2^(e+1)) the format's values are evenly spaced by 2^(e - man_bits);
    below the smallest normal the spacing stays that of the first binade (the subnormals). So:
    find each value's spacing, round to a multiple of it (rint: ties to even, which is the even
    mantissa code), and saturate at the largest finite value.
    """
    x = np.asarray(x, dtype=np.float32)
    _, e = np.frexp(np.abs(x))  # |x| = f * 2^e with f in [0.5, 1): the binade starts at 2^(e-1)
    e = np.maximum(e - 1, 1 - fmt.bias)  # subnormals share the lowest normal binade's spacing
    step = np.ldexp(np.float32(1), e - fmt.man_bits).astype(np.float32)
    return np.clip(np.rint(x / step) * step, -fmt.max_value, fmt.max_value).astype(np.float32)


def float_code(value: float, fmt: FloatFormat) -> int:
    """The bit pattern storing `value` in `fmt` (sign bit first), after rounding."""
    v = np.float32(value)
    if fmt is FP32:
        return int(np.array([v]).view(np.uint32)[0])
    if fmt is FP16:
        return int(np.array([v]).astype(np.float16).view(np.uint16)[0])
    if fmt is BF16:
        return int(bf16_bits(np.array([v]))[0])
    grid, codes = minifloat_grid(fmt)
    code = int(codes[round_to_grid(np.array([v]), grid, codes)[0]])
    return code | ((1 << (fmt.bits - 1)) if np.signbit(v) else 0)


def split_code(code: int, fmt: FloatFormat) -> tuple[str, str, str]:
    """A bit pattern as (sign, exponent, mantissa) strings of 0s and 1s, for drawing."""
    bits = format(code, f"0{fmt.bits}b")
    return bits[0], bits[1 : 1 + fmt.exp_bits], bits[1 + fmt.exp_bits :]


# ================================================================================================
# Integer grids: absmax (symmetric) and zero-point (asymmetric), per tensor / channel / group
# ================================================================================================


def _groups(w: np.ndarray, group_size: int) -> np.ndarray:
    """[rows, cols] -> [rows, n_groups, group_size]; a short last group is padded with its own
    last value (which changes neither its max nor its min)."""
    rows, cols = w.shape
    pad = (-cols) % group_size
    if pad:
        w = np.pad(w, ((0, 0), (0, pad)), mode="edge")
    return w.reshape(rows, -1, group_size)


def _group_size(cols: int, granularity: str, group_size: int) -> int:
    """How many columns share one scale: all of them for tensor/channel, `group_size` for group."""
    return min(group_size, cols) if granularity == "group" else cols


@dataclass(frozen=True)
class IntQuantized:
    """Integer codes and the numbers that map them back: w ≈ (q - zero) * scale.

    q: [rows, cols] ints; scale, zero: [rows or 1, n_groups] (zero is all 0 for absmax).
    """

    q: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    bits: int
    group_size: int  # columns per scale

    def dequantize(self) -> np.ndarray:
        cols = self.q.shape[1]
        scale = np.repeat(self.scale, self.group_size, axis=1)[:, :cols]  # [rows, cols]
        zero = np.repeat(self.zero, self.group_size, axis=1)[:, :cols]
        return ((self.q - zero) * scale).astype(np.float32)


def quantize_absmax(w: np.ndarray, bits: int, granularity: str = "channel", group_size: int = 64) -> IntQuantized:
    """Symmetric: scale = max|w| / (2^(bits-1) - 1), q = round(w / scale) in [-qmax, qmax].

    granularity: "tensor" (one scale), "channel" (one per row), "group" (one per `group_size` columns of a row).
    """
    w = np.asarray(w, dtype=np.float32)
    qmax = 2 ** (bits - 1) - 1  # 127 for INT8, 7 for INT4: symmetric, so -8 goes unused
    g = _group_size(w.shape[1], granularity, group_size)
    wg = _groups(w, g)  # [rows, n_groups, g]
    amax = np.abs(wg).max(axis=2)  # [rows, n_groups]
    if granularity == "tensor":
        amax = np.full((1, 1), amax.max(), dtype=np.float32)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    full = np.repeat(scale, g, axis=1)[:, : w.shape[1]]  # broadcast back over the columns
    q = np.clip(np.rint(w / full), -qmax, qmax).astype(np.int32)
    return IntQuantized(q, scale, np.zeros_like(scale), bits, g)


def quantize_zeropoint(w: np.ndarray, bits: int, granularity: str = "group", group_size: int = 64) -> IntQuantized:
    """Asymmetric: the range [min, max] is cut into 2^bits - 1 steps; an integer zero-point marks 0.0.

    scale = (max - min) / (2^bits - 1), zero = round(-min / scale), q = clip(round(w / scale) + zero).
    Uses every code, and suits weights that are not centred on zero.
    """
    w = np.asarray(w, dtype=np.float32)
    qmax = 2**bits - 1
    g = _group_size(w.shape[1], granularity, group_size)
    wg = _groups(w, g)
    lo = np.minimum(wg.min(axis=2), 0.0)  # keep 0.0 inside the range so it is exactly representable
    hi = np.maximum(wg.max(axis=2), 0.0)
    if granularity == "tensor":
        lo, hi = np.full((1, 1), lo.min()), np.full((1, 1), hi.max())
    scale = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32)
    zero = np.rint(-lo / scale).astype(np.float32)
    full_s = np.repeat(scale, g, axis=1)[:, : w.shape[1]]
    full_z = np.repeat(zero, g, axis=1)[:, : w.shape[1]]
    q = np.clip(np.rint(w / full_s) + full_z, 0, qmax).astype(np.int32)
    return IntQuantized(q, scale, zero, bits, g)


# ================================================================================================
# NF4 and FP4: 16 fixed levels in [-1, 1], one absmax per block (bitsandbytes / QLoRA)
# ================================================================================================


def nf4_levels(offset: float = 0.9677083) -> np.ndarray:
    """The 16 NormalFloat levels of QLoRA: quantiles of N(0, 1), scaled to [-1, 1], with an exact 0.

    Weights are roughly normal, so levels at equal-probability quantiles give each of the 16
    codes about the same share of weights. 8 levels for the positive side and 7 for the negative
    (the 16th code is the shared 0); `offset` keeps the outermost quantile finite.
    """
    normal = NormalDist()
    pos = [normal.inv_cdf(p) for p in np.linspace(offset, 0.5, 9)[:-1]]  # 8 values > 0
    neg = [-normal.inv_cdf(p) for p in np.linspace(offset, 0.5, 8)[:-1]]  # 7 values < 0
    levels = np.array(sorted(pos + [0.0] + neg), dtype=np.float64)
    return (levels / np.abs(levels).max()).astype(np.float32)


NF4_LEVELS = nf4_levels()
# FP4 (E2M1): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives, scaled into [-1, 1]
FP4_LEVELS = (np.array(sorted({s * v for v in (0, 0.5, 1, 1.5, 2, 3, 4, 6) for s in (-1, 1)})) / 6).astype(np.float32)
INT4_LEVELS = (np.arange(-7, 8) / 7).astype(np.float32)  # symmetric INT4 on the same [-1, 1] scale


@dataclass(frozen=True)
class LevelQuantized:
    """Codes into a table of levels and one absmax per block: w ≈ levels[code] * absmax."""

    codes: np.ndarray  # [rows, cols] in 0..len(levels)-1
    absmax: np.ndarray  # [rows, n_blocks]
    levels: np.ndarray
    block_size: int

    def dequantize(self) -> np.ndarray:
        cols = self.codes.shape[1]
        scale = np.repeat(self.absmax, self.block_size, axis=1)[:, :cols]
        return (self.levels[self.codes] * scale).astype(np.float32)


def quantize_levels(w: np.ndarray, levels: np.ndarray = NF4_LEVELS, block_size: int = 64) -> LevelQuantized:
    """Each block of `block_size` weights is divided by its absmax, then snapped to the nearest level."""
    w = np.asarray(w, dtype=np.float32)
    g = min(block_size, w.shape[1])
    absmax = np.abs(_groups(w, g)).max(axis=2)  # [rows, n_blocks]
    absmax = np.where(absmax > 0, absmax, 1.0).astype(np.float32)
    normed = w / np.repeat(absmax, g, axis=1)[:, : w.shape[1]]  # in [-1, 1]
    # nearest level: the midpoints between neighbouring levels are the decision boundaries
    mids = (levels[1:] + levels[:-1]) / 2
    codes = np.searchsorted(mids, normed).astype(np.int32)
    return LevelQuantized(codes, absmax, levels, g)


# ================================================================================================
# Schemes: one name for "quantize this matrix like so", and its cost in bits
# ================================================================================================


@dataclass(frozen=True)
class Scheme:
    """A way to store a weight matrix, applied with `fake_quantize` (quantize, then dequantize)."""

    name: str
    kind: str  # "float" | "absmax" | "zeropoint" | "levels" | "gguf"
    bits: int  # bits per weight code
    granularity: str = "channel"  # "tensor" | "channel" | "group" (integer kinds)
    group_size: int = 64
    fmt: str = ""  # float format name, level table name ("NF4", "FP4") or GGUF type name

    def bits_per_weight(self, n_in: int = 4096) -> float:
        """Bits stored per weight including the scales (fp16) and zero-points, for rows of `n_in`."""
        if self.kind == "float":
            return float(self.bits)
        if self.kind == "gguf":
            block, size = dequant.GGML_QUANT_SIZES[dequant.GGMLQuantizationType[self.fmt]]
            return size * 8 / block
        per = {"tensor": 0.0, "channel": 1 / n_in, "group": 1 / min(self.group_size, n_in)}[self.granularity]
        if self.kind == "levels":
            per = 1 / min(self.group_size, n_in)
        extra = 16.0 + (self.bits if self.kind == "zeropoint" else 0.0)  # fp16 scale (+ a packed zero-point)
        return self.bits + extra * per


FLOAT_BY_NAME = {f.name: f for f in FLOAT_FORMATS}
LEVELS_BY_NAME = {"NF4": NF4_LEVELS, "FP4": FP4_LEVELS}


def fake_quantize(w: np.ndarray, scheme: Scheme) -> np.ndarray:
    """[n_out, n_in] float32 -> the float32 values the scheme would give back after storing them."""
    w = np.asarray(w, dtype=np.float32)
    if scheme.kind == "float":
        fmt = FLOAT_BY_NAME[scheme.fmt]
        if fmt.name.startswith("FP8"):
            # FP8 weights carry a per-row scale so the row's largest weight lands on the format's max
            amax = np.abs(w).max(axis=1, keepdims=True)
            scale = np.where(amax > 0, amax / fmt.max_value, 1.0).astype(np.float32)
            return round_to_format(w / scale, fmt) * scale
        return round_to_format(w, fmt)
    if scheme.kind == "absmax":
        return quantize_absmax(w, scheme.bits, scheme.granularity, scheme.group_size).dequantize()
    if scheme.kind == "zeropoint":
        return quantize_zeropoint(w, scheme.bits, scheme.granularity, scheme.group_size).dequantize()
    if scheme.kind == "levels":
        return quantize_levels(w, LEVELS_BY_NAME[scheme.fmt], scheme.group_size).dequantize()
    if scheme.kind == "gguf":
        qtype = dequant.GGMLQuantizationType[scheme.fmt]
        return gguf_roundtrip(w, qtype)
    raise ValueError(f"unknown scheme kind {scheme.kind!r}")


SCHEMES: tuple[Scheme, ...] = (
    Scheme("FP16", "float", 16, fmt="FP16"),
    Scheme("BF16", "float", 16, fmt="BF16"),
    Scheme("FP8 E4M3", "float", 8, fmt="FP8 E4M3"),
    Scheme("INT8 tensor", "absmax", 8, "tensor"),
    Scheme("INT8 channel", "absmax", 8, "channel"),
    Scheme("Q8_0", "gguf", 8, fmt="Q8_0"),
    Scheme("INT4 channel", "absmax", 4, "channel"),
    Scheme("INT4 g64", "zeropoint", 4, "group", 64),
    Scheme("NF4 b64", "levels", 4, group_size=64, fmt="NF4"),
    Scheme("Q4_0", "gguf", 4, fmt="Q4_0"),
    Scheme("Q4_1", "gguf", 4, fmt="Q4_1"),
    Scheme("INT3 g64", "zeropoint", 3, "group", 64),
    Scheme("INT2 g64", "zeropoint", 2, "group", 64),
)
SCHEMES_BY_NAME = {s.name: s for s in SCHEMES}


def weight_error(w: np.ndarray, w_hat: np.ndarray) -> dict[str, float]:
    """How far the stored copy is from the original: max |error|, RMS error, and RMS relative to RMS(w)."""
    err = np.asarray(w_hat, np.float64) - np.asarray(w, np.float64)
    rms = float(np.sqrt(np.mean(err**2)))
    return {"max": float(np.abs(err).max()), "rms": rms,
            "rel": rms / (float(np.sqrt(np.mean(np.asarray(w, np.float64) ** 2))) or 1.0)}


# ================================================================================================
# GGUF block quantizers (llama.cpp's Q8_0, Q4_0, Q4_1; simple Q4_K and Q6_K), read back by
# fwdtui.loaders.dequant. Computed in float32 like ggml, so the legacy ones are bit-exact.
# ================================================================================================


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's roundf: halves go away from zero (numpy's rint would send them to even)."""
    a = np.abs(x)
    whole = np.floor(a)
    return np.sign(x) * (whole + (a - whole >= 0.5))


def _reciprocal(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """[n, 2k] values 0..15 -> [n, k] bytes: the first half in the low nibbles, the second in the high."""
    half = q.shape[-1] // 2
    return (q[..., :half] | (q[..., half:] << 4)).astype(np.uint8)


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Blocks of 32 -> Q8_0 bytes: d = max|x| / 127 (fp16), q = round(x / d) as int8."""
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, dequant.QK)  # [n_blocks, 32]
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    out = np.zeros(blocks.shape[0], dtype=dequant.BLOCK_Q8_0)
    out["d"] = d[:, 0].astype(np.float16)
    out["qs"] = _round_half_away(blocks * _reciprocal(d)).astype(np.int8)
    return out.view(np.uint8)


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """Blocks of 32 -> Q4_0 bytes: d = (the weight of largest |x|, with its sign) / -8; q = x/d + 8 in 0..15.

    Dividing by -8 puts the extreme weight on code 0 (value -8·d), the one end of the
    asymmetric range -8..7 that has room, so no code is wasted on it.
    """
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, dequant.QK)
    extreme = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=1)[:, None], axis=1)  # [n, 1]
    d = extreme / np.float32(-8)
    q = np.clip(np.floor(blocks * _reciprocal(d) + np.float32(8.5)), 0, 15).astype(np.uint8)
    out = np.zeros(blocks.shape[0], dtype=dequant.BLOCK_Q4_0)
    out["d"] = d[:, 0].astype(np.float16)
    out["qs"] = _pack_nibbles(q)
    return out.view(np.uint8)


def quantize_q4_1(x: np.ndarray) -> np.ndarray:
    """Blocks of 32 -> Q4_1 bytes: m = min, d = (max - min) / 15, q = round((x - m) / d) in 0..15."""
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, dequant.QK)
    lo = blocks.min(axis=1, keepdims=True)
    d = (blocks.max(axis=1, keepdims=True) - lo) / np.float32(15)
    q = np.clip(np.floor((blocks - lo) * _reciprocal(d) + np.float32(0.5)), 0, 15).astype(np.uint8)
    out = np.zeros(blocks.shape[0], dtype=dequant.BLOCK_Q4_1)
    out["d"] = d[:, 0].astype(np.float16)
    out["m"] = lo[:, 0].astype(np.float16)
    out["qs"] = _pack_nibbles(q)
    return out.view(np.uint8)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Super-blocks of 256 -> Q4_K bytes: 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min.

    A plain min/max version (llama.cpp also searches for better scales, so its bytes differ):
    per sub-block scale = (max - min) / 15 and min = -min; those 8 scales and 8 mins are
    themselves quantized to 6 bits against the fp16 d and dmin of the super-block.
    """
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, 8, 32)  # [n, sub, 32]
    lo = np.minimum(blocks.min(axis=2), 0)  # [n, 8]; w = d*sc*q - dmin*m needs min <= 0
    sub_scale = (blocks.max(axis=2) - lo) / 15
    sub_min = -lo
    d = (sub_scale.max(axis=1, keepdims=True) / 63).astype(np.float16).astype(np.float32)  # [n, 1]
    dmin = (sub_min.max(axis=1, keepdims=True) / 63).astype(np.float16).astype(np.float32)
    sc = np.clip(np.rint(sub_scale * _reciprocal(d)), 0, 63).astype(np.uint8)  # [n, 8]
    mn = np.clip(np.rint(sub_min * _reciprocal(dmin)), 0, 63).astype(np.uint8)
    step = (d * sc)[..., None]  # [n, 8, 1] the scale actually stored
    q = np.clip(np.rint((blocks + (dmin * mn)[..., None]) * _reciprocal(step)), 0, 15).astype(np.uint8)
    scales = np.zeros((blocks.shape[0], 12), dtype=np.uint8)
    scales[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)  # low 6 bits: scale j; top 2: scale j+4's high bits
    scales[:, 4:8] = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)
    out = np.zeros(blocks.shape[0], dtype=dequant.BLOCK_Q4_K)
    out["d"], out["dmin"], out["scales"] = d[:, 0], dmin[:, 0], scales
    # each 32-byte run holds two sub-blocks: 2c in the low nibbles, 2c+1 in the high ones
    out["qs"] = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(-1, 128)
    return out.view(np.uint8)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Super-blocks of 256 -> Q6_K bytes: 16 sub-blocks of 16 with int8 scales, 6-bit q in -32..31."""
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, 16, 16)  # [n, sub, 16]
    sub_scale = np.abs(blocks).max(axis=2) / 31  # [n, 16]
    d = (sub_scale.max(axis=1, keepdims=True) / 127).astype(np.float16).astype(np.float32)  # [n, 1]
    sc = np.clip(np.rint(sub_scale * _reciprocal(d)), -128, 127).astype(np.int8)
    step = (d * sc)[..., None]
    q = (np.clip(np.rint(blocks * _reciprocal(step)), -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 128)
    low, high = q & 0x0F, q >> 4  # [n, half, 128]
    ql = low[..., :64] | (low[..., 64:] << 4)  # [n, half, 64]: weights l and l+64 share byte l
    hq = high.reshape(-1, 2, 4, 32)  # weights l, l+32, l+64, l+96 -> 2-bit fields of qh[l]
    qh = hq[:, :, 0] | (hq[:, :, 1] << 2) | (hq[:, :, 2] << 4) | (hq[:, :, 3] << 6)
    out = np.zeros(blocks.shape[0], dtype=dequant.BLOCK_Q6_K)
    out["ql"], out["qh"] = ql.reshape(-1, 128), qh.reshape(-1, 64)
    out["scales"], out["d"] = sc, d[:, 0]
    return out.view(np.uint8)


T = dequant.GGMLQuantizationType
GGUF_QUANTIZERS: dict[T, Callable[[np.ndarray], np.ndarray]] = {
    T.Q8_0: quantize_q8_0, T.Q4_0: quantize_q4_0, T.Q4_1: quantize_q4_1,
    T.Q4_K: quantize_q4_k, T.Q6_K: quantize_q6_k,
}


def gguf_block_size(qtype: T) -> int:
    return dequant.GGML_QUANT_SIZES[qtype][0]


def gguf_roundtrip(w: np.ndarray, qtype: T) -> np.ndarray:
    """Quantize each row to GGUF blocks and read it back with our dequantizer (rows must be whole blocks)."""
    w = np.asarray(w, dtype=np.float32)
    block = gguf_block_size(qtype)
    if w.shape[-1] % block:
        # llama.cpp does the same check and falls back to another type for such tensors
        raise ValueError(f"rows of {w.shape[-1]} weights are not whole {qtype.name} blocks of {block}")
    raw = GGUF_QUANTIZERS[qtype](w.reshape(-1))
    return dequant.dequantize(raw, qtype, w.shape)


# ================================================================================================
# LLM.int8: int8 matmul with the outlier input features kept in fp16
# ================================================================================================


@dataclass(frozen=True)
class Int8Matmul:
    """Result of an LLM.int8 product, and the plain int8 product without the outlier split."""

    y: np.ndarray  # [n_tokens, n_out] with outliers decomposed
    y_plain: np.ndarray  # [n_tokens, n_out] everything in int8
    outliers: np.ndarray  # input feature indices kept in fp16


def _int8_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector-wise absmax: one scale per row -> (int8 codes, scales [rows, 1])."""
    amax = np.abs(a).max(axis=1, keepdims=True)
    scale = np.where(amax > 0, amax / 127, 1.0).astype(np.float32)
    return np.clip(np.rint(a / scale), -127, 127).astype(np.int8), scale


def int8_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x [n, n_in] @ w.T with x quantized per token and w per output row; the int32 sums are rescaled."""
    xq, sx = _int8_rows(x)  # [n, n_in], [n, 1]
    wq, sw = _int8_rows(w)  # [n_out, n_in], [n_out, 1]
    acc = xq.astype(np.int32) @ wq.astype(np.int32).T  # [n, n_out] exact integer sums
    return (acc * sx * sw.T).astype(np.float32)


def llm_int8_matmul(x: np.ndarray, w: np.ndarray, threshold: float = 6.0) -> Int8Matmul:
    """LLM.int8 (Dettmers et al. 2022): input features where any |x| > threshold go through an fp16
    matmul; the rest through the int8 one. A few huge features would otherwise set the scale of
    every token's row and crush all the ordinary values into a handful of codes."""
    x = np.asarray(x, dtype=np.float32)
    w = np.asarray(w, dtype=np.float32)
    outliers = np.flatnonzero((np.abs(x) > threshold).any(axis=0))
    regular = np.setdiff1d(np.arange(x.shape[1]), outliers)
    y = int8_matmul(x[:, regular], w[:, regular]) if regular.size else np.zeros((x.shape[0], w.shape[0]), np.float32)
    if outliers.size:
        x16 = x[:, outliers].astype(np.float16).astype(np.float32)
        w16 = w[:, outliers].astype(np.float16).astype(np.float32)
        y = y + x16 @ w16.T
    return Int8Matmul(y, int8_matmul(x, w), outliers)


# ================================================================================================
# GPTQ: quantize column by column, pushing each column's error onto the columns not yet done
# ================================================================================================


@dataclass(frozen=True)
class GptqStep:
    """One column of the loop: what was rounded and how its error was passed on."""

    column: int
    w_col: np.ndarray  # [n_out] the column when its turn came (already corrected by earlier ones)
    q_col: np.ndarray  # [n_out] after rounding
    u_diag: float  # U[i, i] of the Cholesky factor of H^-1
    next_change: np.ndarray  # [n_out] the correction pushed onto column i+1


@dataclass(frozen=True)
class GptqResult:
    """GPTQ against round-to-nearest (RTN) on the same grid, measured on the calibration inputs."""

    q_weight: np.ndarray  # [n_out, n_in] dequantized GPTQ weights
    rtn_weight: np.ndarray  # [n_out, n_in] dequantized round-to-nearest weights
    gptq_error: float  # ||X W^T - X Q^T||_F^2 / ||X W^T||_F^2 on the calibration inputs
    rtn_error: float
    curve_columns: np.ndarray  # columns done at each sample of the curves
    gptq_curve: np.ndarray  # relative output error of [Q[:, :i], W_corrected[:, i:]] after i columns
    rtn_curve: np.ndarray  # the same with RTN for the first i columns and the original rest
    steps: tuple[GptqStep, ...]  # the first few columns in detail


def hessian(x: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """H = 2 X^T X / n (the curvature of the layer's squared output error), plus `damp` * mean(diag)
    on the diagonal: with few calibration tokens X^T X is singular, and damping keeps it invertible."""
    x = np.asarray(x, dtype=np.float64)
    h = 2.0 * x.T @ x / max(1, x.shape[0])  # [n_in, n_in]
    dead = np.flatnonzero(np.diag(h) == 0)  # inputs that are always 0: any weight there is harmless
    h[dead, dead] = 1.0
    h += damp * np.mean(np.diag(h)) * np.eye(h.shape[0])
    return h


def output_error(x: np.ndarray, w: np.ndarray, w_hat: np.ndarray) -> float:
    """||X W^T - X W_hat^T||_F^2 relative to ||X W^T||_F^2: what the layer's outputs lose."""
    x = np.asarray(x, np.float32)
    ref = x @ np.asarray(w, np.float32).T  # [n_tokens, n_out]
    diff = x @ (np.asarray(w_hat, np.float32) - np.asarray(w, np.float32)).T
    return _sq_norm(diff) / max(_sq_norm(ref), 1e-30)


def _round_column(col: np.ndarray, scale: np.ndarray, zero: np.ndarray, bits: int) -> np.ndarray:
    """Round one column on its group's grid (scale, zero: [n_out]) and give back the dequantized value."""
    q = np.clip(np.rint(col / scale) + zero, 0, 2**bits - 1)
    return (q - zero) * scale


def gptq_quantize(w: np.ndarray, x: np.ndarray, bits: int = 4, group_size: int = 64, damp: float = 0.01,
                  block: int = 64, n_steps: int = 4, n_curve: int = 24,
                  cancelled: Callable[[], bool] = lambda: False) -> GptqResult:
    """GPTQ (Frantar et al. 2022) for W [n_out, n_in] with calibration inputs X [n_tokens, n_in].

    Columns are quantized one at a time. Rounding column i leaves an error e; the columns still to
    come are nudged by -e * U[i, j] / U[i, i] (U = upper Cholesky factor of H^-1): the
    least-squares correction that best cancels e on the calibration inputs (Optimal Brain
    Surgeon, one weight at a time, for all rows at once). The corrections are applied inside a
    block of `block` columns at once and to the rest in one matrix product per block ("lazy
    batch" updates: the same numbers, fewer passes over memory). Group scales come from the
    already-corrected weights when a group starts, as in the reference implementation.
    """
    w = np.asarray(w, dtype=np.float64)
    n_out, n_in = w.shape
    u = np.linalg.cholesky(np.linalg.inv(hessian(x, damp))).T  # [n_in, n_in] upper: H^-1 = U^T U
    work = w.copy()  # columns >= i hold the corrected, not yet quantized weights
    q = np.zeros_like(w)
    g = min(group_size, n_in)
    rtn = quantize_zeropoint(w.astype(np.float32), bits, "group", g).dequantize()
    samples = set(np.linspace(0, n_in, min(n_curve, n_in) + 1).round().astype(int).tolist())
    curve_cols, gptq_curve, rtn_curve, steps = [], [], [], []
    scale = zero = np.ones(n_out)

    def sample(i: int) -> None:  # the error of the half-done matrix, for the curves
        curve_cols.append(i)
        gptq_curve.append(output_error(x, w, np.concatenate([q[:, :i], work[:, i:]], axis=1)))
        rtn_curve.append(output_error(x, w, np.concatenate([rtn[:, :i], w[:, i:]], axis=1)))

    for b0 in range(0, n_in, block):
        b1 = min(b0 + block, n_in)
        errs = np.zeros((n_out, b1 - b0))  # [n_out, block] scaled errors of this block's columns
        for i in range(b0, b1):
            if i in samples:
                sample(i)
            if cancelled():
                raise InterruptedError("GPTQ cancelled")
            if i % g == 0:  # a new group: its grid from the corrected weights it holds now
                iq = quantize_zeropoint(work[:, i : i + g].astype(np.float32), bits, "channel")
                scale, zero = iq.scale[:, 0].astype(np.float64), iq.zero[:, 0].astype(np.float64)
            col = work[:, i].copy()
            q[:, i] = _round_column(col, scale, zero, bits)
            err = (col - q[:, i]) / u[i, i]  # [n_out]
            work[:, i + 1 : b1] -= np.outer(err, u[i, i + 1 : b1])  # within the block, right away
            errs[:, i - b0] = err
            if len(steps) < n_steps:
                nxt = -err * u[i, i + 1] if i + 1 < n_in else np.zeros(n_out)
                steps.append(GptqStep(i, col.astype(np.float32), q[:, i].astype(np.float32), float(u[i, i]),
                                      nxt.astype(np.float32)))
        work[:, b1:] -= errs @ u[b0:b1, b1:]  # the whole block's corrections to every later column
    sample(n_in)
    return GptqResult(q.astype(np.float32), rtn, output_error(x, w, q), output_error(x, w, rtn),
                      np.array(curve_cols), np.array(gptq_curve), np.array(rtn_curve), tuple(steps))


# ================================================================================================
# AWQ: scale up the input channels that see large activations before rounding
# ================================================================================================


@dataclass(frozen=True)
class AwqResult:
    """The best per-input-channel scales for one linear layer (or several sharing an input)."""

    scales: np.ndarray  # [n_in] s: weights are multiplied by s, the previous op divided by it
    alpha: float  # the exponent that won the grid search
    act_magnitude: np.ndarray  # [n_in] mean |x| per input channel
    alphas: np.ndarray  # the grid
    errors: np.ndarray  # relative output error at each alpha (alpha = 0 is plain RTN)
    rtn_error: float
    awq_error: float
    q_weight: np.ndarray  # [n_out, n_in] Q(W * s) / s: the effective weights after scaling back


def awq_scales(act_magnitude: np.ndarray, alpha: float) -> np.ndarray:
    """s = mean|x|^alpha, normalised so that sqrt(max(s) * min(s)) = 1 (only ratios matter)."""
    s = np.maximum(np.asarray(act_magnitude, np.float64), 1e-8) ** alpha
    return (s / np.sqrt(s.max() * s.min())).astype(np.float32)


def awq_fake_quantize(w: np.ndarray, s: np.ndarray, bits: int, group_size: int) -> np.ndarray:
    """Q(W * s) / s: round the scaled weights, then fold the scale back (what the layer effectively uses)."""
    scaled = np.asarray(w, np.float32) * s[None, :]
    return quantize_zeropoint(scaled, bits, "group", group_size).dequantize() / s[None, :]


def awq_search(w: np.ndarray, x: np.ndarray, bits: int = 4, group_size: int = 64, n_grid: int = 20,
               cancelled: Callable[[], bool] = lambda: False) -> AwqResult:
    """AWQ (Lin et al. 2023): try alpha in [0, 1) and keep the scales with the least output error.

    A weight multiplied by s > 1 before rounding has a rounding error s times smaller once
    divided back; the channels that see large activations (the salient ones) gain most. The
    group's range grows too, so the search balances the two.
    """
    w = np.asarray(w, dtype=np.float32)
    mag = np.abs(np.asarray(x, np.float32)).mean(axis=0)  # [n_in]
    alphas = np.arange(n_grid) / n_grid
    errors, best = [], (math.inf, 0.0, np.ones_like(mag), w)
    for a in alphas:
        if cancelled():
            raise InterruptedError("AWQ cancelled")
        s = awq_scales(mag, float(a))
        w_hat = awq_fake_quantize(w, s, bits, group_size)
        e = output_error(x, w, w_hat)
        errors.append(e)
        if e < best[0]:
            best = (e, float(a), s, w_hat)
    return AwqResult(best[2], best[1], mag, alphas, np.array(errors), float(errors[0]), best[0], best[3])


def awq_fold(model, name: str, s: np.ndarray, bits: int = 4, group_size: int = 64) -> tuple[str, dict[str, np.ndarray]] | None:
    """AWQ the deployable way: store Q(W·s) and divide the op that feeds W by s, so nothing is added at run time.

    Returns (what absorbed 1/s, replacement tensors), or None where no op can absorb it: a GELU
    sits before GPT-2's MLP projection, and o_proj's input is a mix of heads. Matrices that read
    the same input (q, k, v; gate, up) are scaled too, left unquantized, so only `name` changes.
    """
    cfg, w_all = model.config, model.weights
    layer = int(name.split(".")[1])
    s = np.asarray(s, np.float32)
    out: dict[str, np.ndarray] = {}
    if cfg.family == "gpt2":
        norm = {"attn.c_attn.weight": "ln_1", "mlp.c_fc.weight": "ln_2"}.get(name.split(".", 2)[2])
        if norm is None:
            return None
        for part in ("weight", "bias"):  # LayerNorm's output is g * x_hat + b: both carry the scale
            out[f"h.{layer}.{norm}.{part}"] = w_all[f"h.{layer}.{norm}.{part}"] / s
        siblings, absorber = [name], f"h.{layer}.{norm}"
    else:
        kind = name.split(".")[3]
        if kind in ("q_proj", "k_proj", "v_proj"):
            norm, siblings = "input_layernorm", [f"layers.{layer}.self_attn.{k}.weight" for k in ("q_proj", "k_proj", "v_proj")]
        elif kind in ("gate_proj", "up_proj"):
            norm, siblings = "post_attention_layernorm", [f"layers.{layer}.mlp.{k}.weight" for k in ("gate_proj", "up_proj")]
        elif kind == "down_proj":  # down reads silu(gate) * up: dividing up's output rows by s divides its input
            up = f"layers.{layer}.mlp.up_proj.weight"
            out[up] = w_all[up] / s[:, None]  # [n_inner, n_embd] rows = down's input channels
            out[name] = quantize_zeropoint(w_all[name] * s[None, :], bits, "group", group_size).dequantize()
            return up, out
        else:
            return None
        out[f"layers.{layer}.{norm}.weight"] = w_all[f"layers.{layer}.{norm}.weight"] / s
        absorber = f"layers.{layer}.{norm}"
    for sib in siblings:
        scaled = weight_out_in(cfg, sib, w_all[sib]) * s[None, :]  # [n_out, n_in] columns times s
        if sib == name:
            scaled = quantize_zeropoint(scaled, bits, "group", group_size).dequantize()
        out[sib] = weight_from_out_in(cfg, sib, scaled)
    return absorber, out


# ================================================================================================
# The loaded model: which matrices are linear layers, what feeds them, and the damage
# ================================================================================================


def linear_weight_names(config, layers: Sequence[int] | None = None, part: str = "all") -> list[str]:
    """Names of the linear-layer weights (embeddings and norms excluded). part: "all" | "attn" | "mlp"."""
    layers = range(config.n_layer) if layers is None else layers
    if config.family == "gpt2":
        attn, mlp = ("attn.c_attn", "attn.c_proj"), ("mlp.c_fc", "mlp.c_proj")
        prefix = "h"
    else:
        attn = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
        mlp = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
        prefix = "layers"
    kinds = (attn if part in ("all", "attn") else ()) + (mlp if part in ("all", "mlp") else ())
    return [f"{prefix}.{i}.{k}.weight" for i in layers for k in kinds]


def weight_out_in(config, name: str, w: np.ndarray) -> np.ndarray:
    """A linear weight in the [n_out, n_in] orientation (GPT-2's Conv1D stores [n_in, n_out])."""
    return w.T if config.family == "gpt2" and w.ndim == 2 else w


def weight_from_out_in(config, name: str, w_oi: np.ndarray) -> np.ndarray:
    """Back to the checkpoint's own orientation (contiguous, float32)."""
    return np.ascontiguousarray(w_oi.T if config.family == "gpt2" else w_oi, dtype=np.float32)


def layer_input(trace, config, name: str) -> np.ndarray:
    """The activations X [n_seq, n_in] that the weight `name` multiplies, read off a Trace."""
    layer = int(name.split(".")[1])
    if name.endswith(("c_attn.weight", "q_proj.weight", "k_proj.weight", "v_proj.weight")):
        return trace[f"blocks.{layer}.ln1.out"]
    if name.endswith(("attn.c_proj.weight", "o_proj.weight")):
        z = trace[f"blocks.{layer}.attn.z"]  # [n_head, n_seq, head_dim]: heads side by side
        return z.transpose(1, 0, 2).reshape(z.shape[1], -1)
    if name.endswith(("c_fc.weight", "gate_proj.weight", "up_proj.weight")):
        return trace[f"blocks.{layer}.ln2.out"]
    if name.endswith(("mlp.c_proj.weight", "down_proj.weight")):
        return trace[f"blocks.{layer}.mlp.post"]
    raise KeyError(f"{name} is not a linear weight")


def quantized_weights(model, scheme: Scheme, names: Sequence[str],
                      progress: Callable[[float, str], None] = lambda f, s: None,
                      cancelled: Callable[[], bool] = lambda: False) -> dict[str, np.ndarray]:
    """{name: fake-quantized float32 weight} for `names`, ready for `model.variant(replace_weights=...)`."""
    out = {}
    for k, name in enumerate(names):
        if cancelled():
            raise InterruptedError("quantization cancelled")
        progress(k / max(1, len(names)), name)
        w_oi = weight_out_in(model.config, name, model.weights[name])
        out[name] = weight_from_out_in(model.config, name, fake_quantize(w_oi, scheme))
    return out


@dataclass(frozen=True)
class Damage:
    """What quantizing cost, measured on a prompt: the quantized model against the original."""

    scheme: str
    bits_per_weight: float
    n_weights: int  # weights quantized
    weight_bytes: int  # their bytes at this width
    kl: np.ndarray  # [n_seq] KL(original || quantized) of the next-token distributions, in nats
    top1_agree: float  # share of positions whose most likely next token is unchanged
    ppl_ref: float  # perplexity of the prompt under the original model (nan for 1 token)
    ppl: float  # ... and under the quantized one
    rel_error: float  # RMS weight error / RMS weight over the quantized matrices
    last_logits: np.ndarray  # [n_vocab] the quantized model's logits at the last position


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def perplexity(logits: np.ndarray, ids: Sequence[int]) -> float:
    """exp(mean negative log-probability of each next prompt token); nan for a one-token prompt."""
    if len(ids) < 2:
        return float("nan")
    logp = _log_softmax(logits[:-1])  # position t predicts token t+1
    return float(np.exp(-logp[np.arange(len(ids) - 1), np.asarray(ids[1:])].mean()))


def compare_logits(ref: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, float]:
    """KL(ref || new) per position in nats, and the share of positions with the same top-1 token."""
    lp, lq = _log_softmax(ref), _log_softmax(new)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=-1)  # [n_seq]
    agree = float(np.mean(ref.argmax(-1) == new.argmax(-1)))
    return np.maximum(kl, 0.0), agree


def _sq_norm(a: np.ndarray) -> float:
    flat = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    return float(np.dot(flat, flat))  # BLAS: a fast sum of squares over millions of weights


def measure_damage(model, ids: Sequence[int], scheme: Scheme, names: Sequence[str],
                   ref_logits: np.ndarray | None = None,
                   progress: Callable[[float, str], None] = lambda f, s: None,
                   cancelled: Callable[[], bool] = lambda: False) -> Damage:
    """Quantize `names` with `scheme`, run the prompt through the variant, compare with the original."""
    ref = model.logits(ids) if ref_logits is None else ref_logits
    replaced = quantized_weights(model, scheme, names, progress, cancelled)
    quantized = model.variant(replace_weights=replaced)
    logits = quantized.logits(ids)
    kl, agree = compare_logits(ref, logits)
    n = int(sum(model.weights[k].size for k in names))
    err2 = sum(_sq_norm(replaced[k] - model.weights[k]) for k in names)
    w2 = sum(_sq_norm(model.weights[k]) for k in names)
    n_in = weight_out_in(model.config, names[0], model.weights[names[0]]).shape[1] if names else 4096
    bpw = scheme.bits_per_weight(n_in)
    return Damage(scheme.name, bpw, n, int(round(n * bpw / 8)), kl, agree, perplexity(ref, ids),
                  perplexity(logits, ids), math.sqrt(err2 / max(w2, 1e-30)), logits[-1].copy())


# ================================================================================================
# Sizes
# ================================================================================================


@dataclass(frozen=True)
class PublishedSize:
    name: str
    n_params: float


PUBLISHED_SIZES = (PublishedSize("7B", 7e9), PublishedSize("13B", 13e9), PublishedSize("70B", 70e9),
                   PublishedSize("405B", 405e9))


def weight_memory(n_params: float, bits_per_weight: float) -> float:
    """Bytes the weights take at `bits_per_weight` (KV cache and activations not included)."""
    return n_params * bits_per_weight / 8


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; the units a reader expects for memory."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

