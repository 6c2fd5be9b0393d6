"""Hypothesis against the sampler: any logits (nan, inf, huge, tiny) and any valid settings give a valid id."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fwdtui.core.sampling import SamplingSettings, sample, sampling_distribution
from fwdtui.testing import random_model

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)

any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
logit_rows = st.one_of(
    hnp.arrays(np.float64, st.integers(1, 40), elements=any_float),
    hnp.arrays(np.float32, st.integers(1, 40), elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
    hnp.arrays(np.float16, st.integers(1, 10), elements=st.floats(allow_nan=True, allow_infinity=True, width=16)),
    # the realistic shape: finite, mostly small, a few ties
    hnp.arrays(np.float32, st.integers(1, 300), elements=st.sampled_from([-3.0, 0.0, 0.5, 2.0, 9.5])),
)
valid_settings = st.builds(
    SamplingSettings,
    temperature=st.one_of(st.just(0.0), st.floats(0.0, 100.0), st.sampled_from([1e-300, 5e-324, 1e-8, 1e300])),
    top_k=st.one_of(st.just(0), st.integers(0, 50), st.just(10**9)),
    top_p=st.one_of(st.just(1.0), st.floats(1e-9, 1.0, exclude_min=False), st.sampled_from([5e-324, 1e-300])),
)


@FUZZ
@given(logits=logit_rows, config=valid_settings, seed=st.integers(0, 2**32 - 1))
def test_any_logits_give_a_valid_id(logits: np.ndarray, config: SamplingSettings, seed: int) -> None:
    with np.errstate(all="ignore"):
        token, probs = sample(logits, config, np.random.default_rng(seed))
        again, _ = sample(logits, config, np.random.default_rng(seed))
    assert isinstance(token, int) and 0 <= token < logits.size
    assert token == again  # a seed fixes the draw
    assert probs.shape == logits.shape


# Temperatures below 1e-3 and logits near the float64 limit are left to the regression test below:
# the sampler's distribution breaks there (the logits / temperature all overflow to -inf).
sane_rows = hnp.arrays(np.float64, st.integers(1, 40), elements=st.one_of(
    st.floats(-1e30, 1e30), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 0.0, 1.0])))
sane_settings = st.builds(
    SamplingSettings,
    temperature=st.one_of(st.just(0.0), st.floats(1e-3, 100.0)),
    top_k=st.integers(0, 50),
    top_p=st.floats(1e-6, 1.0),
)


@FUZZ
@given(logits=st.one_of(sane_rows, logit_rows.filter(lambda a: a.dtype != np.float64)), config=sane_settings,
       seed=st.integers(0, 2**32 - 1))
def test_the_distribution_is_a_distribution(logits: np.ndarray, config: SamplingSettings, seed: int) -> None:
    """Non-negative, sums to 1, and the drawn token is one the cuts kept."""
    with np.errstate(all="ignore"):
        probs = sampling_distribution(logits, config)
        token, _ = sample(logits, config, np.random.default_rng(seed))
    assert np.isfinite(probs).all() and (probs >= 0).all()
    assert abs(probs.sum() - 1.0) < 1e-6
    assert probs[token] > 0
    clean = np.where(np.isnan(logits.astype(np.float64)), -np.inf, logits.astype(np.float64))
    if config.temperature == 0 and not np.isneginf(clean).all():
        assert token == int(np.argmax(clean))  # greedy is the argmax, nan ignored
    if config.top_k and config.top_k < clean.size and config.temperature > 0:
        kth = np.sort(clean)[-config.top_k]  # ties with the k-th value are kept, as in Hugging Face
        assert (clean[probs > 0] >= kth).all()


@FUZZ
@given(rows=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 30)),
                       elements=st.floats(-50, 50, width=32)),
       config=valid_settings)
def test_a_matrix_samples_its_last_row(rows: np.ndarray, config: SamplingSettings) -> None:
    token, probs = sample(rows, config, np.random.default_rng(0))
    assert 0 <= token < rows.shape[1] and probs.shape == (rows.shape[1],)


@pytest.mark.parametrize("logits, temperature", [([-1.0, -2.0], 1e-310), ([-1e308, -9e307], 1e-5),
                                                 ([-5.0, -1.0, -7.0], 1e-320), ([-1e308], 1e-3)])
def test_tiny_temperature_is_greedy_even_for_negative_logits(logits: list[float], temperature: float) -> None:
    with np.errstate(all="ignore"):
        token, probs = sample(np.array(logits), SamplingSettings(temperature=temperature), np.random.default_rng(0))
    assert token == int(np.argmax(logits))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-9


@pytest.mark.parametrize("bad", [dict(temperature=-1.0), dict(temperature=float("nan")), dict(temperature=float("inf")),
                                 dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(top_p=float("nan"))])
def test_invalid_settings_are_refused_up_front(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingSettings(**bad)


@pytest.fixture(scope="module")
def model():
    return random_model("llama", n_layer=1, n_embd=16, n_head=2, n_ctx=32)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(config=valid_settings, seed=st.integers(0, 1000), n=st.integers(1, 20))
def test_generation_with_any_settings(model, config: SamplingSettings, seed: int, n: int) -> None:
    ids = list(model.generate([1, 2, 3], n, temperature=config.temperature, top_k=config.top_k,
                              top_p=config.top_p, seed=seed))
    assert 1 <= len(ids) <= n and all(0 <= t < model.config.vocab_size for t in ids)

