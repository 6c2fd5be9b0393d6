"""Tests for the modern-techniques lab: experts sliced from a real MLP, RoPE scaling, the context loss,
the strict tool-call parser and the safe calculator, greedy log-probs, patches."""

from __future__ import annotations

import numpy as np
import pytest

from fwdtui.core import modern_lab as ml
from fwdtui.core import ops
from fwdtui.testing import random_model

TEXT = "the cat sat on the mat and the dog sat on the log"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_dense_mlp_equals_the_traced_mlp_and_all_experts_equal_dense(family) -> None:
    model = random_model(family, seed=0)
    ids = list(TEXT.encode())
    trace = model.trace(ids)
    x = trace["blocks.1.ln2.out"]
    mlp = ml.dense_mlp(model, 1)
    np.testing.assert_allclose(mlp(x), trace["blocks.1.mlp.out"], atol=1e-5)
    res = ml.route_tokens(model, x, 1, n_expert=8, top_k=8)
    assert res.errors[-1] < 1e-5  # k = E: every unit of the dense MLP is back
    np.testing.assert_allclose(res.moe, res.dense, atol=1e-5)
    assert np.all(np.diff(res.errors) <= 1e-9)  # more experts never move further from dense here
    assert res.errors[0] > 0.05


def test_routing_picks_the_top_logits_and_counts_load() -> None:
    model = random_model("llama", seed=1)
    x = model.trace(list(TEXT.encode()))["blocks.0.ln2.out"]
    res = ml.route_tokens(model, x, 0, n_expert=4, top_k=2)
    assert res.chosen.shape == (len(TEXT), 2)
    for row, chosen in zip(res.router_logits, res.chosen):
        assert set(chosen) == set(np.argsort(-row)[:2])
    assert res.load.sum() == 2 * len(TEXT)
    oracle = ml.route_tokens(model, x, 0, n_expert=4, top_k=1, router="oracle")
    assert list(oracle.chosen[:, 0]) == list(np.argmax(oracle.expert_norms, axis=1))


def test_balance_loss_is_one_when_even_and_larger_when_skewed() -> None:
    even_probs = np.full((4, 4), 0.25)
    assert ml.balance_loss(even_probs, np.array([[0], [1], [2], [3]])) == pytest.approx(1.0)
    skewed = np.tile([0.7, 0.1, 0.1, 0.1], (4, 1))
    assert ml.balance_loss(skewed, np.zeros((4, 1), dtype=int)) == pytest.approx(4 * 0.7)


def test_expert_slices_cover_every_unit_once_and_reject_bad_counts() -> None:
    slices = ml.expert_slices(96, 8)
    assert sorted(np.concatenate(slices).tolist()) == list(range(96))
    with pytest.raises(ml.FwdtuiError):
        ml.expert_slices(8, 9)


def test_rope_scaling_rules_on_real_style_frequencies() -> None:
    inv = ops.rope_frequencies(64, 100000.0)
    assert ml.rope_base(inv) == pytest.approx(100000.0, rel=1e-9)
    np.testing.assert_allclose(ml.position_interpolation(inv, 4), inv / 4)
    ntk = ml.ntk_aware(inv, 4)
    assert ntk[0] == pytest.approx(inv[0]) and ntk[-1] == pytest.approx(inv[-1] / 4)
    np.testing.assert_allclose(ntk, ops.rope_frequencies(64, 100000.0 * 4 ** (64 / 62)), rtol=1e-9)
    y = ml.yarn(inv, 4, 8192)
    assert y[0] == inv[0] and y[-1] == pytest.approx(inv[-1] / 4)
    schemes = {s.name: s for s in ml.rope_schemes(inv, 8192, 4)}
    assert schemes["none (as trained)"].unseen > 0
    assert schemes["position interp."].unseen == 0 and schemes["YaRN"].unseen == 0
    assert ml.yarn_temperature(1.0) == 1.0 and ml.yarn_temperature(4) > 1


def test_context_loss_matches_one_full_pass() -> None:
    model = random_model("gpt2", seed=0)
    ids = list(TEXT.encode()) * 2
    res = ml.context_loss(model, ids, chunk=16)
    logp = ops.log_softmax(model.logits(ids).astype(np.float64))
    expected = -logp[np.arange(len(ids) - 1), ids[1:]]
    np.testing.assert_allclose(res.nll, expected, atol=1e-4)
    assert res.complete and res.buckets[0][:2] == (1, 1) and res.buckets[-1][1] == len(ids) - 1


@pytest.mark.parametrize("text,tool,expression", [
    ('{"tool": "calculator", "expression": "37 * 48"}', "calculator", "37 * 48"),
    ('Sure! {"tool": "clock"} is the call.', "clock", None),
])
def test_parse_tool_call_accepts_good_calls(text, tool, expression) -> None:
    parsed = ml.parse_tool_call(text)
    assert parsed.call is not None and parsed.problem == ""
    assert (parsed.call.tool, parsed.call.expression) == (tool, expression)
    assert text[parsed.call.span[0]] == "{" and text[parsed.call.span[1] - 1] == "}"


@pytest.mark.parametrize("text,problem", [
    ("37 * 48 = 1928.", "no JSON object"),
    ('{"tool": "math", "expression": "37 * 48"}', "unknown tool 'math'"),
    ('{"tool": "calculator", "expression": "1+', "does not parse"),
    ('{"tool": "calculator"}', "no \"expression\""),
    ('{"tool": "calculator", "expression": "1", "x": 2}', "unexpected field"),
    ('{"tool": "clock", "expression": "now"}', "takes no expression"),
])
def test_parse_tool_call_reports_bad_calls(text, problem) -> None:
    parsed = ml.parse_tool_call(text)
    assert parsed.call is None and problem in parsed.problem


