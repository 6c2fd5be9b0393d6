"""The fast paths of the core give the numbers of the plain math: a textbook forward pass written here
in float64, blocked causal attention against the full square, trace on against off, last_only against
every row, cached decoding against one prefill. Small random models; nothing here measures a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fwdtui.core import ops
from fwdtui.core.kv_cache import BLOCK
from fwdtui.testing import random_model

LONG = ops.ATTN_BLOCK * 2 + 37  # a prompt that spans three query blocks, the last one partial


# --------------------------------------------------------------------------------------------------
# The textbook forward passes, in float64, one head at a time, no cache, no blocks


def ref_layer_norm(x, g, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return g * (x - mean) / np.sqrt(var + eps) + b


def ref_rms_norm(x, g, eps):
    return g * x / np.sqrt((x**2).mean(-1, keepdims=True) + eps)


def ref_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_head(q, k, v):
    """One causal head: q, k, v [n, head_dim] -> [n, head_dim]."""
    n = q.shape[0]
    s = q @ k.T / np.sqrt(q.shape[1])
    s[np.triu(np.ones((n, n), dtype=bool), k=1)] = -np.inf
    return ref_softmax(s) @ v


def ref_gpt2_logits(model, ids):
    cfg, w = model.config, {k: v.astype(np.float64) for k, v in model.weights.items()}
    hd = cfg.head_dim
    x = w["wte.weight"][ids] + w["wpe.weight"][np.arange(len(ids))]
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        h = ref_layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], cfg.norm_eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv[:, : cfg.n_embd], qkv[:, cfg.n_embd : 2 * cfg.n_embd], qkv[:, 2 * cfg.n_embd :]
        z = np.concatenate([ref_head(q[:, j * hd : (j + 1) * hd], k[:, j * hd : (j + 1) * hd], v[:, j * hd : (j + 1) * hd])
                            for j in range(cfg.n_head)], axis=1)
        x = x + z @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = ref_layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], cfg.norm_eps)
        a = h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
        a = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
        x = x + a @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = ref_layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], cfg.norm_eps)
    return x @ w["wte.weight"].T


def ref_rope(x, positions, theta):
    """Rotate pairs (i, i + d/2) of x [n, d] by position * theta^(-2i/d)."""
    d = x.shape[1]
    angle = positions[:, None] * theta ** (-np.arange(0, d, 2) / d)[None, :]
    x1, x2 = x[:, : d // 2], x[:, d // 2 :]
    return np.concatenate([x1 * np.cos(angle) - x2 * np.sin(angle), x2 * np.cos(angle) + x1 * np.sin(angle)], axis=1)


def ref_llama_logits(model, ids):
    cfg, w = model.config, {k: v.astype(np.float64) for k, v in model.weights.items()}
    hd, group, pos = cfg.head_dim, cfg.n_head // cfg.n_kv_head, np.arange(len(ids), dtype=np.float64)
    x = w["embed_tokens.weight"][ids]
    for i in range(cfg.n_layer):
        p = f"layers.{i}."
        h = ref_rms_norm(x, w[p + "input_layernorm.weight"], cfg.norm_eps)
        q, k, v = (h @ w[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        heads = []
        for j in range(cfg.n_head):
            kv = slice((j // group) * hd, (j // group + 1) * hd)  # query head j reads kv head j // group
            heads.append(ref_head(ref_rope(q[:, j * hd : (j + 1) * hd], pos, cfg.rope_theta),
                                  ref_rope(k[:, kv], pos, cfg.rope_theta), v[:, kv]))
        x = x + np.concatenate(heads, axis=1) @ w[p + "self_attn.o_proj.weight"].T
        h = ref_rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.norm_eps)
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = ref_rms_norm(x, w["norm.weight"], cfg.norm_eps)
    return x @ w.get("lm_head.weight", w["embed_tokens.weight"]).T


REFERENCE = {"gpt2": ref_gpt2_logits, "llama": ref_llama_logits}


def prompt(n: int, seed: int = 3) -> list[int]:
    return np.random.default_rng(seed).integers(0, 256, n).tolist()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("n", [1, 7, LONG])
def test_forward_equals_the_textbook_math(family, n):
    model = random_model(family, n_ctx=512)
    ids = prompt(n)
    ours = model.logits(ids)
    ref = REFERENCE[family](model, ids)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_every_intermediate_stays_float32(family):
    """One float64 constant (np.sqrt of a Python float is a numpy float64) once made GELU return float64,
    and everything after it ran at half speed with every weight converted on every call."""
    trace = random_model(family).trace(prompt(9))
    wrong = {name: str(value.dtype) for name, value in trace.items() if value.dtype != np.float32}
    assert not wrong


# --------------------------------------------------------------------------------------------------
# Building blocks against their plain versions


def test_norms_and_softmax_equal_their_definitions():
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((5, 48)) + 1).astype(np.float32)
    g, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    x64, g64, b64 = x.astype(np.float64), g.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(ops.layer_norm(x, g, b), ref_layer_norm(x64, g64, b64, 1e-5), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.rms_norm(x, g), ref_rms_norm(x64, g64, 1e-6), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.softmax(x), ref_softmax(x64), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(ops.softmax(np.array([0.0, -np.inf, 1.0])) > 0, [True, False, True])
    h = np.linspace(-6, 6, 101)
    np.testing.assert_allclose(ops.gelu(h.astype(np.float32)), 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3))),
                               atol=1e-6)
    assert ops.gelu(h.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("n_past", [0, 5, ops.ATTN_BLOCK + 3])
@pytest.mark.parametrize("window,sinks", [(None, 0), (40, 0), (40, 4)])
@pytest.mark.parametrize("n_head,n_kv_head", [(4, 4), (6, 2)])
def test_blocked_attention_equals_the_full_square(n_past, window, sinks, n_head, n_kv_head):
    rng = np.random.default_rng(1)
    n_q = ops.ATTN_BLOCK + 60
    n_k = n_past + n_q
    q = rng.standard_normal((n_head, n_q, 16)).astype(np.float32)
    k, v = (rng.standard_normal((n_kv_head, n_k, 16)).astype(np.float32) for _ in range(2))
    q_positions = np.arange(n_past, n_k)
    mask = ops.causal_mask(q_positions, np.arange(n_k), window, sinks)
    z_full, scores_full, pattern_full = ops.attention(q, k, v, mask)
    z, scores, pattern = ops.causal_attention(q, k, v, q_positions, window, sinks, keep=True)
    np.testing.assert_allclose(z, z_full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, scores_full, rtol=1e-6, atol=1e-6)  # -inf in the same places
    np.testing.assert_allclose(pattern, pattern_full, rtol=1e-5, atol=1e-7)
    z_only, no_scores, no_pattern = ops.causal_attention(q, k, v, q_positions, window, sinks)
    np.testing.assert_array_equal(z_only, z)
    assert no_scores is None and no_pattern is None


# --------------------------------------------------------------------------------------------------
# The model's paths against each other


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("n", [6, LONG])
def test_trace_on_and_off_give_identical_logits(family, n):
    model = random_model(family, n_ctx=512)
    ids = prompt(n)
    plain, none = model.forward(ids)
    traced, trace = model.forward(ids, trace=True)
    assert none is None
    np.testing.assert_array_equal(traced, plain)
    np.testing.assert_array_equal(trace["logits"], plain)
    np.testing.assert_allclose(trace["probs"], ref_softmax(plain.astype(np.float64)), rtol=1e-5, atol=1e-7)
    pattern = trace["blocks.1.attn.pattern"]
    assert pattern.shape == (model.config.n_head, n, n)
    assert np.all(np.triu(pattern[0], k=1) == 0)
    np.testing.assert_allclose(pattern.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_last_only_is_the_last_row(family):
    model = random_model(family, n_ctx=512)
    ids = prompt(LONG)
    last, _ = model.forward(ids, last_only=True)
    assert last.shape == (1, model.config.vocab_size)
    np.testing.assert_allclose(last[0], model.logits(ids)[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoding_past_a_cache_block_equals_one_prefill(family):
    """Prefill up to just before the cache's first block boundary, then decode across it."""
    model = random_model(family, n_ctx=BLOCK + 64)
    ids = prompt(BLOCK + 6)
    full = model.logits(ids)
    cache = model.new_cache()
    rows = [model.forward(ids[: BLOCK - 3], cache=cache, last_only=True)[0]]
    for token in ids[BLOCK - 3 :]:
        rows.append(model.forward([token], cache=cache, last_only=True)[0])
    assert cache.length == len(ids) and cache.capacity >= len(ids)
    np.testing.assert_allclose(np.concatenate(rows), full[BLOCK - 4 :], rtol=1e-4, atol=1e-4)


