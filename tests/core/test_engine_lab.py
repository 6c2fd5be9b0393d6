"""The inference-engine lab, checked on tiny random models: each trick gives the same numbers as the plain way."""

import numpy as np
import pytest

from fwdtui.core import engine_lab as lab
from fwdtui.core import ops
from fwdtui.core.sampling import SamplingSettings, sampling_distribution
from fwdtui.testing import random_model

IDS = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 32, 116, 104, 101, 32, 99, 97, 116]


# --- work per step -------------------------------------------------------------------------------


def test_step_cost_counts_two_flops_per_weight_per_row_and_prefill_has_higher_intensity():
    model = random_model("llama")
    decode = lab.step_cost(model, 1, 20)
    prefill = lab.step_cost(model, 20, 0)
    dense = 2 * lab.matmul_params(model)
    assert decode.flops > dense and decode.flops < 1.5 * dense
    assert prefill.flops > 20 * dense
    assert prefill.intensity > 10 * decode.intensity
    assert decode.weight_bytes == prefill.weight_bytes  # the weights are read once per pass either way


def test_timing_prefill_decode_gives_the_greedy_tokens():
    model = random_model("gpt2")
    timing = lab.time_prefill_decode(model, IDS, 5)
    assert timing.tokens == tuple(model.generate(IDS, 5, temperature=0.0, stop_at_eos=False))
    assert len(timing.decode_seconds) == 5 and timing.prefill_seconds > 0


# --- KV cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cached_and_recomputed_logits_are_the_same(family):
    model = random_model(family)
    cmp = lab.compare_cache(model, IDS, 4)
    assert len(cmp.tokens) == 4
    assert max(cmp.max_abs_diff) < 1e-4
    np.testing.assert_allclose(cmp.cached_logits, cmp.recompute_logits, atol=1e-4)
    assert cmp.cache_bytes == cmp.bytes_per_token * (len(IDS) + 4)


