"""Published architectures: config values, parameter counts vs the model cards, KV cache, FLOPs, the live flow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fwdtui.core.architectures import (
    ARCHITECTURES,
    RECIPE,
    architecture,
    architecture_of,
    attention_flops,
    count_arch_params,
    differences_from_gpt2,
    differs,
    flops_per_token,
    kv_bytes_per_token,
    kv_cache_bytes,
    matmul_params,
    params_breakdown,
    published_match,
    residual_flow,
)
from fwdtui.core.config import ModelConfig, count_params
from fwdtui.errors import ConfigError
from fwdtui.testing import random_model

# The totals the model cards (and their safetensors files) state.
CARD_TOTALS = {
    "gpt2": 124e6,
    "llama3-8b": 8.03e9,
    "mistral-7b": 7.24e9,
    "qwen2.5-0.5b": 494e6,
    "gemma2-2b": 2.61e9,
    "phi3-mini": 3.82e9,
}

# Exact tensor totals of the released checkpoints (sum of every tensor's size, tied tables once).
EXACT = {
    "gpt2": 124_439_808,
    "gpt2-xl": 1_557_611_200,
    "llama3-8b": 8_030_261_248,
    "llama3.2-1b": 1_235_814_400,
    "mistral-7b": 7_241_732_096,
    "gemma2-2b": 2_614_341_888,
    "phi3-mini": 3_821_079_552,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-7b": 7_615_616_512,
    "smollm2-135m": 134_515_008,
}


@pytest.mark.parametrize("key,card", sorted(CARD_TOTALS.items()))
def test_computed_count_is_within_one_percent_of_the_card(key: str, card: float) -> None:
    assert abs(count_arch_params(architecture(key)) / card - 1) < 0.01


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: a.key)
def test_every_entry_matches_its_own_published_total(arch) -> None:
    assert abs(arch.n_params / arch.published_params - 1) < 0.01


@pytest.mark.parametrize("key,total", sorted(EXACT.items()))
def test_counts_equal_the_released_checkpoints_exactly(key: str, total: int) -> None:
    assert count_arch_params(architecture(key)) == total


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: a.key)
def test_breakdown_sums_to_the_total_and_extends_count_params(arch) -> None:
    parts = params_breakdown(arch)
    assert sum(parts.values()) == count_arch_params(arch)
    extra = 2 * arch.config.n_layer * arch.config.n_embd if arch.post_norms else 0
    assert count_arch_params(arch) == count_params(arch.config) + extra
    assert (parts["positions"] > 0) == (arch.position == "learned")
    assert (parts["unembedding"] == 0) == arch.config.tie_word_embeddings


def test_published_config_values() -> None:
    llama = architecture("llama3-8b").config
    assert (llama.n_head, llama.n_kv_head, llama.head_dim, llama.vocab_size) == (32, 8, 128, 128256)
    assert llama.rope_theta == 500000.0 and not llama.tie_word_embeddings and llama.n_inner == 14336
    small = architecture("llama3.2-1b")
    assert small.config.tie_word_embeddings and small.config.rope_scaling["factor"] == 32.0
    assert small.rope_scaling_kind == "llama3" and small.config.n_ctx == 131072
    mistral = architecture("mistral-7b")
    assert mistral.layer_windows == (4096,) * 32 and mistral.config.n_kv_head == 8
    gemma = architecture("gemma2-2b")
    assert gemma.config.head_dim == 256 and gemma.config.vocab_size == 256000 and gemma.config.tie_word_embeddings
    assert gemma.attn_softcap == 50.0 and gemma.final_softcap == 30.0 and gemma.mlp == "GeGLU"
    assert gemma.post_norms and gemma.embed_scale and gemma.query_pre_attn_scalar == 256
    assert gemma.layer_windows[:4] == (4096, None, 4096, None)  # layer 0 local, layer 1 global
    phi = architecture("phi3-mini")
    assert phi.fused_qkv and phi.fused_gate_up and phi.rope_scaling_kind == "longrope (su)"
    assert phi.config.n_kv_head == phi.config.n_head == 32 and phi.config.head_dim == 96
    assert phi.config.sliding_window is None  # a 262144 window over a 131072 context masks nothing
    qwen = architecture("qwen2.5-0.5b").config
    assert qwen.attn_bias and not qwen.attn_out_bias and qwen.sliding_window is None  # use_sliding_window false
    assert (qwen.n_head, qwen.n_kv_head, qwen.rope_theta) == (14, 2, 1e6)
    gpt2 = architecture("gpt2")
    assert gpt2.norm == "LayerNorm" and gpt2.position == "learned" and gpt2.config.n_ctx == 1024


def test_core_reader_is_used_where_it_knows_the_model_type() -> None:
    for key in ("gpt2", "llama3-8b", "mistral-7b", "qwen2.5-7b"):
        arch = architecture(key)
        assert arch.config == ModelConfig.from_hf(arch.raw)
    with pytest.raises(ConfigError, match="Known:"):
        architecture("gpt5")


def test_kv_cache_per_token_and_with_windows() -> None:
    assert kv_bytes_per_token(architecture("llama3-8b")) == 2 * 32 * 8 * 128 * 2 == 131072
    assert kv_bytes_per_token(architecture("gpt2"), bytes_per_value=4) == 2 * 12 * 12 * 64 * 4
    mistral = architecture("mistral-7b")
    # past the window the cache stops growing
    assert kv_cache_bytes(mistral, 32768) == kv_cache_bytes(mistral, 4096) == 4096 * kv_bytes_per_token(mistral)
    gemma = architecture("gemma2-2b")
    per_layer = 2 * 4 * 256 * 2
    assert kv_cache_bytes(gemma, 8192) == 13 * per_layer * 4096 + 13 * per_layer * 8192
    assert kv_cache_bytes(gemma, 100) == 100 * kv_bytes_per_token(gemma)


def test_flops_are_two_per_weight_plus_attention() -> None:
    llama = architecture("llama3-8b")
    weights = matmul_params(llama)
    assert weights == count_arch_params(llama) - 128256 * 4096 - 32 * 2 * 4096 - 4096  # minus the lookup and norms
    assert attention_flops(llama, 4096) == 4 * 32 * 32 * 128 * 4096
    assert flops_per_token(llama, 4096) == 2 * weights + attention_flops(llama, 4096)
    assert 1.8 < flops_per_token(llama, 1) / count_arch_params(llama) < 2.0  # "2 x params, roughly"
    mistral = architecture("mistral-7b")
    assert attention_flops(mistral, 32768) == attention_flops(mistral, 4096)  # the window caps it


def test_differences_from_gpt2() -> None:
    assert differences_from_gpt2(architecture("gpt2")) == []
    assert differences_from_gpt2(architecture("gpt2-xl")) == []
    gemma = " | ".join(d.what for d in differences_from_gpt2(architecture("gemma2-2b")))
    for piece in ("RMSNorm", "RoPE", "GQA", "local (4096-token window)", "soft-capped at 50", "soft-capped at 30",
                  "GeGLU", "sandwich", "256,000"):
        assert piece in gemma
    assert {"post1", "post2", "logits", "attn", "mlp"} <= differs(architecture("gemma2-2b"))
    qwen = " | ".join(d.what for d in differences_from_gpt2(architecture("qwen2.5-0.5b")))
    assert "biases on q, k and v only" in qwen and "no bias vectors" not in qwen
    phi = " | ".join(d.what for d in differences_from_gpt2(architecture("phi3-mini")))
    assert "one matrix" in phi and "GQA" not in phi and "untied" in phi
    assert "sliding-window attention: each layer sees the last 4096" in " ".join(
        d.what for d in differences_from_gpt2(architecture("mistral-7b")))


def test_recipe_matrix() -> None:
    uses = {item.name: {a.key for a in ARCHITECTURES if item.uses(a)} for item in RECIPE}
    assert not any("gpt2" in keys for keys in uses.values())
    assert uses["soft-capping"] == uses["post-norms"] == {"gemma2-2b", "gemma2-9b"}
    assert uses["sliding window"] == {"mistral-7b", "gemma2-2b", "gemma2-9b"}
    assert "phi3-mini" not in uses["GQA"] and "llama3-8b" in uses["GQA"]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_architecture_of_a_loaded_model_counts_its_tensors(family: str) -> None:
    model = random_model(family)
    arch = architecture_of(model.config, "random")
    assert count_arch_params(arch) == model.n_params
    assert arch.norm == ("LayerNorm" if family == "gpt2" else "RMSNorm")


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_residual_flow_reads_the_trace(family: str) -> None:
    model = random_model(family)
    ids = list(b"the cat sat")
    trace = model.trace(ids)
    flow = residual_flow(model, trace, -1)
    assert flow.position == len(ids) - 1 and flow.token == ids[-1]
    assert len(flow.layers) == model.config.n_layer
    layer = flow.layers[1]
    x = trace["blocks.1.resid_pre"][-1]
    assert layer.norm_in == pytest.approx(float(np.linalg.norm(x)), rel=1e-6)
    assert layer.norm_mid == pytest.approx(float(np.linalg.norm(x + trace["blocks.1.attn.out"][-1])), rel=1e-4)
    assert layer.attn_ratio == pytest.approx(layer.attn_out / layer.norm_in)
    assert flow.layers[0].norm_in == pytest.approx(flow.embed_norm)
    # the lens after the last block is the model's own output
    probs = trace["probs"][-1]
    assert flow.final_top == int(np.argmax(probs))
    assert flow.final_top_prob == pytest.approx(float(probs.max()), rel=1e-4)
    last = flow.layers[-1]
    assert last.lens_top == flow.final_top and last.final_prob == pytest.approx(flow.final_top_prob)
    # another position reads another row
    first = residual_flow(model, trace, 0)
    assert first.position == 0 and first.token == ids[0]
    assert first.layers[0].norm_in == pytest.approx(float(np.linalg.norm(trace["blocks.0.resid_pre"][0])), rel=1e-6)


def test_published_match_finds_a_loaded_config_by_its_shapes() -> None:
    from dataclasses import replace

    smol = architecture("smollm2-135m")
    assert published_match(replace(smol.config, bos_token_id=1, eos_token_id=2)) is smol
    assert published_match(replace(smol.config, n_layer=29)) is None
    assert published_match(random_model("llama").config) is None


def test_architectures_module_needs_no_tui() -> None:
    code = ("import sys, fwdtui.core.architectures\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
