"""Our numpy GPT-2 equals Hugging Face transformers on tiny seeded checkpoints (scripts/make_reference_fixtures.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

import fwdtui

MODELS = Path(__file__).parent / "fixtures" / "models"
EXPECTED = {"gpt2-tiny", "gpt2-odd", "gpt2-noprefix"}
LOGITS_TOL = 2e-4   # float32 rounding between two engines; a wrong op is off by >1e-2
CACHE_TOL = 1e-4    # the same engine with and without the KV cache


def fixture_names(family: str) -> list[str]:
    """Folders on disk whose reference.json says they are this family (gpt2 or not)."""
    names = []
    for ref in sorted(MODELS.glob("*/reference.json")):
        is_gpt2 = json.loads(ref.read_text())["model_type"] == "gpt2"
        if is_gpt2 == (family == "gpt2"):
            names.append(ref.parent.name)
    return names


NAMES = fixture_names("gpt2")


@functools.cache
def load(name: str):
    """One load per fixture for the whole module: loading is what the other tests build on."""
    return fwdtui.load_model(MODELS / name)


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(MODELS / name / "reference.npz") as ref:
        return {k: ref[k] for k in ref.files}


def test_expected_fixtures_are_on_disk() -> None:
    # Parametrizing over what is found would silently test nothing if a folder went missing.
    assert EXPECTED <= set(NAMES), f"missing: {EXPECTED - set(NAMES)}"


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(name: str) -> None:
    ref = reference(name)
    ids = ref["input_ids"].tolist()
    logits = np.asarray(load(name).logits(ids))
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
    # Run past the prompt into the greedy tokens so cached positions go beyond the prefill.
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


@pytest.mark.parametrize("name", NAMES)
def test_config_read_from_config_json(name: str) -> None:
    # gpt2-noprefix is in the hub's old spelling (n_ctx, no n_inner), the others as 5.x writes.
    from fwdtui.core.config import ModelConfig

    raw = json.loads((MODELS / name / "config.json").read_text())
    cfg = ModelConfig.from_hf(raw)
    assert cfg.family == "gpt2"
    assert cfg.n_layer == raw["n_layer"]
    assert cfg.n_embd == raw["n_embd"]
    assert cfg.n_head == cfg.n_kv_head == raw["n_head"]
    assert cfg.head_dim == raw["n_embd"] // raw["n_head"]
    # n_inner is null or absent in most real configs and then means 4 * n_embd.
    assert cfg.n_inner == (raw.get("n_inner") or 4 * raw["n_embd"])
    assert cfg.n_ctx == raw["n_positions"]
    assert cfg.vocab_size == raw["vocab_size"]
    assert cfg.norm_eps == pytest.approx(raw["layer_norm_epsilon"])
    assert cfg.tie_word_embeddings is True
