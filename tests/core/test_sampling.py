"""Sampling: the distributions the sampler draws from, and that seeds and limits behave."""

import numpy as np
import pytest

from fwdtui.core.ops import softmax
from fwdtui.core.sampling import SamplingSettings, sample, sampling_distribution
from fwdtui.testing import random_model

LOGITS = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))


def dist(**kw):
    return sampling_distribution(LOGITS, SamplingSettings(**kw))


def test_temperature_one_is_softmax():
    np.testing.assert_allclose(dist(), [0.5, 0.2, 0.15, 0.1, 0.05], atol=1e-12)


def test_temperature_zero_is_greedy():
    np.testing.assert_array_equal(dist(temperature=0), [1, 0, 0, 0, 0])
    assert sample(LOGITS, SamplingSettings(temperature=0))[0] == 0


def test_temperature_limits():
    cold = dist(temperature=0.05)
    assert cold[0] > 0.999999
    hot = dist(temperature=1000)
    np.testing.assert_allclose(hot, 0.2, atol=1e-3)  # very hot: nearly uniform
    tiny = dist(temperature=1e-300)  # overflow territory: still the greedy limit, no NaN
    np.testing.assert_array_equal(tiny, [1, 0, 0, 0, 0])


def test_temperature_two_squares_root():
    p = dist(temperature=2.0)
    expected = np.sqrt([0.5, 0.2, 0.15, 0.1, 0.05])
    np.testing.assert_allclose(p, expected / expected.sum(), atol=1e-12)


def test_top_k_mask_renormalises():
    np.testing.assert_allclose(dist(top_k=2), [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(dist(top_k=1), [1, 0, 0, 0, 0])
    np.testing.assert_allclose(dist(top_k=99), dist())


def test_top_p_keeps_smallest_set_reaching_p():
    # 0.5 < 0.6, so the second token is needed; 0.5 + 0.2 = 0.7 >= 0.6, so the third is not.
    np.testing.assert_allclose(dist(top_p=0.6), [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(dist(top_p=0.45), [1, 0, 0, 0, 0])  # the top token alone already reaches 0.45
    np.testing.assert_allclose(dist(top_p=0.01), [1, 0, 0, 0, 0])  # never empty
    np.testing.assert_allclose(dist(top_p=0.86)[:4].sum(), 1.0)
    assert dist(top_p=0.86)[4] == 0


def test_top_k_then_top_p():
    p = dist(top_k=3, top_p=0.9)
    # top-3 renormalised: 0.5/0.85, 0.2/0.85, 0.15/0.85 -> mass before the third is 0.82 < 0.9: kept
    np.testing.assert_allclose(p, [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0], atol=1e-12)


def test_seeded_samples_follow_the_distribution_and_repeat():
    rng = np.random.default_rng(123)
    counts = np.zeros(5)
    for _ in range(20000):
        counts[sample(LOGITS, SamplingSettings(), rng)[0]] += 1
    np.testing.assert_allclose(counts / counts.sum(), [0.5, 0.2, 0.15, 0.1, 0.05], atol=0.015)
    a = [sample(LOGITS, SamplingSettings(), np.random.default_rng(7))[0] for _ in range(5)]
    b = [sample(LOGITS, SamplingSettings(), np.random.default_rng(7))[0] for _ in range(5)]
    assert a == b


def test_masked_tokens_are_never_sampled():
    rng = np.random.default_rng(0)
    drawn = {sample(LOGITS, SamplingSettings(top_k=2, temperature=3.0), rng)[0] for _ in range(2000)}
    assert drawn == {0, 1}


def test_bad_settings_raise():
    for kw in ({"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}, {"temperature": float("nan")}):
        with pytest.raises(ValueError):
            SamplingSettings(**kw)


def test_nan_and_inf_logits_still_give_a_valid_id():
    logits = np.array([np.nan, -np.inf, 1.0, np.inf])
    assert sample(logits, SamplingSettings(), np.random.default_rng(0))[0] == 3
    allneg = np.full(4, -np.inf)
    token, probs = sample(allneg, SamplingSettings(), np.random.default_rng(0))
    assert 0 <= token < 4 and np.isclose(probs.sum(), 1)


def test_generate_is_seeded():
    model = random_model("llama")
    a = list(model.generate([1, 2, 3], 8, temperature=1.0, seed=5))
    b = list(model.generate([1, 2, 3], 8, temperature=1.0, seed=5))
    c = list(model.generate([1, 2, 3], 8, temperature=1.0, seed=6))
    assert a == b and a != c


def test_greedy_generate_equals_argmax_of_full_pass():
    model = random_model("gpt2")
    ids = [10, 11, 12]
    out = list(model.generate(ids, 5, temperature=0, stop_at_eos=False))
    seq = list(ids)
    for token in out:
        assert token == int(np.argmax(model.logits(seq)[-1]))
        seq.append(token)


def test_softmax_handles_minus_inf():
    np.testing.assert_allclose(softmax(np.array([0.0, -np.inf])), [1, 0])
