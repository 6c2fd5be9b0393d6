"""The tiny seeded Llama (and Qwen2, Mistral) checkpoints are all on disk and their config.json is
read right; test_reference_models.py checks their outputs against transformers."""

from __future__ import annotations

import json

import pytest
from reference_helpers import MODELS, config_json, fixture_names

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

NAMES = fixture_names("llama")


def test_expected_fixtures_are_on_disk() -> None:
    # Parametrizing over what is found would silently test nothing if a folder went missing.
    assert set(EXPECTED) <= set(NAMES), f"missing: {set(EXPECTED) - set(NAMES)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_read_from_config_json(name: str) -> None:
    from fwdtui.core.config import ModelConfig

    cfg = ModelConfig.from_hf(config_json(name))
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
