"""The tiny seeded GPT-2 checkpoints are all on disk and their config.json is read right (old and new
spellings); test_reference_models.py checks their outputs against transformers."""

from __future__ import annotations

import pytest
from reference_helpers import config_json, fixture_names

EXPECTED = {"gpt2-tiny", "gpt2-odd", "gpt2-noprefix"}
NAMES = fixture_names("gpt2")


def test_expected_fixtures_are_on_disk() -> None:
    # Parametrizing over what is found would silently test nothing if a folder went missing.
    assert EXPECTED <= set(NAMES), f"missing: {EXPECTED - set(NAMES)}"


@pytest.mark.parametrize("name", NAMES)
def test_config_read_from_config_json(name: str) -> None:
    # gpt2-noprefix is in the hub's old spelling (n_ctx, no n_inner), the others as 5.x writes.
    from fwdtui.core.config import ModelConfig

    raw = config_json(name)
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
