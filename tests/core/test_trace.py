"""The Trace: pinned names and shapes, and equality with the plain forward pass."""

import numpy as np
import pytest

from fwdtui.core.ops import attention, causal_mask, softmax
from fwdtui.testing import random_model

GPT2_LAYER_NAMES = ["resid_pre", "ln1.out", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern", "attn.z",
                    "attn.out", "resid_mid", "ln2.out", "mlp.pre", "mlp.post", "mlp.out", "resid_post"]
LLAMA_LAYER_NAMES = ["resid_pre", "ln1.out", "attn.q", "attn.k", "attn.q_rot", "attn.k_rot", "attn.v", "attn.scores",
                     "attn.pattern", "attn.z", "attn.out", "resid_mid", "ln2.out", "mlp.pre", "mlp.up", "mlp.post",
                     "mlp.out", "resid_post"]


def expected_names(family: str, n_layer: int) -> list[str]:
    head = ["embed", "pos_embed"] if family == "gpt2" else ["embed"]
    per = GPT2_LAYER_NAMES if family == "gpt2" else LLAMA_LAYER_NAMES
    return head + [f"blocks.{i}.{n}" for i in range(n_layer) for n in per] + ["ln_final.out", "logits", "probs"]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_trace_names_are_pinned(family):
    model = random_model(family, n_layer=3)
    trace = model.trace([5, 6, 7, 8])
    assert sorted(trace) == sorted(expected_names(family, 3))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_trace_shapes(family):
    model = random_model(family, n_layer=2, n_embd=32, n_head=4)
    cfg = model.config
    trace = model.trace(list(range(10, 17)))
    n = 7
    assert trace["embed"].shape == (n, 32)
    assert trace["blocks.1.attn.q"].shape == (cfg.n_head, n, cfg.head_dim)
    assert trace["blocks.1.attn.v"].shape == (cfg.n_kv_head, n, cfg.head_dim)
    assert trace["blocks.1.attn.pattern"].shape == (cfg.n_head, n, n)
    assert trace["blocks.0.mlp.post"].shape == (n, cfg.n_inner)
    assert trace["logits"].shape == (n, cfg.vocab_size)
    np.testing.assert_allclose(trace["probs"].sum(-1), 1.0, rtol=1e-5)
    assert trace.positions.tolist() == list(range(n))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_trace_logits_equal_plain_logits(family):
    model = random_model(family)
    ids = [1, 50, 100, 150, 200]
    np.testing.assert_array_equal(model.trace(ids)["logits"], model.logits(ids))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_residual_stream_adds_up(family):
    """resid_mid = resid_pre + attn.out and resid_post = resid_mid + mlp.out, layer by layer."""
    model = random_model(family)
    t = model.trace([3, 1, 4, 1, 5, 9])
    for i in range(model.config.n_layer):
        np.testing.assert_allclose(t[f"blocks.{i}.resid_mid"], t[f"blocks.{i}.resid_pre"] + t[f"blocks.{i}.attn.out"], atol=1e-6)
        np.testing.assert_allclose(t[f"blocks.{i}.resid_post"], t[f"blocks.{i}.resid_mid"] + t[f"blocks.{i}.mlp.out"], atol=1e-6)
        if i:
            np.testing.assert_array_equal(t[f"blocks.{i}.resid_pre"], t[f"blocks.{i - 1}.resid_post"])


def test_pattern_is_causal_and_normalised():
    t = random_model("gpt2").trace(list(range(20, 28)))
    pattern = t["blocks.0.attn.pattern"]
    assert np.all(np.triu(pattern, k=1) == 0)  # no weight on a later position
    np.testing.assert_allclose(pattern.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pattern, softmax(t["blocks.0.attn.scores"]), rtol=1e-6)


def test_attention_z_is_pattern_times_v():
    t = random_model("llama").trace(list(range(30, 36)))
    pattern, v, z = t["blocks.1.attn.pattern"], t["blocks.1.attn.v"], t["blocks.1.attn.z"]
    group = pattern.shape[0] // v.shape[0]
    for h in range(pattern.shape[0]):
        np.testing.assert_allclose(z[h], pattern[h] @ v[h // group], atol=1e-6)


def test_gqa_attention_equals_repeated_heads():
    """Sharing k/v across a group of query heads is the same as repeating each k/v head."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((6, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, 5, 4)).astype(np.float32)
    v = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = causal_mask(np.arange(5), np.arange(5))
    z, _, _ = attention(q, k, v, mask)
    z_rep, _, _ = attention(q, np.repeat(k, 3, axis=0), np.repeat(v, 3, axis=0), mask)
    np.testing.assert_allclose(z, z_rep, atol=1e-6)


def test_logit_lens_last_row_equals_logits():
    model = random_model("gpt2", n_layer=3)
    ids = [7, 8, 9, 10]
    t = model.trace(ids)
    lens = model.logit_lens(t, position=-1)
    assert lens.shape == (4, model.config.vocab_size)
    np.testing.assert_allclose(lens[-1], t["logits"][-1], atol=1e-5)
