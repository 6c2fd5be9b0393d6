"""The KV cache: decoding token by token gives the logits of the full pass, and the cache grows as it should."""

import numpy as np
import pytest

from fwdtui.core.kv_cache import BLOCK
from fwdtui.errors import PromptError
from fwdtui.testing import random_model


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decode_steps_equal_full_pass(family):
    model = random_model(family)
    ids = [10, 20, 30, 40, 50, 60, 70]
    full = model.logits(ids)
    cache = model.new_cache()
    first, _ = model.forward(ids[:3], cache=cache)
    rows = [first]
    for t in ids[3:]:
        rows.append(model.forward([t], cache=cache)[0])
    np.testing.assert_allclose(np.concatenate(rows), full, atol=2e-5)
    assert cache.length == len(ids)


def test_cache_bytes_and_truncate():
    model = random_model("llama", n_layer=2, n_embd=32, n_head=4, n_kv_head=2)
    cache = model.new_cache()
    model.forward([1, 2, 3], cache=cache)
    cfg = model.config
    assert cache.nbytes == 2 * cfg.n_layer * cfg.n_kv_head * 3 * cfg.head_dim * 4
    assert cache.capacity == min(BLOCK, cfg.n_ctx)  # one block allocated, not one row per token
    cache.truncate(2)
    logits_after, _ = model.forward([9], cache=cache)
    np.testing.assert_allclose(logits_after[0], model.logits([1, 2, 9])[-1], atol=2e-5)


def test_last_only_is_last_row():
    model = random_model("gpt2")
    ids = [4, 5, 6, 7]
    last, _ = model.forward(ids, last_only=True)
    np.testing.assert_allclose(last[0], model.logits(ids)[-1], atol=1e-6)


def test_decode_trace_covers_the_cache():
    model = random_model("gpt2")
    cache = model.new_cache()
    model.forward([1, 2, 3, 4], cache=cache)
    _, trace = model.forward([5], cache=cache, trace=True)
    assert trace["blocks.0.attn.pattern"].shape == (model.config.n_head, 1, 5)
    assert trace["blocks.0.attn.k"].shape[1] == 5
    assert trace.positions.tolist() == [4]


def test_context_overflow_is_a_prompt_error():
    model = random_model("gpt2", n_ctx=8)
    with pytest.raises(PromptError, match="context of 8"):
        model.logits(list(range(9)))
    cache = model.new_cache()
    model.forward(list(range(8)), cache=cache)
    with pytest.raises(PromptError):
        model.forward([1], cache=cache)


def test_bad_ids_are_prompt_errors():
    model = random_model("gpt2")
    with pytest.raises(PromptError, match="outside"):
        model.logits([1, 9999])
    with pytest.raises(PromptError, match="no tokens"):
        model.logits([])


def test_generate_stops_at_context_end():
    model = random_model("llama", n_ctx=10)
    out = list(model.generate([1, 2, 3, 4, 5, 6], max_new_tokens=50, temperature=0, stop_at_eos=False))
    assert len(out) == 4  # positions 6..9; the 4th token fills the context and generation ends