def test_decode_trace_after_a_long_prefill_covers_the_whole_cache():
    model = random_model("gpt2", n_ctx=512)
    cache = model.new_cache()
    model.forward(prompt(LONG), cache=cache)
    logits, trace = model.forward([7], cache=cache, trace=True)
    assert trace["blocks.0.attn.pattern"].shape == (model.config.n_head, 1, LONG + 1)
    np.testing.assert_allclose(logits[0], model.logits(prompt(LONG) + [7])[-1], rtol=1e-4, atol=1e-4)


def test_sliding_window_model_matches_masking_by_hand():
    """A window on the config (through the blocked path) equals the full attention with the window mask."""
    base = random_model("llama", n_ctx=512)
    model = base.variant(config=dataclasses.replace(base.config, sliding_window=50, attention_sinks=2))
    ids = prompt(LONG)
    trace = model.trace(ids)
    pattern = trace["blocks.0.attn.pattern"]
    hidden = ops.causal_mask(np.arange(LONG), np.arange(LONG), 50, 2)
    assert np.all(pattern[:, hidden] == 0) and np.all(pattern[:, ~hidden] > 0)
    np.testing.assert_allclose(model.forward(ids, last_only=True)[0][0], trace["logits"][-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_greedy_generate_equals_argmax_of_full_passes(family):
    model = random_model(family, n_ctx=512)
    ids = prompt(20)
    out = list(model.generate(ids, max_new_tokens=6, temperature=0, stop_at_eos=False))
    expected = []
    for _ in range(6):
        expected.append(int(np.argmax(model.logits(ids + expected)[-1])))
    assert out == expected
