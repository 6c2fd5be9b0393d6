"""The Llama family's forward pass in numpy (Llama, Qwen2, Mistral): RMSNorm, RoPE, GQA, SwiGLU.

Parameter names are the checkpoint's own without the `model.` prefix (embed_tokens,
layers.N.self_attn.q_proj, ...). nn.Linear weights are stored [n_out, n_in], so a projection is
`x @ w.T + b`.
"""

from __future__ import annotations

import numpy as np

from fwdtui.core.config import ModelConfig
from fwdtui.core.gpt2 import merge_heads, split_heads
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.ops import causal_attention, rms_norm, rope, rope_cos_sin, silu
from fwdtui.core.trace import Trace


def proj(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """nn.Linear: x @ w.T (+ b), with w stored [n_out, n_in] as PyTorch does."""
    y = x @ w.T  # [n_seq, n_in] @ [n_in, n_out] -> [n_seq, n_out]
    return y if b is None else y + b


def gqa(params: dict, p: str, x: np.ndarray, cfg: ModelConfig, positions: np.ndarray, inv_freq: np.ndarray,
        cache: KVCache | None, layer: int, tr, cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Grouped-query self-attention with rotary positions: n_head query heads share n_kv_head k/v heads.

    `cos_sin`: the rotation tables of `positions` (`ops.rope_cos_sin`), worked out once per forward pass."""
    q = proj(x, params[p + "self_attn.q_proj.weight"], params.get(p + "self_attn.q_proj.bias"))  # [n_seq, n_head*head_dim]
    k = proj(x, params[p + "self_attn.k_proj.weight"], params.get(p + "self_attn.k_proj.bias"))  # [n_seq, n_kv*head_dim]
    v = proj(x, params[p + "self_attn.v_proj.weight"], params.get(p + "self_attn.v_proj.bias"))
    q, k, v = split_heads(q, cfg.n_head), split_heads(k, cfg.n_kv_head), split_heads(v, cfg.n_kv_head)
    tr.record(f"blocks.{layer}.attn.q", q)
    cos_sin = cos_sin if cos_sin is not None else rope_cos_sin(positions, inv_freq)
    q_rot = rope(q, positions, inv_freq, cos_sin)  # position enters here, by rotating q and k; v is never rotated
    k_rot = rope(k, positions, inv_freq, cos_sin)
    if cache is not None:
        k_rot, v = cache.append(layer, k_rot, v)  # the cache keeps rotated keys: [n_kv, n_past + n_seq, head_dim]
    z, scores, pattern = causal_attention(q_rot, k_rot, v, positions, cfg.sliding_window, cfg.attention_sinks,
                                          keep=isinstance(tr, Trace))  # z: [n_head, n_seq, head_dim]
    out = proj(merge_heads(z), params[p + "self_attn.o_proj.weight"], params.get(p + "self_attn.o_proj.bias"))
    # k is this call's keys before rotation; k_rot and v include the cached positions too.
    for name, value in (("k", k), ("q_rot", q_rot), ("k_rot", k_rot), ("v", v), ("scores", scores),
                        ("pattern", pattern), ("z", z), ("out", out)):
        tr.record(f"blocks.{layer}.attn.{name}", value)
    return out  # [n_seq, n_embd]


def swiglu(params: dict, p: str, x: np.ndarray, layer: int, tr) -> np.ndarray:
    """SwiGLU MLP: down(silu(gate(x)) * up(x)); the gate decides, per hidden unit, how much of up passes."""
    gate = proj(x, params[p + "mlp.gate_proj.weight"], params.get(p + "mlp.gate_proj.bias"))  # [n_seq, n_inner]
    up = proj(x, params[p + "mlp.up_proj.weight"], params.get(p + "mlp.up_proj.bias"))  # [n_seq, n_inner]
    post = silu(gate) * up
    out = proj(post, params[p + "mlp.down_proj.weight"], params.get(p + "mlp.down_proj.bias"))  # [n_seq, n_embd]
    tr.record(f"blocks.{layer}.mlp.pre", gate)
    tr.record(f"blocks.{layer}.mlp.up", up)
    tr.record(f"blocks.{layer}.mlp.post", post)
    tr.record(f"blocks.{layer}.mlp.out", out)
    return out


def llama_block(params: dict, layer: int, x: np.ndarray, cfg: ModelConfig, positions: np.ndarray,
                inv_freq: np.ndarray, cache: KVCache | None, tr,
                cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Pre-norm block as in GPT-2, with RMSNorm in place of LayerNorm."""
    p = f"layers.{layer}."
    tr.record(f"blocks.{layer}.resid_pre", x)
    h = rms_norm(x, params[p + "input_layernorm.weight"], cfg.norm_eps)
    tr.record(f"blocks.{layer}.ln1.out", h)
    x = x + gqa(params, p, h, cfg, positions, inv_freq, cache, layer, tr, cos_sin)
    tr.record(f"blocks.{layer}.resid_mid", x)
    h = rms_norm(x, params[p + "post_attention_layernorm.weight"], cfg.norm_eps)
    tr.record(f"blocks.{layer}.ln2.out", h)
    x = x + swiglu(params, p, h, layer, tr)
    tr.record(f"blocks.{layer}.resid_post", x)
    return x


def final_norm(params: dict, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """The last RMSNorm before the unembedding."""
    return rms_norm(x, params["norm.weight"], cfg.norm_eps)


def unembed(params: dict, x: np.ndarray) -> np.ndarray:
    """lm_head, or the embedding matrix itself when the model ties them."""
    w = params.get("lm_head.weight", params["embed_tokens.weight"])  # [n_vocab, n_embd]
    return x @ w.T  # [n_seq, n_vocab]


def llama_forward(params: dict, cfg: ModelConfig, ids: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray,
                  cache: KVCache | None, tr, last_only: bool = False) -> np.ndarray:
    """ids [n_seq] at `positions` -> logits [n_seq, n_vocab] (or [1, n_vocab] with last_only)."""
    x = params["embed_tokens.weight"][ids]  # [n_seq, n_embd]; no position vector is added: RoPE does that
    tr.record("embed", x)
    cos_sin = rope_cos_sin(positions, inv_freq)  # the same rotations in every layer: worked out once
    for layer in range(cfg.n_layer):
        x = llama_block(params, layer, x, cfg, positions, inv_freq, cache, tr, cos_sin)
    if last_only:
        x = x[-1:]
    x = final_norm(params, x, cfg)
    tr.record("ln_final.out", x)
    return unembed(params, x)
