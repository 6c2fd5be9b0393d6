"""Our numpy Llama (and Qwen2, Mistral) equals Hugging Face transformers on tiny seeded checkpoints."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

import fwdtui

MODELS = Path(__file__).parent / "fixtures" / "models"
LOGITS_TOL = 2e-4   # float32 rounding between two engines; a wrong op is off by >1e-2
CACHE_TOL = 1e-4    # the same engine with and without the KV cache

# What each checkpoint must be read as. Written out by hand (not derived from config.json) so a
# config reader that guesses a default wrongly fails here. See reference.json in each folder.
EXPECTED = {
    "llama-gqa": dict(model_type="llama", n_layer=2, n_embd=32, n_head=4, n_kv_head=2, head_dim=8,
                      n_inner=88, vocab_size=320, norm_eps=1e-5, rope_theta=1e4,
                      tie_word_embeddings=False, attn_bias=False),
    "llama-mha": dict(model_type="llama", n_layer=3, n_embd=48, n_head=4, n_kv_head=4, head_dim=12,
                      n_inner=120, vocab_size=256, norm_eps=1e-6, rope_theta=5e5,
                      tie_word_embeddings=True, attn_bias=False),
    "llama-headdim": dict(model_type="llama", n_layer=2, n_embd=48, n_head=4, n_kv_head=2,
                          head_dim=16, n_inner=96, vocab_size=256, norm_eps=1e-5, rope_theta=1e4,
                          tie_word_embeddings=False, attn_bias=False),
    "qwen2-bias": dict(model_type="qwen2", n_layer=2, n_embd=48, n_head=4, n_kv_head=2, head_dim=12,
                       n_inner=136, vocab_size=384, norm_eps=1e-6, rope_theta=1e6,
                       tie_word_embeddings=True, attn_bias=True),
    "mistral-tiny": dict(model_type="mistral", n_layer=2, n_embd=32, n_head=4, n_kv_head=1,
                         head_dim=8, n_inner=80, vocab_size=512, norm_eps=1e-5, rope_theta=1e4,
                         tie_word_embeddings=False, attn_bias=False),
}


def fixture_names() -> list[str]:
    """Folders on disk whose reference.json says they are not GPT-2 (the Llama family)."""
    return [ref.parent.name for ref in sorted(MODELS.glob("*/reference.json"))
            if json.loads(ref.read_text())["model_type"] != "gpt2"]


NAMES = fixture_names()


@functools.cache
def load(name: str):
    """One load per fixture for the whole module: loading is what the other tests build on."""
    return fwdtui.load_model(MODELS / name)


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(MODELS / name / "reference.npz") as ref:
        return {k: ref[k] for k in ref.files}


def test_expected_fixtures_are_on_disk() -> None:
    # Parametrizing over what is found would silently test nothing if a folder went missing.
    assert set(EXPECTED) <= set(NAMES), f"missing: {set(EXPECTED) - set(NAMES)}"


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
    # Run past the prompt into the greedy tokens so rotary positions go beyond the prefill.
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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_read_from_config_json(name: str) -> None:
    from fwdtui.core.config import ModelConfig

    cfg = ModelConfig.from_hf(json.loads((MODELS / name / "config.json").read_text()))
    assert cfg.family == "llama"
    for field, want in EXPECTED[name].items():
        got = getattr(cfg, field)
        assert got == (pytest.approx(want) if isinstance(want, float) else want), field


def test_rope_theta_read_from_old_and_new_config_spellings() -> None:
    # transformers 4.x wrote rope_theta at the top level (and often no head_dim); 5.x writes it
    # inside rope_parameters. Real checkpoints on the hub come in both.
    from fwdtui.core.config import ModelConfig

    folder = MODELS / "llama-mha"
    old = json.loads((folder / "config.oldstyle.json").read_text())
    new = json.loads((folder / "config.newstyle.json").read_text())
    assert "rope_theta" in old and "rope_parameters" not in old and "head_dim" not in old
    assert "rope_parameters" in new and "rope_theta" not in new
    cfg_old, cfg_new = ModelConfig.from_hf(old), ModelConfig.from_hf(new)
    assert cfg_old.rope_theta == cfg_new.rope_theta == 500000.0
    assert cfg_old.head_dim == cfg_new.head_dim == 12
    assert cfg_old == cfg_new
