"""The math the attention chapters claim, checked: on tiny random models, and on SmolLM2 when present."""

import dataclasses

import numpy as np
import pytest

from fwdtui.core import attention_lab as lab
from fwdtui.core.gpt2 import merge_heads
from fwdtui.core.ops import rope_frequencies, softmax
from fwdtui.errors import ConfigError
from fwdtui.testing import random_model

IDS = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33]


# --- scaled dot-product ---------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_attention_row_equals_the_trace(family):
    model = random_model(family, n_head=4)
    trace = model.trace(IDS)
    q, k, v = lab.attention_inputs(trace, model.config, 1)
    group = model.config.n_group
    for head in range(model.config.n_head):
        for query in (0, 5, len(IDS) - 1):
            row = lab.attention_row(q[head], k[head // group], v[head // group], query)
            np.testing.assert_allclose(row.weights, trace["blocks.1.attn.pattern"][head, query], atol=1e-6)
            np.testing.assert_allclose(row.z, trace["blocks.1.attn.z"][head, query], atol=1e-5)
            assert np.all(row.weights[query + 1:] == 0)


def test_removing_the_scale_sharpens_and_lifting_the_mask_sees_the_future():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((10, 64)).astype(np.float32) for _ in range(3))
    scaled = lab.attention_row(q, k, v, 6)
    raw = lab.attention_row(q, k, v, 6, use_scale=False)
    assert raw.entropy < scaled.entropy
    np.testing.assert_allclose(raw.dots, scaled.dots)
    open_ = lab.attention_row(q, k, v, 6, causal=False)
    assert open_.weights[7:].sum() > 0 and scaled.weights[7:].sum() == 0


def test_entropy_bits():
    assert lab.entropy_bits(np.array([0.25, 0.25, 0.25, 0.25])) == pytest.approx(2.0)
    assert lab.entropy_bits(np.array([1.0, 0.0, 0.0])) == pytest.approx(0.0)


# --- multi-head -----------------------------------------------------------------------------


def test_repeated_random_ids_are_two_copies_of_distinct_tokens():
    ids = lab.repeated_random_ids(257, 20, seed=3, bos=1)
    assert ids[0] == 1 and len(ids) == 41
    assert ids[1:21].tolist() == ids[21:].tolist()
    assert len(set(ids[1:21].tolist())) == 20


def test_role_scores_on_handmade_patterns():
    n, half, start = 9, 4, 1
    prev = np.zeros((n, n))
    prev[0, 0] = 1
    prev[np.arange(1, n), np.arange(0, n - 1)] = 1
    induct = np.eye(n)
    rows = np.arange(start + half, n)
    induct[rows] = 0
    induct[rows, rows - half + 1] = 1
    sink = np.zeros((n, n))
    sink[:, 0] = 1
    pattern = np.stack([prev, induct, sink])
    assert lab.previous_token_score(pattern, start).tolist() == [1.0, 0.0, 0.0]
    assert lab.induction_score(pattern, half, start).tolist() == [0.0, 1.0, 0.0]
    assert lab.sink_score(pattern)[2] == 1.0
    assert lab.head_role(0.9, 0.1, 0.0) == "induction"
    assert lab.head_role(0.1, 0.2, 0.3) == "mixed"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_ablating_a_head_equals_recomputing_without_its_z(family):
    model = random_model(family, n_head=4)
    layer, head = 1, 2
    base = model.trace(IDS)
    ablated = lab.ablate_head(model, layer, head).trace(IDS)
    # the layer's output recomputed from the original z with that head zeroed
    z = base[f"blocks.{layer}.attn.z"].copy()
    z[head] = 0.0
    if family == "gpt2":
        w, b = model.weights[f"h.{layer}.attn.c_proj.weight"], model.weights[f"h.{layer}.attn.c_proj.bias"]
        expected = merge_heads(z) @ w + b
    else:
        expected = merge_heads(z) @ model.weights[f"layers.{layer}.self_attn.o_proj.weight"].T
    np.testing.assert_allclose(ablated[f"blocks.{layer}.attn.out"], expected, atol=1e-5)
    # layers before are untouched; the final distribution moved
    np.testing.assert_array_equal(ablated["blocks.0.attn.out"], base["blocks.0.attn.out"])
    assert not np.allclose(ablated["logits"], base["logits"])
    # the original model's weights were not modified
    np.testing.assert_array_equal(model.trace(IDS)["logits"], base["logits"])
    effect = lab.ablation_effect(model, IDS, layer, head)
    assert effect.kl > 0


def test_head_scores_shapes_on_tiny_model():
    model = random_model("llama", n_layer=2, n_head=4)
    scores = lab.head_scores(model, half=10)
    assert scores.induction.shape == (2, 4) == scores.previous.shape == scores.sink.shape
    assert np.all((scores.induction >= 0) & (scores.induction <= 1))
    layer, head, value = scores.best("sink")
    assert value == scores.sink.max()


# --- positions ------------------------------------------------------------------------------


def test_sinusoidal_table_formula():
    table = lab.sinusoidal_table(50, 16)
    assert table[0, 0::2].tolist() == [0.0] * 8 and table[0, 1::2].tolist() == [1.0] * 8
    assert table[7, 2] == pytest.approx(np.sin(7 / 10000 ** (2 / 16)))
    assert table[7, 3] == pytest.approx(np.cos(7 / 10000 ** (2 / 16)))


def test_rotary_scores_depend_only_on_the_offset():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal(64), rng.standard_normal(64)
    inv_freq = rope_frequencies(64, 10000.0)
    table = lab.rotary_offset_table(q, k, inv_freq, offsets=[0, 1, 5, 17], starts=[0, 3, 40, 900])
    for row in table:
        np.testing.assert_allclose(row, row[0], rtol=1e-4, atol=1e-4)
    assert abs(table[0, 0] - table[2, 0]) > 1e-3  # but different offsets give different scores


def test_rotary_offset_on_real_trace_vectors():
    model = random_model("llama")
    trace = model.trace(IDS)
    q, k = trace["blocks.0.attn.q"][0, 3], trace["blocks.0.attn.k"][0, 1]
    row = lab.rotary_offset_table(q, k, model.inv_freq, [2], [1, 7, 30])[0]
    # at its real positions (3, 1) the score equals the trace's own q_rot . k_rot
    real = trace["blocks.0.attn.q_rot"][0, 3] @ trace["blocks.0.attn.k_rot"][0, 1]
    np.testing.assert_allclose(row, real, rtol=1e-4)


# --- GQA ------------------------------------------------------------------------------------


def test_published_kv_bytes():
    by_name = {p.name: p for p in lab.PUBLISHED_ATTENTION}
    assert by_name["Llama 3 8B"].kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2 == 131072
    assert by_name["SmolLM2-135M"].kind == "GQA" and by_name["Falcon 7B"].kind == "MQA"
    assert by_name["DeepSeek-V3"].kind == "MLA" and by_name["DeepSeek-V3"].values_per_token == 61 * 576


def test_pooling_to_the_same_count_changes_nothing_and_fewer_heads_are_real_gqa():
    model = random_model("llama", n_head=4, n_kv_head=4)
    same = lab.pooled_model(model, 4)
    np.testing.assert_allclose(same.logits(IDS), model.logits(IDS), atol=1e-6)
    pooled = lab.pooled_model(model, 2)
    assert pooled.config.n_kv_head == 2
    assert pooled.trace(IDS)["blocks.0.attn.k"].shape[0] == 2
    damage = lab.pooling_damage(model, IDS, 1)
    assert damage.kl > 0
    with pytest.raises(ConfigError):
        lab.pool_kv_weights(model, 3)


def test_gpt2_pooling_equals_averaged_heads():
    model = random_model("gpt2", n_head=4)
    pooled = lab.pooled_model(model, 2)
    k = pooled.trace(IDS)["blocks.0.attn.k"]
    np.testing.assert_allclose(k[0], k[1], atol=1e-6)  # heads of a group now share keys
    ref = model.trace(IDS)["blocks.0.attn.k"]
    np.testing.assert_allclose(k[0], (ref[0] + ref[1]) / 2, atol=1e-5)


# --- MLA ------------------------------------------------------------------------------------


def test_absorbed_mla_equals_plain():
    w = lab.random_mla(seed=0)
    x = np.random.default_rng(5).standard_normal((11, 64)).astype(np.float32)
    plain, absorbed = lab.mla_plain(x, w), lab.mla_absorbed(x, w)
    np.testing.assert_allclose(absorbed.out, plain.out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(absorbed.pattern, plain.pattern, atol=1e-5)
    table = dict(lab.mla_cache_table(w, 2))
    assert table["MHA (4 kv heads)"] == 2 * 4 * 24 and plain.cached_per_token == 16 + 8 == min(table.values())


# --- sparse ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 16, 33])
def test_cost_counts_equal_mask_counts(n):
    assert lab.visible_pairs("full", n) == n * (n + 1) // 2
    assert lab.visible_pairs("window", n, window=4, sinks=2) == (~lab.sliding_window_mask(n, 4, 2)).sum()
    assert lab.visible_pairs("strided", n, stride=4) == (~lab.strided_mask(n, 4)).sum()
    assert lab.visible_pairs("block", n, block=4) == (~lab.block_sparse_mask(n, 4)).sum()


def test_masks_are_causal():
    for mask in (lab.sliding_window_mask(12, 3), lab.strided_mask(12, 3), lab.dilated_mask(12, 3, 2),
                 lab.block_sparse_mask(12, 3)):
        assert np.all(mask[np.triu_indices(12, 1)])  # the future is always hidden
        assert not np.any(np.diag(mask))  # every token sees itself


def test_window_sweep_matches_a_model_built_with_that_window():
    model = random_model("gpt2")
    sweep = lab.window_sweep(model, IDS, [len(IDS), 2])
    assert sweep[0].window is None and sweep[0].kl == 0
    assert sweep[1].kl == pytest.approx(0.0, abs=1e-6)  # a window as long as the prompt hides nothing
    cfg = dataclasses.replace(model.config, sliding_window=2)
    probs = softmax(model.variant(config=cfg).logits(IDS)[-1].astype(np.float64))
    assert sweep[2].kl == pytest.approx(lab.kl_bits(lab.next_token_probs(model, IDS), probs), rel=1e-4)
    assert sweep[2].kl > 0


# --- hybrid ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_recurrent_linear_attention_equals_parallel(decay):
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((20, 8)), rng.standard_normal((20, 8)), rng.standard_normal((20, 6))
    run = lab.linear_attention_recurrent(q, k, v, decay)
    np.testing.assert_allclose(run.out, lab.linear_attention_parallel(q, k, v, decay), rtol=1e-9, atol=1e-9)
    assert run.state_numbers == 8 * 6 + 8
    assert run.kv_cache_numbers[-1] == 2 * 8 * 20


def test_context_pair_same_word_differs_after_attention():
    model = random_model("gpt2")
    pair = lab.context_pair(model, "the river bank", "the money bank")
    assert pair.same_token and pair.embed_cos == pytest.approx(1.0)
    assert pair.after_attn.shape == (model.config.n_layer,)
    assert pair.after_attn[0] < 0.9999


# --- SmolLM2, when present ------------------------------------------------------------------


def _smollm2():
    from fwdtui.loaders.registry import local_path

    if local_path("smollm2-135m") is None:
        pytest.skip("SmolLM2-135M weights are not on this machine")
    import fwdtui

    return fwdtui.load_model("smollm2-135m")


@pytest.mark.smollm2
def test_smollm2_has_an_induction_head_and_a_previous_token_head():
    scores = lab.head_scores(_smollm2(), half=24, seed=0)
    layer, head, value = scores.best("induction")
    assert value > 0.6, (layer, head, value)
    layer, head, value = scores.best("previous")
    assert value > 0.6, (layer, head, value)
    assert lab.head_role(scores.induction[layer, head], scores.previous[layer, head], scores.sink[layer, head]) \
        == "previous token"