def test_safe_arithmetic_computes_and_refuses() -> None:
    assert ml.safe_arithmetic("37 * 48") == 1776
    assert ml.safe_arithmetic("2 ** 10 - 24") == 1000
    assert ml.safe_arithmetic("-(3 + 4) / 2") == -3.5
    assert ml.safe_arithmetic("2^3") == 8
    for bad in ("__import__('os')", "abs(-1)", "x + 1", "9 ** 9 ** 9", "1 / 0", "True + 1", "'a' * 3"):
        with pytest.raises(ml.ToolError):
            ml.safe_arithmetic(bad)


def test_run_tool_formats_results() -> None:
    calc = ml.parse_tool_call('{"tool": "calculator", "expression": "10 / 4"}').call
    assert ml.run_tool(calc, now="12:00") == "2.5"
    clock = ml.parse_tool_call('{"tool": "clock"}').call
    assert ml.run_tool(clock, now="12:00") == "12:00"


def test_greedy_with_logprobs_matches_generate() -> None:
    model = random_model("llama", seed=0)
    ids = list(b"hello")
    gen = ml.greedy_with_logprobs(model, ids, 6)
    assert list(gen.tokens) == list(model.generate(ids, 6, temperature=0.0))[: len(gen.tokens)]
    first = ops.log_softmax(model.logits(ids)[-1].astype(np.float64))
    assert gen.logprobs[0] == pytest.approx(first.max(), abs=1e-5)
    assert all(lp <= 0 for lp in gen.logprobs)


def test_patches_and_token_counts() -> None:
    img = ml.synthetic_image(64, seed=3)
    assert img.shape == (64, 64, 3) and 0 <= img.min() and img.max() <= 1
    patches = ml.patchify(img, 16)
    assert patches.shape == (16, 768)
    np.testing.assert_array_equal(patches[1].reshape(16, 16, 3), img[:16, 16:32])
    assert {e.name: e.n_tokens for e in ml.VISION_ENCODERS}["CLIP ViT-L/14 @336 (LLaVA-1.5)"] == 577
    assert ml.audio_tokens(30) == 1500
    frames = ml.audio_frames(np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000), 16000)
    assert frames.shape == (98, 201) and int(np.argmax(frames[10])) == 11  # 440 Hz at 40 Hz per bin


@pytest.mark.parametrize("text,closed", [
    ('{"tool": "clock"}', True), ('{"tool": "calc', False), ('x {"a": "}"', False),
    ('{"a": "\\"}"}', True), ("no json", False), ('{"a": {"b": 1}', False),
])
def test_json_closed(text, closed) -> None:
    assert ml.json_closed(text) is closed


def test_greedy_stops_when_told() -> None:
    model = random_model("gpt2", seed=0)
    gen = ml.greedy_with_logprobs(model, list(b"hi"), 10, on_token=lambda toks: len(toks) >= 3)
    assert len(gen.tokens) == 3


@pytest.mark.parametrize("pieces,value,how,span", [
    ([b"15 + 27", b" = 4", b"2", b". So 15"], "42", "=", (1, 3)),  # "= N" beats the later bare 15
    ([b"The answer is ", b"1", b",500", b"."], "1,500", "answer is", (1, 3)),
    ([b"x = 3", b" and the answer is: 7"], "7", "answer is", (1, 2)),
    ([b"5 apples", b" - 2 apples = "], "2", "last number", (1, 2)),  # no sign: "- 2" is not -2
    ([b"I don't know."], None, "none", (0, 0)),
    ([b"It is 0.", b"33 days."], "0.33", "last number", (0, 2)),
])
def test_final_answer_finds_the_number_and_its_tokens(pieces, value, how, span) -> None:
    found = ml.final_answer(pieces)
    assert (found.value, found.how, found.span) == (value, how, span)


def test_answer_matches_numerically() -> None:
    assert ml.answer_matches("1,500", "1500") and ml.answer_matches("8.0", "8")
    assert not ml.answer_matches("32", "42") and not ml.answer_matches(None, "42")


def test_embed_patches_projects_each_patch_linearly() -> None:
    img = ml.synthetic_image(64, seed=1)
    out = ml.embed_patches(img, 16, n_embd=24, seed=5)
    assert out.grid == (4, 4) and out.patches.shape == (16, 768) and out.tokens.shape == (16, 24)
    w = ml.random_projection(768, 24, seed=5)
    np.testing.assert_allclose(out.tokens[7], out.patches[7] @ w)
    assert ml.embed_patches(img, 8, 24).tokens.shape == (64, 24)


def test_synthetic_sound_has_its_tone_in_every_frame() -> None:
    frames = ml.audio_frames(ml.synthetic_sound(1.0), 16000)  # [98, 201], 40 Hz per bin
    assert frames.shape == (98, 201)
    peaks = frames[:, 5:].argsort(axis=1)[:, -2:] + 5  # the two loudest bins of each frame
    assert (np.abs(peaks - 11) <= 1).any(axis=1).mean() > 0.9  # 440 Hz throughout
    assert peaks.max(axis=1)[-1] > peaks.max(axis=1)[0]  # the chirp has risen by the end