# --- paged attention -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_paged_cache_gives_back_the_contiguous_cache_and_the_same_attention(family):
    model = random_model(family)
    cfg = model.config
    caches = {}
    for name, ids in (("a", IDS), ("b", IDS[:7]), ("c", IDS[5:])):
        caches[name] = model.new_cache()
        model.forward(ids, cache=caches[name])
    paged = lab.PagedKVCache(cfg.n_layer, cfg.n_kv_head, cfg.head_dim, block_size=4, n_blocks=16)
    # interleave the sequences three positions at a time, so their blocks are scattered in the pool
    for start in range(0, len(IDS), 3):
        for name, cache in caches.items():
            if start < cache.length:
                k, v = lab.cache_layers(cache, start, min(start + 3, cache.length))
                paged.append(name, k, v)
    assert paged.tables["a"] != sorted(paged.tables["a"]) or paged.tables["a"][1] - paged.tables["a"][0] > 1
    rng = np.random.default_rng(0)
    for name, cache in caches.items():
        for layer in range(cfg.n_layer):
            k, v = paged.gather(name, layer)
            np.testing.assert_array_equal(k, cache.keys(layer))
            np.testing.assert_array_equal(v, cache.values(layer))
            q = rng.standard_normal((cfg.n_head, 1, cfg.head_dim)).astype(np.float32)
            n = cache.length
            ref, _, _ = ops.attention(q, cache.keys(layer), cache.values(layer), np.zeros((1, n), bool))
            np.testing.assert_allclose(lab.paged_attention(q, paged, name, layer), ref, atol=1e-6)
    assert paged.wasted_slots() == sum(-(-c.length // 4) * 4 - c.length for c in caches.values())
    before = len(paged.free)
    paged.release("b")
    assert len(paged.free) == before + 2  # 7 positions in blocks of 4


def test_paged_cache_runs_out_of_blocks_loudly():
    paged = lab.PagedKVCache(1, 1, 2, block_size=2, n_blocks=1)
    with pytest.raises(MemoryError):
        paged.append("x", np.zeros((1, 1, 3, 2), np.float32), np.zeros((1, 1, 3, 2), np.float32))


def test_allocation_waste():
    alloc = lab.Allocation((5, 16, 1), max_len=32, block_size=4)
    assert alloc.used == 22 and alloc.contiguous_reserved == 96 and alloc.paged_reserved == 8 + 16 + 4
    assert alloc.waste(alloc.paged_reserved) == pytest.approx(1 - 22 / 28)


# --- flash attention --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("blocks", [(4, 4), (3, 5), (16, 2), (64, 64)])
def test_flash_attention_equals_the_models_own_attention(family, blocks):
    model = random_model(family)
    q, k, v, z = lab.layer_qkv(model, IDS, 1)
    out, steps = lab.flash_attention(q, k, v, *blocks, record_head=0)
    np.testing.assert_allclose(out, z, atol=2e-6)
    n = len(IDS)
    q_tiles = -(-n // blocks[0])
    k_tiles = -(-n // blocks[1])
    assert len(steps) == q_tiles * k_tiles
    bq, bk = blocks
    future = sum(1 for i in range(q_tiles) for j in range(k_tiles) if j * bk > min(n, (i + 1) * bq) - 1)
    assert sum(s.skipped for s in steps) == future  # tiles wholly in the future are never computed
    # the last tile of a row holds the full softmax denominator: the running sum is positive everywhere
    assert all((s.running_sum > 0).all() for s in steps if not s.skipped)


def test_flash_attention_skips_future_tiles_and_handles_decode_queries():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 8, 16)).astype(np.float32) * 3
    k = rng.standard_normal((1, 8, 16)).astype(np.float32) * 3
    v = rng.standard_normal((1, 8, 16)).astype(np.float32)
    ref, _, _ = ops.attention(q, k, v, ops.causal_mask(np.arange(8), np.arange(8)))
    out, steps = lab.flash_attention(q, k, v, 4, 4, record_head=1)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert [s.skipped for s in steps] == [False, True, False, False]
    last, _ = lab.flash_attention(q[:, -1:], k, v, 1, 3)  # one decode query over all 8 keys
    np.testing.assert_allclose(last, ref[:, -1:], atol=1e-6)
    full, tile = lab.attention_memory(9, 1000, 1000, 64, 64, 64)
    assert full == 9 * 1000 * 1000 * 4 and tile < full / 1000


# --- speculative decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_speculative_gives_exactly_the_targets_greedy_tokens(family, k):
    target = random_model(family, n_layer=3)
    draft = lab.draft_model(target, 1)
    assert draft.config.n_layer == 1 and draft.weights["lm_head.weight" if family == "llama" else "wte.weight"] is \
        target.weights["lm_head.weight" if family == "llama" else "wte.weight"]
    expected = tuple(target.generate(IDS, 17, temperature=0.0, stop_at_eos=False))
    result = lab.speculative_decode(target, draft, IDS, 17, k=k)
    assert result.tokens == expected
    assert result.target_passes < 17 or k == 1 and result.target_passes <= 17
    assert sum(r.accepted + 1 for r in result.rounds) >= 17


def test_the_full_model_as_its_own_draft_accepts_everything():
    target = random_model("llama", n_layer=2)
    result = lab.speculative_decode(target, lab.draft_model(target, 2), IDS, 12, k=3)
    assert result.acceptance == 1.0
    assert result.tokens_per_pass == pytest.approx(4.0)


def test_rejection_rule_keeps_the_target_distribution_on_small_vocab():
    rng = np.random.default_rng(0)
    p = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
    q = np.array([[0.1, 0.1, 0.7, 0.1]])
    counts = np.zeros(4)
    n = 20000
    for _ in range(n):
        draft = int(rng.choice(4, p=q[0]))
        accepted, extra = lab.accept_or_resample(p, q, [draft], rng)
        counts[draft if accepted else extra] += 1
    # the first token out follows p[0], not q[0]: chi-square with 3 degrees of freedom, 99.9% bound 16.3
    chi2 = ((counts - n * p[0]) ** 2 / (n * p[0])).sum()
    assert chi2 < 16.3, (counts / n, chi2)


def test_sampled_speculative_preserves_the_tiny_models_distribution():
    target = random_model("gpt2", n_layer=2, seed=3)
    draft = lab.draft_model(target, 1)
    settings = SamplingSettings(temperature=1.0, top_k=5)  # five tokens: countable
    prompt = IDS[:6]
    p_first = sampling_distribution(target.logits(prompt)[-1], settings)
    draft_logits = draft.logits(prompt)[-1]
    q_first = sampling_distribution(draft_logits, settings)
    t_logits = target.forward(prompt + [0])[0]  # rows for the next token and (unused) the one after
    rng = np.random.default_rng(1)
    support = np.flatnonzero(p_first)
    counts = dict.fromkeys(support.tolist(), 0)
    n = 6000
    for _ in range(n):
        d = int(rng.choice(q_first.size, p=q_first))
        p_rows = np.stack([p_first, sampling_distribution(t_logits[-1], settings)])
        accepted, extra = lab.accept_or_resample(p_rows, q_first[None], [d], rng)
        token = d if accepted else extra
        assert token in counts
        counts[token] += 1
    observed = np.array([counts[t] for t in support])
    expected = n * p_first[support]
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 18.5  # 4 degrees of freedom, 99.9%
    # and a whole sampled run works, returns the number of tokens asked for, within the top-5 sets
    result = lab.speculative_decode(target, draft, prompt, 8, k=3, settings=settings, seed=5)
    assert len(result.tokens) == 8


# --- sampling ----------------------------------------------------------------------------------------


def test_repetition_penalty_lowers_seen_tokens_both_signs():
    logits = np.array([2.0, -1.0, 0.5, 3.0])
    out = lab.repetition_penalty(logits, [0, 1, 1], 2.0)
    np.testing.assert_allclose(out, [1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(lab.repetition_penalty(logits, [0], 1.0), logits)


def test_min_p_keeps_tokens_near_the_top():
    probs = np.array([0.5, 0.3, 0.1, 0.06, 0.04])
    assert lab.min_p_keep(probs, 0.2).tolist() == [True, True, True, False, False]
    assert lab.min_p_keep(probs, 0.0).all()
    dist = lab.full_distribution(np.log(probs), lab.SamplerSettings(temperature=1.0, min_p=0.2))
    np.testing.assert_allclose(dist, [0.5 / 0.9, 0.3 / 0.9, 0.1 / 0.9, 0, 0], atol=1e-9)


def test_full_distribution_composes_with_the_core():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(50)
    s = lab.SamplerSettings(temperature=0.7, top_k=10, top_p=0.9)
    np.testing.assert_allclose(lab.full_distribution(logits, s),
                               sampling_distribution(logits, SamplingSettings(0.7, 10, 0.9)))
    greedy = lab.full_distribution(logits, lab.SamplerSettings(temperature=0.0, repetition_penalty=100.0),
                                   history=[int(np.argmax(logits))])
    assert np.argmax(greedy) != np.argmax(logits)  # the penalty moved the top token down
    assert lab.entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert lab.entropy_bits(greedy) == 0.0


# --- prefix caching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_reusing_a_prefix_cache_gives_the_full_recompute_logits(family):
    model = random_model(family)
    prefix, a, b = IDS[:12], IDS[12:16], IDS[14:20]
    assert lab.shared_prefix_length(prefix + a, prefix + b) >= 12
    r = lab.compare_prefix_reuse(model, prefix, a, b, repeats=1)
    assert r.reuse_logits.shape == (len(b), model.config.vocab_size)
    assert r.max_abs_diff < 1e-4
    np.testing.assert_allclose(r.reuse_logits, r.full_logits, atol=1e-4)
    # the first request's cache is not changed by serving the second
    cache = model.new_cache()
    model.forward(prefix + a, cache=cache)
    lab.reuse_prefix(model, cache, 12, b)
    assert cache.length == 16


# --- batching -------------------------------------------------------------------------------------------


def test_batching_simulations_account_for_every_token():
    reqs = lab.request_mix(10, seed=1)
    assert reqs == lab.request_mix(10, seed=1)
    cost = lab.PassCost((1, 8), (1.0, 2.0))
    assert cost(4) == pytest.approx(1 + 3 / 7) and cost(16) == pytest.approx(3.142857, rel=1e-4)
    static = lab.simulate_static(reqs, 4, cost)
    cont = lab.simulate_continuous(reqs, 4, cost)
    for sim in (static, cont):
        produced = sum(sum(1 for s in st.slots if s >= 0) for st in sim.steps)
        assert produced == sum(r.output_len for r in reqs) == sim.n_output
        assert all(f > 0 for f in sim.finish) and all(f <= sim.total_seconds + 1e-9 for f in sim.finish)
        assert all(ft <= f + 1e-9 for ft, f in zip(sim.first_token, sim.finish))
    assert cont.utilisation > static.utilisation
    assert cont.total_seconds < static.total_seconds


def test_measured_pass_cost_on_a_tiny_model():
    cost = lab.measure_pass_cost(random_model("gpt2"), rows=(1, 4))
    assert cost.rows == (1, 4) and all(s > 0 for s in cost.seconds)


def test_roofline_numbers():
    roof = lab.Roofline(bandwidth=10e9, peak_flops=100e9)
    assert roof.ridge == 10 and roof.attainable(1) == 10e9 and roof.attainable(100) == 100e9
    assert lab.measure_peak_flops(n=64, repeats=1) > 0


# --- additions for the batching and PagedAttention chapters -----------------------------------------


def test_monotone_cost_removes_dips_and_keeps_rows():
    cost = lab.monotone_cost(lab.PassCost((1, 2, 4, 8), (0.25, 0.09, 0.10, 0.08)))
    assert cost.rows == (1, 2, 4, 8) and cost.seconds == (0.08, 0.08, 0.08, 0.08)
    cost = lab.monotone_cost(lab.PassCost((1, 2, 4), (0.1, 0.2, 0.3)))
    assert cost.seconds == (0.1, 0.2, 0.3)
    best = lab.fastest([lab.PassCost((1, 2), (0.3, 0.2)), lab.PassCost((1, 2), (0.1, 0.5))])
    assert best == lab.PassCost((1, 2), (0.1, 0.2))


def test_slot_timeline_and_percentile_follow_the_simulation():
    reqs = (lab.Request(4, 3), lab.Request(4, 1), lab.Request(4, 2))
    cost = lab.PassCost((1, 100), (1.0, 1.0))  # every step one second
    sim = lab.simulate_static(reqs, 2, cost)  # batch 1: prefill, 2 decode steps; batch 2: prefill, 1 step
    occupant, prefill = lab.slot_timeline(sim, 10, t_end=5.0)  # two columns per step
    assert occupant[0].tolist() == [0, 0, 0, 0, 0, 0, 2, 2, 2, 2]
    assert occupant[1].tolist() == [1, 1, -1, -1, -1, -1, -1, -1, -1, -1]  # padding after request 1 ends
    assert prefill[0].tolist() == [True, True, False, False, False, False, True, True, False, False]
    assert lab.slot_timeline(sim, 4, t_end=10.0)[0][0].tolist() == [0, 2, -2, -2]  # past the end
    assert sim.finish == (3.0, 1.0, 5.0)
    assert lab.finish_percentile(sim, 50) == 3.0 and lab.finish_percentile(sim, 100) == 5.0


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_interleaved_requests_paged_give_the_same_attention(family):
    model = random_model(family)
    run = lab.serve_interleaved(model, IDS, n_new=(6, 3, 4), arrive=(0, 1, 3))
    assert [len(s) for s in run.ids] == [len(IDS) + 6, len(IDS) + 3, len(IDS) + 4]
    assert all(s[: len(IDS)] == tuple(IDS) for s in run.ids)
    assert len({s[len(IDS)] for s in run.ids}) == 3  # three different first tokens
    # every position written exactly once, prefill first
    for name, seq in zip(run.names, run.ids):
        spans = [(a, b) for n, a, b in run.events if n == name]
        assert spans[0] == (0, len(IDS)) and spans[-1][1] == len(seq)
        assert all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:]))
    paged = lab.page_run(run, 4)
    assert len(paged.free) == 2
    assert paged.tables["A"] != list(range(len(paged.tables["A"])))  # B's prefill came between A's pages
    for name, seq, k in zip(run.names, run.ids, run.keys):
        np.testing.assert_array_equal(paged.gather(name, 1)[0], k[1])
        check = lab.check_paged(run, paged, name)
        assert check.vs_contiguous.shape == (model.config.n_layer,) and check.vs_contiguous.max() < 1e-6
        assert check.vs_model.max() < 1e-4
    alloc = lab.Allocation(tuple(len(s) for s in run.ids), max_len=len(IDS) + 32, block_size=4)
    assert alloc.paged_reserved == 4 * sum(len(t) for t in paged.tables.values())
