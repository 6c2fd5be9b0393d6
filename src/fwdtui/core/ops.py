"""The small numeric building blocks of a transformer, one pure numpy function each."""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)), shifted by the max so large scores do not overflow; -inf becomes 0."""
    # One array, shifted, exponentiated and normalised in place: for a Trace's probs [n_seq, n_vocab] or a
    # long prompt's scores, each temporary would be megabytes of fresh memory. (Ints become floats.)
    x = np.asarray(x)
    e = np.subtract(x, np.max(x, axis=axis, keepdims=True), dtype=np.result_type(x.dtype, np.float32))
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) computed without taking the log of tiny probabilities."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """GPT-2's LayerNorm: zero mean, unit variance per row, then scale g and shift b."""
    n = x.shape[-1]
    mean = x.sum(axis=-1, keepdims=True) / n  # [n_seq, 1]  (np.mean/np.var give the same numbers, slower)
    centred = x - mean
    var = (centred * centred).sum(axis=-1, keepdims=True) / n  # [n_seq, 1]
    return g * centred / np.sqrt(var + eps) + b  # [n_seq, n_embd]


def rms_norm(x: np.ndarray, g: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Llama's RMSNorm: divide by the root mean square (no centring, no bias), then scale g."""
    ms = (x * x).sum(axis=-1, keepdims=True) / x.shape[-1]  # [n_seq, 1]
    return g * (x / np.sqrt(ms + eps))  # [n_seq, n_embd]


GELU_C = float(np.sqrt(2.0 / np.pi))  # a Python float: a numpy float64 scalar would turn float32 arrays into float64


def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation of GELU that GPT-2 was trained with ("gelu_new"):
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))."""
    # Worked out in one scratch array: on a long prompt x is [n_seq, n_inner], megabytes, and each
    # temporary of a one-line formula is one more trip through memory (this way is ~1.6x faster).
    u = x * x * x  # x^3 (numpy's float32 x**3 is a slow general power routine)
    u *= 0.044715
    u += x  # x + 0.044715 x^3
    u *= GELU_C  # sqrt(2/pi) * (x + 0.044715 x^3)
    np.tanh(u, out=u)
    u += 1.0
    u *= x
    u *= 0.5
    return u  # 0.5 * x * (1 + tanh(...))


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU (swish): x * sigmoid(x), the gate activation of SwiGLU."""
    return x / (1.0 + np.exp(-x))


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """x @ w (+ b) with w stored [n_in, n_out]: the one matrix product every layer is made of."""
    y = x @ w  # [n_seq, n_in] @ [n_in, n_out] -> [n_seq, n_out]
    if b is not None:
        y += b  # in place: y is a fresh array, and a second [n_seq, n_out] array would cost a pass over memory
    return y


def causal_mask(q_positions: np.ndarray, k_positions: np.ndarray, window: int | None = None,
                sinks: int = 0) -> np.ndarray:
    """True where query i may not see key j: keys in its future, or (sliding window) too far back.

    With a window, the first `sinks` positions stay visible to every query ("attention sinks").
    """
    future = k_positions[None, :] > q_positions[:, None]  # [n_q, n_k]
    if window is None:
        return future
    too_old = k_positions[None, :] <= q_positions[:, None] - window
    if sinks:
        too_old &= k_positions[None, :] >= sinks
    return future | too_old


def attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled dot-product attention over heads, with grouped-query sharing of k and v.

    q: [n_head, n_q, head_dim]; k, v: [n_kv_head, n_k, head_dim]; mask: [n_q, n_k], True = hidden.
    Query head h reads key/value head h // (n_head // n_kv_head), as in grouped-query attention.
    Returns z [n_head, n_q, head_dim], scores [n_head, n_q, n_k] (scaled, masked), pattern (softmax).
    """
    n_head, n_q, head_dim = q.shape
    n_kv_head, n_k, _ = k.shape
    group = n_head // n_kv_head
    qg = q.reshape(n_kv_head, group * n_q, head_dim)  # heads sharing a kv head side by side
    # Scaling q (n_q x head_dim numbers) gives the same scores as scaling them (n_q x n_k numbers).
    scores = (qg / np.float32(np.sqrt(head_dim))) @ k.transpose(0, 2, 1)  # [n_kv, group*n_q, n_k]
    scores = scores.reshape(n_head, n_q, n_k)
    np.copyto(scores, np.float32(-np.inf), where=mask[None])  # causal: no peeking at later tokens
    pattern = softmax(scores, axis=-1)  # [n_head, n_q, n_k], each row sums to 1
    z = pattern.reshape(n_kv_head, group * n_q, n_k) @ v  # [n_kv, group*n_q, head_dim]
    return z.reshape(n_head, n_q, head_dim), scores, pattern


ATTN_BLOCK = 128  # queries per block in causal_attention: big enough for BLAS, small enough to skip work


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, q_positions: np.ndarray, window: int | None = None,
                     sinks: int = 0, keep: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`attention` for a causal model, a block of queries at a time; keys are at positions 0..n_k-1.

    A query never sees a key after its own position, so a block of queries needs only the keys up to
    its last one: a long prompt costs about half the products and exponentials of the full square.
    Returns z [n_head, n_q, head_dim] and, with `keep` (for the Trace), the full scores and pattern
    (-inf and 0 where hidden); without it, None and None.
    """
    n_head, n_q, head_dim = q.shape
    n_k = k.shape[1]
    z = np.empty((n_head, n_q, head_dim), dtype=q.dtype)
    scores = np.full((n_head, n_q, n_k), -np.inf, dtype=q.dtype) if keep else None
    pattern = np.zeros((n_head, n_q, n_k), dtype=q.dtype) if keep else None
    k_positions = np.arange(n_k)
    for start in range(0, n_q, ATTN_BLOCK):
        rows = slice(start, start + ATTN_BLOCK)
        seen = int(q_positions[rows][-1]) + 1  # later keys are hidden from every query of the block
        mask = causal_mask(q_positions[rows], k_positions[:seen], window, sinks)  # [block, seen]
        z[:, rows], block_scores, block_pattern = attention(q[:, rows], k[:, :seen], v[:, :seen], mask)
        if keep:
            scores[:, rows, :seen] = block_scores
            pattern[:, rows, :seen] = block_pattern
    return z, scores, pattern


def rope_frequencies(head_dim: int, theta: float, scaling: dict | None = None) -> np.ndarray:
    """The rotation speed of each of the head_dim/2 pairs: theta^(-2i/head_dim), Llama 3 rescaled if asked."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))  # [head_dim/2]
    if scaling:
        # Llama 3: slow (long-wavelength) pairs are stretched by `factor`, fast ones kept, a smooth blend between.
        factor = float(scaling["factor"])
        low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
        old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
        wavelen = 2 * np.pi / inv_freq
        smooth = (old_ctx / wavelen - low) / (high - low)
        blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
        inv_freq = np.where(wavelen > old_ctx / low, inv_freq / factor, np.where(wavelen < old_ctx / high, inv_freq, blended))
    return inv_freq


def rope_cos_sin(positions: np.ndarray, inv_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_seq, head_dim/2] of every position's rotation angles, in float32 (angles in float64)."""
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n_seq, head_dim/2]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray,
         cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Rotate each (x[i], x[i + head_dim/2]) pair by position * frequency (Hugging Face's half-split layout).

    x: [n_heads, n_seq, head_dim]; positions: [n_seq]. After this, q.k depends only on the offset between positions.
    `cos_sin` is `rope_cos_sin(positions, inv_freq)` when the caller already has it (a forward pass works it
    out once for all its layers' q and k).
    """
    cos, sin = cos_sin if cos_sin is not None else rope_cos_sin(positions, inv_freq)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # [n_heads, n_seq, head_dim]
