"""GPT-2's forward pass in numpy, one function per step, recording every intermediate in a Trace.

Parameter names are the checkpoint's own (wte, wpe, h.N.attn.c_attn, ln_1, ...). Conv1D weights
are stored [n_in, n_out], so every projection is `x @ w + b`.
"""

from __future__ import annotations

import numpy as np

from fwdtui.core.config import ModelConfig
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.ops import causal_attention, gelu, layer_norm, linear
from fwdtui.core.trace import Trace


def embed(params: dict, ids: np.ndarray, positions: np.ndarray, tr) -> np.ndarray:
    """Token embedding plus learned position embedding: GPT-2 adds a vector for "where" to "what"."""
    tok = params["wte.weight"][ids]  # [n_seq] -> [n_seq, n_embd]
    pos = params["wpe.weight"][positions]  # [n_seq] -> [n_seq, n_embd]
    tr.record("embed", tok)
    tr.record("pos_embed", pos)
    return tok + pos


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """[n_seq, n_head*head_dim] -> [n_head, n_seq, head_dim]."""
    n_seq, width = x.shape
    return x.reshape(n_seq, n_head, width // n_head).transpose(1, 0, 2)


def merge_heads(z: np.ndarray) -> np.ndarray:
    """[n_head, n_seq, head_dim] -> [n_seq, n_head*head_dim]: the heads' outputs side by side."""
    n_head, n_seq, head_dim = z.shape
    return z.transpose(1, 0, 2).reshape(n_seq, n_head * head_dim)


def mha(params: dict, p: str, x: np.ndarray, cfg: ModelConfig, positions: np.ndarray,
        cache: KVCache | None, layer: int, tr) -> np.ndarray:
    """Causal multi-head self-attention: each position mixes the values of itself and earlier positions."""
    qkv = linear(x, params[p + "attn.c_attn.weight"], params[p + "attn.c_attn.bias"])  # [n_seq, 3*n_embd]
    q, k, v = np.split(qkv, 3, axis=-1)  # 3 x [n_seq, n_embd]
    q, k, v = (split_heads(t, cfg.n_head) for t in (q, k, v))  # [n_head, n_seq, head_dim]
    if cache is not None:
        k, v = cache.append(layer, k, v)  # now [n_head, n_past + n_seq, head_dim]
    # Causal: position i mixes keys 0..i only. The full scores and pattern are kept when a Trace records them.
    z, scores, pattern = causal_attention(q, k, v, positions, cfg.sliding_window, cfg.attention_sinks,
                                          keep=isinstance(tr, Trace))  # z: [n_head, n_seq, head_dim]
    out = linear(merge_heads(z), params[p + "attn.c_proj.weight"], params[p + "attn.c_proj.bias"])
    for name, value in (("q", q), ("k", k), ("v", v), ("scores", scores), ("pattern", pattern), ("z", z), ("out", out)):
        tr.record(f"blocks.{layer}.attn.{name}", value)
    return out  # [n_seq, n_embd]


def ffn(params: dict, p: str, x: np.ndarray, layer: int, tr) -> np.ndarray:
    """The MLP: widen to n_inner, GELU, project back. Applied to each position on its own."""
    pre = linear(x, params[p + "mlp.c_fc.weight"], params[p + "mlp.c_fc.bias"])  # [n_seq, n_inner]
    post = gelu(pre)
    out = linear(post, params[p + "mlp.c_proj.weight"], params[p + "mlp.c_proj.bias"])  # [n_seq, n_embd]
    tr.record(f"blocks.{layer}.mlp.pre", pre)
    tr.record(f"blocks.{layer}.mlp.post", post)
    tr.record(f"blocks.{layer}.mlp.out", out)
    return out


def transformer_block(params: dict, layer: int, x: np.ndarray, cfg: ModelConfig, positions: np.ndarray,
                      cache: KVCache | None, tr) -> np.ndarray:
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). The residual stream is only ever added to."""
    p = f"h.{layer}."
    tr.record(f"blocks.{layer}.resid_pre", x)
    h = layer_norm(x, params[p + "ln_1.weight"], params[p + "ln_1.bias"], cfg.norm_eps)
    tr.record(f"blocks.{layer}.ln1.out", h)
    x = x + mha(params, p, h, cfg, positions, cache, layer, tr)
    tr.record(f"blocks.{layer}.resid_mid", x)
    h = layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"], cfg.norm_eps)
    tr.record(f"blocks.{layer}.ln2.out", h)
    x = x + ffn(params, p, h, layer, tr)
    tr.record(f"blocks.{layer}.resid_post", x)
    return x


def final_norm(params: dict, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """ln_f: the last LayerNorm before the unembedding."""
    return layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], cfg.norm_eps)


def unembed(params: dict, x: np.ndarray) -> np.ndarray:
    """Tied unembedding: score every vocabulary entry by its dot product with the final vector."""
    return x @ params["wte.weight"].T  # [n_seq, n_embd] @ [n_embd, n_vocab] -> [n_seq, n_vocab]


def gpt2_forward(params: dict, cfg: ModelConfig, ids: np.ndarray, positions: np.ndarray,
                 cache: KVCache | None, tr, last_only: bool = False) -> np.ndarray:
    """ids [n_seq] at `positions` -> logits [n_seq, n_vocab] (or [1, n_vocab] with last_only)."""
    x = embed(params, ids, positions, tr)  # [n_seq, n_embd]
    for layer in range(cfg.n_layer):
        x = transformer_block(params, layer, x, cfg, positions, cache, tr)
    if last_only:
        x = x[-1:]
    x = final_norm(params, x, cfg)
    tr.record("ln_final.out", x)
    return unembed(params, x)
