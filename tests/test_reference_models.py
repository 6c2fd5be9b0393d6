"""Our numpy engine equals Hugging Face transformers on every tiny seeded checkpoint (GPT-2, Llama,
Qwen2, Mistral): the logits, the greedy tokens, and the same logits again through the KV cache."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from reference_helpers import MODELS, fixture_names

import fwdtui

NAMES = fixture_names("gpt2") + fixture_names("llama")
LOGITS_TOL = 2e-4   # float32 rounding between two engines; a wrong op is off by >1e-2
CACHE_TOL = 1e-4    # the same engine with and without the KV cache


@functools.cache
def load(name: str):
    """One load per fixture for the whole module: loading is what the other tests build on."""
    return fwdtui.load_model(MODELS / name)


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(MODELS / name / "reference.npz") as ref:
        return {k: ref[k] for k in ref.files}


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(name: str) -> None:
    ref = reference(name)
    logits = np.asarray(load(name).logits(ref["input_ids"].tolist()))
    assert logits.shape == ref["logits"].shape
    assert np.abs(logits - ref["logits"]).max() < LOGITS_TOL


@pytest.mark.parametrize("name", NAMES)
def test_greedy_ids_match_transformers(name: str) -> None:
    ref = reference(name)
    new = list(load(name).generate(ref["input_ids"].tolist(), max_new_tokens=12, temperature=0))
    assert [int(t) for t in new] == ref["greedy_ids"].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_kv_cache_one_token_at_a_time_equals_full_prompt(name: str) -> None:
    model = load(name)
    ref = reference(name)
    # Run past the prompt into the greedy tokens so cached (and rotary) positions go beyond the prefill.
    ids = ref["input_ids"].tolist() + ref["greedy_ids"].tolist()
    k = len(ref["input_ids"]) // 2
    cache = model.new_cache()
    rows = [np.asarray(model.forward(ids[:k], cache=cache)[0])]          # [k, n_vocab]
    for j in range(k, len(ids)):
        rows.append(np.asarray(model.forward(ids[j:j + 1], cache=cache)[0]))  # [1, n_vocab]
    stepped = np.concatenate(rows)                                      # [n_seq, n_vocab]
    full = np.asarray(model.logits(ids))
    assert stepped.shape == full.shape
    assert np.abs(stepped - full).max() < CACHE_TOL
    n_prompt = len(ref["input_ids"])
    assert np.abs(stepped[:n_prompt] - ref["logits"]).max() < LOGITS_TOL
