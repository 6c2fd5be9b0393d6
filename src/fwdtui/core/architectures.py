"""Published architectures (GPT-2, Llama 3, Mistral, Gemma 2, Phi-3, Qwen 2.5, SmolLM2) from their config.json values.

Each entry keeps the excerpt of the model's published `config.json` that the numbers come from,
turns it into a `ModelConfig` (through `ModelConfig.from_hf` where the core reads that model type,
by hand for Gemma 2 and Phi-3, which the core does not run), and adds what `ModelConfig` has no
field for: Gemma 2's soft-capping, sandwich norms and alternating local/global layers, Phi-3's
fused projections and LongRoPE. From that alone we compute the parameter count, the KV cache and
the FLOPs per token, and list what differs from GPT-2. numpy/stdlib only: no textual, no rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from fwdtui.core.config import ModelConfig, count_params
from fwdtui.core.ops import softmax
from fwdtui.errors import ConfigError

# --------------------------------------------------------------------------------------------
# The published config.json values (only the keys the shapes and mechanisms depend on).
# --------------------------------------------------------------------------------------------

_GPT2 = {"model_type": "gpt2", "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-5,
         "activation_function": "gelu_new"}

_LLAMA3_8B = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
    "vocab_size": 128256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "hidden_act": "silu", "attention_bias": False,
}
_LLAMA32_1B = {
    "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
    "vocab_size": 128256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "attention_bias": False,
    "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
}
_MISTRAL_7B = {  # Mistral-7B-v0.1 (v0.2 and later dropped the window and went to a 32k context)
    "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    "vocab_size": 32000, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": False, "hidden_act": "silu",
}
_GEMMA2 = {  # shared by the Gemma 2 sizes
    "model_type": "gemma2", "max_position_embeddings": 8192, "vocab_size": 256000, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "sliding_window": 4096, "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0, "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
    "attention_bias": False,
}
_GEMMA2_2B = {**_GEMMA2, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
              "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256}
_GEMMA2_9B = {**_GEMMA2, "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "query_pre_attn_scalar": 256}
_PHI3_MINI = {  # Phi-3-mini-128k-instruct; the 4k sibling has the same shapes, plain RoPE and a 4k context
    "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 131072,
    "original_max_position_embeddings": 4096, "vocab_size": 32064, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "rope_scaling": {"type": "su"},  # plus 48 short and 48 long per-frequency factors (head_dim / 2)
    "sliding_window": 262144, "tie_word_embeddings": False, "hidden_act": "silu",
}
_QWEN25_05B = {
    "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "vocab_size": 151936, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "sliding_window": 32768, "use_sliding_window": False, "hidden_act": "silu",
}
_QWEN25_7B = {
    "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 131072,
    "vocab_size": 152064, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
    "sliding_window": 131072, "use_sliding_window": False, "hidden_act": "silu",
}
_SMOLLM2_135M = {
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "vocab_size": 49152, "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True,
    "hidden_act": "silu",
}


# --------------------------------------------------------------------------------------------
# The architecture: a ModelConfig plus what it has no field for.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """One published model: its config, the mechanisms ModelConfig lacks, and its published size."""

    key: str  # short id: "gpt2", "llama3-8b", ...
    name: str  # as people call it: "Llama 3 8B"
    lineage: str  # "GPT-2", "Llama 3", "Mistral", "Gemma 2", "Phi-3", "Qwen 2.5", "SmolLM2"
    config: ModelConfig
    published_params: int  # the total the model card states
    published_label: str  # how the card says it: "8.03B"
    norm: str = "RMSNorm"  # "LayerNorm" (mean and variance, with bias) or "RMSNorm"
    position: str = "rope"  # "learned" (a table added to the input) or "rope" (rotations inside attention)
    mlp: str = "SwiGLU"  # "GELU" (two matrices) or "SwiGLU" / "GeGLU" (gated, three matrices)
    post_norms: bool = False  # Gemma 2: each sublayer's output is normed again before the residual add
    embed_scale: bool = False  # Gemma: embeddings multiplied by sqrt(n_embd)
    attn_softcap: float | None = None  # scores -> cap * tanh(scores / cap)
    final_softcap: float | None = None  # logits -> cap * tanh(logits / cap)
    query_pre_attn_scalar: float | None = None  # Gemma 2: scores are divided by sqrt(this), not sqrt(head_dim)
    layer_windows: tuple[int | None, ...] = ()  # per layer: the sliding window, None = sees every earlier token
    fused_qkv: bool = False  # Phi-3: q, k, v stored as one matrix (same numbers, one matmul)
    fused_gate_up: bool = False  # Phi-3: gate and up stored as one matrix
    rope_scaling_kind: str | None = None  # "llama3", "longrope (su)"
    note: str = ""  # one line: which checkpoint exactly
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # the config.json excerpt

    def window(self, layer: int) -> int | None:
        """The sliding window of `layer` (None: the layer attends to the whole context)."""
        if self.layer_windows:
            return self.layer_windows[layer]
        return self.config.sliding_window

    @property
    def attention_kind(self) -> str:
        """MHA, GQA or MQA, from the ratio of query heads to key/value heads."""
        cfg = self.config
        if cfg.n_kv_head == cfg.n_head:
            return "MHA"
        return "MQA" if cfg.n_kv_head == 1 else "GQA"

    @property
    def n_params(self) -> int:
        """Parameters computed from the config alone."""
        return count_arch_params(self)


def _windows(n_layer: int, window: int | None, alternate: bool) -> tuple[int | None, ...]:
    """Per-layer windows: every layer the same, or Gemma 2's local (even layers) / global (odd) pattern."""
    if not alternate:
        return (window,) * n_layer
    return tuple(window if i % 2 == 0 else None for i in range(n_layer))


def _config_from_raw(raw: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from a config.json excerpt: the core's own reader where it knows the type."""
    model_type = raw.get("model_type")
    if model_type in ("gpt2", "llama", "qwen2", "mistral"):
        return ModelConfig.from_hf(raw)
    if model_type not in ("gemma2", "phi3"):
        raise ConfigError(f"model_type {model_type!r} is not one the explorer describes.",
                          "Add it to fwdtui.core.architectures with its config.json values.")
    # Gemma 2 and Phi-3 share the Llama skeleton (RMSNorm, RoPE, gated MLP, no biases): write it by hand,
    # since from_hf rightly refuses model types the core cannot run.
    n_embd, n_head = raw["hidden_size"], raw["num_attention_heads"]
    window = raw.get("sliding_window")
    n_ctx = raw["max_position_embeddings"]
    return ModelConfig(
        family="llama",
        model_type=model_type,
        n_layer=raw["num_hidden_layers"],
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=raw.get("num_key_value_heads", n_head),
        head_dim=raw.get("head_dim", n_embd // n_head),
        n_inner=raw["intermediate_size"],
        n_ctx=n_ctx,
        vocab_size=raw["vocab_size"],
        norm_eps=raw["rms_norm_eps"],
        rope_theta=raw.get("rope_theta", 10000.0),
        tie_word_embeddings=raw.get("tie_word_embeddings", False),
        # a window as long as the context masks nothing (Phi-3-128k writes 262144)
        sliding_window=window if window and window < n_ctx else None,
    )


def from_config_json(key: str, name: str, lineage: str, raw: dict[str, Any], published_params: int,
                     published_label: str, note: str = "") -> Architecture:
    """An Architecture from a published config.json excerpt, with the mechanisms its model type implies."""
    cfg = _config_from_raw(raw)
    model_type = cfg.model_type
    extra: dict[str, Any] = {}
    if model_type == "gpt2":
        extra = dict(norm="LayerNorm", position="learned", mlp="GELU")
    elif model_type == "gemma2":
        extra = dict(mlp="GeGLU", post_norms=True, embed_scale=True,
                     attn_softcap=raw.get("attn_logit_softcapping"), final_softcap=raw.get("final_logit_softcapping"),
                     query_pre_attn_scalar=raw.get("query_pre_attn_scalar"))
    elif model_type == "phi3":
        scaling = (raw.get("rope_scaling") or {}).get("type")
        extra = dict(fused_qkv=True, fused_gate_up=True,
                     rope_scaling_kind="longrope (su)" if scaling in ("su", "longrope") else None)
    if cfg.rope_scaling:
        extra["rope_scaling_kind"] = str(cfg.rope_scaling.get("rope_type", cfg.rope_scaling.get("type")))
    windows = _windows(cfg.n_layer, cfg.sliding_window, alternate=model_type == "gemma2")
    return Architecture(key=key, name=name, lineage=lineage, config=cfg, published_params=published_params,
                        published_label=published_label, layer_windows=windows, note=note, raw=dict(raw), **extra)


def _gpt2(key: str, name: str, n_layer: int, n_embd: int, n_head: int, published: int, label: str) -> Architecture:
    raw = {**_GPT2, "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head}
    return from_config_json(key, name, "GPT-2", raw, published, label, note=f"openai-community/{key}")


ARCHITECTURES: tuple[Architecture, ...] = (
    _gpt2("gpt2", "GPT-2", 12, 768, 12, 124_439_808, "124M"),
    _gpt2("gpt2-medium", "GPT-2 medium", 24, 1024, 16, 354_823_168, "355M"),
    _gpt2("gpt2-large", "GPT-2 large", 36, 1280, 20, 774_030_080, "774M"),
    _gpt2("gpt2-xl", "GPT-2 XL", 48, 1600, 25, 1_557_611_200, "1.56B"),
    from_config_json("llama3-8b", "Llama 3 8B", "Llama 3", _LLAMA3_8B, 8_030_000_000, "8.03B",
                     "meta-llama/Meta-Llama-3-8B"),
    from_config_json("llama3.2-1b", "Llama 3.2 1B", "Llama 3", _LLAMA32_1B, 1_240_000_000, "1.24B",
                     "meta-llama/Llama-3.2-1B"),
    from_config_json("mistral-7b", "Mistral 7B", "Mistral", _MISTRAL_7B, 7_240_000_000, "7.24B",
                     "mistralai/Mistral-7B-v0.1"),
    from_config_json("gemma2-2b", "Gemma 2 2B", "Gemma 2", _GEMMA2_2B, 2_610_000_000, "2.61B", "google/gemma-2-2b"),
    from_config_json("gemma2-9b", "Gemma 2 9B", "Gemma 2", _GEMMA2_9B, 9_240_000_000, "9.24B", "google/gemma-2-9b"),
    from_config_json("phi3-mini", "Phi-3-mini", "Phi-3", _PHI3_MINI, 3_820_000_000, "3.82B",
                     "microsoft/Phi-3-mini-128k-instruct"),
    from_config_json("qwen2.5-0.5b", "Qwen2.5-0.5B", "Qwen 2.5", _QWEN25_05B, 494_000_000, "494M",
                     "Qwen/Qwen2.5-0.5B"),
    from_config_json("qwen2.5-7b", "Qwen2.5-7B", "Qwen 2.5", _QWEN25_7B, 7_610_000_000, "7.61B", "Qwen/Qwen2.5-7B"),
    from_config_json("smollm2-135m", "SmolLM2-135M", "SmolLM2", _SMOLLM2_135M, 135_000_000, "135M",
                     "HuggingFaceTB/SmolLM2-135M"),
)

ARCHITECTURES_BY_KEY: dict[str, Architecture] = {a.key: a for a in ARCHITECTURES}


def architecture(key: str) -> Architecture:
    """The published architecture called `key` ("gpt2", "llama3-8b", ...)."""
    try:
        return ARCHITECTURES_BY_KEY[key]
    except KeyError:
        raise ConfigError(f"No published architecture called {key!r}.",
                          "Known: " + ", ".join(ARCHITECTURES_BY_KEY)) from None


def architecture_of(config: ModelConfig, name: str, published_params: int = 0) -> Architecture:
    """The Architecture of a model the core runs (the loaded one), to draw it like the published ones."""
    gpt2 = config.family == "gpt2"
    return Architecture(
        key=name, name=name, lineage="GPT-2" if gpt2 else "Llama", config=config,
        published_params=published_params, published_label="",
        norm="LayerNorm" if gpt2 else "RMSNorm", position="learned" if gpt2 else "rope",
        mlp="GELU" if gpt2 else "SwiGLU", layer_windows=_windows(config.n_layer, config.sliding_window, False),
        rope_scaling_kind=str(config.rope_scaling.get("rope_type")) if config.rope_scaling else None,
    )


def published_match(config: ModelConfig) -> Architecture | None:
    """The published architecture with exactly these shapes and settings (token ids aside), if any."""
    def shape(cfg: ModelConfig) -> ModelConfig:
        return replace(cfg, bos_token_id=None, eos_token_id=None)

    return next((a for a in ARCHITECTURES if shape(a.config) == shape(config)), None)


# --------------------------------------------------------------------------------------------
# What the config implies: parameters, KV cache, FLOPs.
# --------------------------------------------------------------------------------------------


def _layer_params(arch: Architecture) -> tuple[int, int, int, int]:
    """One block's (attention weights, attention biases, MLP weights, MLP biases)."""
    cfg = arch.config
    d, f = cfg.n_embd, cfg.n_inner
    q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    attn_w = d * q_dim + 2 * d * kv_dim + q_dim * d  # W_q, W_k, W_v: [d, q_dim | kv_dim]; W_o: [q_dim, d]
    attn_b = (q_dim + 2 * kv_dim) * cfg.attn_bias + d * cfg.attn_out_bias
    gated = arch.mlp != "GELU"  # gated MLPs have gate, up and down; GPT-2 has up and down
    mlp_w = (3 if gated else 2) * d * f
    mlp_b = ((2 * f if gated else f) + d) * cfg.mlp_bias
    return attn_w, attn_b, mlp_w, mlp_b


def params_breakdown(arch: Architecture) -> dict[str, int]:
    """Parameters by part (embedding, positions, attention, MLP, norms, unembedding); sums to the total."""
    cfg = arch.config
    d, v, n_layer = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    attn_w, attn_b, mlp_w, mlp_b = _layer_params(arch)
    norm_params = 2 * d if arch.norm == "LayerNorm" else d  # LayerNorm has a scale and a bias
    per_layer_norms = (4 if arch.post_norms else 2) * norm_params
    return {
        "embedding": v * d,
        "positions": cfg.n_ctx * d if arch.position == "learned" else 0,
        "attention": n_layer * (attn_w + attn_b),
        "mlp": n_layer * (mlp_w + mlp_b),
        "norms": n_layer * per_layer_norms + norm_params,  # + the final norm
        "unembedding": 0 if cfg.tie_word_embeddings else v * d,
    }


def count_arch_params(arch: Architecture) -> int:
    """The total parameter count from the config: `count_params` plus what ModelConfig cannot express."""
    total = count_params(arch.config)
    if arch.post_norms:
        total += 2 * arch.config.n_layer * arch.config.n_embd  # Gemma 2's two extra RMSNorms per block
    return total


def kv_bytes_per_token(arch: Architecture, bytes_per_value: int = 2) -> int:
    """KV cache bytes one more token of context costs, all layers (16-bit values unless told)."""
    cfg = arch.config
    return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * bytes_per_value  # a key and a value per kv head


def kv_cache_bytes(arch: Architecture, n_tokens: int, bytes_per_value: int = 2) -> int:
    """KV cache bytes for `n_tokens` of context: a sliding-window layer keeps only its last `window` tokens."""
    cfg = arch.config
    per_layer_token = 2 * cfg.n_kv_head * cfg.head_dim * bytes_per_value
    total = 0
    for layer in range(cfg.n_layer):
        window = arch.window(layer)
        total += per_layer_token * (n_tokens if window is None else min(n_tokens, window))
    return total


def matmul_params(arch: Architecture) -> int:
    """Weights each new token is multiplied by: every projection plus the unembedding (not the lookup tables)."""
    attn_w, _, mlp_w, _ = _layer_params(arch)
    cfg = arch.config
    return cfg.n_layer * (attn_w + mlp_w) + cfg.vocab_size * cfg.n_embd


def attention_flops(arch: Architecture, context: int) -> int:
    """FLOPs of q·k and weights·v for one new token that sees `context` tokens (windows respected)."""
    cfg = arch.config
    total = 0
    for layer in range(cfg.n_layer):
        window = arch.window(layer)
        seen = context if window is None else min(context, window)
        total += 2 * 2 * cfg.n_head * cfg.head_dim * seen  # two products, a multiply and an add each
    return total


def flops_per_token(arch: Architecture, context: int = 4096) -> int:
    """Forward FLOPs for one new token with `context` tokens cached: 2 per weight it meets, plus attention."""
    return 2 * matmul_params(arch) + attention_flops(arch, context)


# --------------------------------------------------------------------------------------------
# What differs from GPT-2, part by part (the diagram lights these parts).
# --------------------------------------------------------------------------------------------

PARTS = ("embed", "pos", "ln1", "attn", "post1", "resid1", "ln2", "mlp", "post2", "resid2", "final_norm",
         "unembed", "logits")


@dataclass(frozen=True)
class Difference:
    """One change from GPT-2's recipe: the diagram parts it touches, what it is, and why it is there."""

    parts: tuple[str, ...]
    what: str
    why: str


def _fmt_count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def differences_from_gpt2(arch: Architecture) -> list[Difference]:
    """The modern-recipe changes this architecture makes to GPT-2, each with a short reason."""
    cfg = arch.config
    out: list[Difference] = []
    if arch.norm == "RMSNorm":
        out.append(Difference(("ln1", "ln2", "final_norm"), "RMSNorm instead of LayerNorm",
                              "divides by the root mean square only: no mean subtracted, no bias; cheaper, "
                              "and trains just as stably"))
    if arch.post_norms:
        out.append(Difference(("post1", "post2"), "a second norm after each sublayer (sandwich)",
                              "each sublayer's output is normed again before it is added to the stream, "
                              "which keeps the residual stream's scale in check"))
    if arch.position == "rope":
        theta = f"{cfg.rope_theta:,.0f}"
        scaling = f", {arch.rope_scaling_kind} scaling for long context" if arch.rope_scaling_kind else ""
        out.append(Difference(("pos", "attn"), f"RoPE (theta {theta}{scaling}) instead of a learned position table",
                              "q and k are rotated by angles that grow with position, so their dot product depends "
                              "on the distance between tokens; no table caps the length, and a larger theta "
                              "(slower rotations) keeps far positions apart"))
    if arch.attention_kind != "MHA":
        heads = f"{cfg.n_kv_head} key/value head{'s' if cfg.n_kv_head > 1 else ''}"
        out.append(Difference(("attn",), f"{arch.attention_kind}: {cfg.n_head} query heads share {heads}",
                              f"the KV cache shrinks {cfg.n_group}x with little loss in quality"))
    windows = {w for w in arch.layer_windows if w is not None}
    if windows:
        w = min(windows)
        if None in arch.layer_windows:
            out.append(Difference(("attn",), f"local ({w}-token window) and global layers alternate",
                                  "half the layers look only at the last few thousand tokens (cheap, small cache); "
                                  "the other half still see everything"))
        else:
            out.append(Difference(("attn",), f"sliding-window attention: each layer sees the last {w} tokens",
                                  "attention cost and cache per layer stop growing past the window; stacked layers "
                                  "still pass information from further back"))
    if arch.attn_softcap:
        out.append(Difference(("attn",), f"attention scores soft-capped at {arch.attn_softcap:g}",
                              "cap·tanh(score/cap) bends huge scores smoothly under the cap, for stable training"))
    if arch.query_pre_attn_scalar and arch.query_pre_attn_scalar != cfg.head_dim:
        out.append(Difference(("attn",), f"scores scaled by 1/√{arch.query_pre_attn_scalar:g}, not 1/√{cfg.head_dim}",
                              "the scale is a setting of its own rather than tied to the head width"))
    if arch.mlp != "GELU":
        gate = "SiLU" if arch.mlp == "SwiGLU" else "GELU"
        out.append(Difference(("mlp",), f"{arch.mlp} MLP: {gate}(x·W_gate) ⊙ (x·W_up), then W_down",
                              f"a gate multiplies a second projection element by element; better loss for the same "
                              f"compute. With three matrices instead of two, the same parameters buy a width of "
                              f"8/3 x d_model; this model uses {cfg.n_inner / cfg.n_embd:.2f}x (GPT-2: 4x)"))
    if arch.fused_qkv or arch.fused_gate_up:
        out.append(Difference(("attn", "mlp"), "q, k, v stored as one matrix, gate and up as another",
                              "the same numbers as separate matrices; one bigger matrix product is faster"))
    if not (cfg.attn_bias or cfg.attn_out_bias or cfg.mlp_bias):
        out.append(Difference(("attn", "mlp"), "no bias vectors",
                              "at scale they add almost nothing; dropping them saves memory traffic and code"))
    elif arch.position != "learned" and cfg.attn_bias and not cfg.mlp_bias:
        out.append(Difference(("attn", "mlp"), "biases on q, k and v only",
                              "Qwen keeps those three and drops every other bias"))
    if arch.embed_scale:
        out.append(Difference(("embed",), f"embeddings multiplied by √{cfg.n_embd}",
                              "puts the (tied) embedding rows on the scale the residual stream expects"))
    if not cfg.tie_word_embeddings:
        out.append(Difference(("unembed",), "a separate unembedding matrix (untied)",
                              f"{_fmt_count(cfg.vocab_size * cfg.n_embd)} more parameters, so the input and output "
                              "sides of a token can be represented differently"))
    if cfg.vocab_size > 60000:
        out.append(Difference(("embed", "unembed"), f"vocabulary of {cfg.vocab_size:,} tokens (GPT-2: 50,257)",
                              "more languages and code in fewer tokens per text, at the price of a bigger table"))
    if arch.final_softcap:
        out.append(Difference(("logits",), f"final logits soft-capped at {arch.final_softcap:g}",
                              "keeps the output distribution from growing over-confident in training"))
    return out


@dataclass(frozen=True)
class RecipeItem:
    """One ingredient of the post-GPT-2 recipe and the test that says whether a model uses it."""

    name: str
    why: str
    uses: Callable[[Architecture], bool]


def _no_biases(a: Architecture) -> bool:
    return not (a.config.attn_bias or a.config.attn_out_bias or a.config.mlp_bias)


RECIPE: tuple[RecipeItem, ...] = (
    RecipeItem("RMSNorm", "cheaper norm, no mean or bias", lambda a: a.norm == "RMSNorm"),
    RecipeItem("RoPE", "relative positions by rotation", lambda a: a.position == "rope"),
    RecipeItem("gated MLP", "SwiGLU / GeGLU: better loss per FLOP", lambda a: a.mlp != "GELU"),
    RecipeItem("GQA", "smaller KV cache", lambda a: a.attention_kind != "MHA"),
    RecipeItem("no biases", "nothing lost at scale", _no_biases),
    RecipeItem("untied output", "input and output roles differ", lambda a: not a.config.tie_word_embeddings),
    RecipeItem("sliding window", "cost stops growing past W", lambda a: any(w is not None for w in a.layer_windows)),
    RecipeItem("soft-capping", "tanh keeps logits bounded", lambda a: bool(a.attn_softcap or a.final_softcap)),
    RecipeItem("post-norms", "sublayer outputs normed too", lambda a: a.post_norms),
    RecipeItem("vocab > 100k", "fewer tokens per text", lambda a: a.config.vocab_size > 100_000),
    RecipeItem("context ≥ 32k", "long documents in one pass", lambda a: a.config.n_ctx >= 32768),
)


def differs(arch: Architecture) -> set[str]:
    """The diagram parts where this architecture is not GPT-2."""
    return {part for d in differences_from_gpt2(arch) for part in d.parts}


# --------------------------------------------------------------------------------------------
# Live: what flows through the loaded model's blocks, read off one Trace.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerFlow:
    """One block at one position: residual-stream sizes, what each sublayer added, the logit-lens guess."""

    layer: int
    norm_in: float  # |x| entering the block
    attn_out: float  # |attention output| (what attention adds to the stream)
    norm_mid: float  # |x| after the attention residual add
    mlp_out: float  # |MLP output|
    norm_out: float  # |x| leaving the block
    lens_top: int  # the logit lens's top token after this block
    lens_prob: float  # its probability
    final_prob: float  # probability the lens already gives the model's final answer

    @property
    def attn_ratio(self) -> float:
        """How big attention's contribution is next to the stream it is added to."""
        return self.attn_out / max(self.norm_in, 1e-12)

    @property
    def mlp_ratio(self) -> float:
        return self.mlp_out / max(self.norm_mid, 1e-12)


@dataclass(frozen=True)
class ResidualFlow:
    """Every block of a model at one position of a Trace, plus the lens reading of the bare embedding."""

    position: int
    token: int
    embed_norm: float  # |x| entering block 0 (GPT-2: token + position embedding)
    embed_top: int  # the lens read on the embedding alone (usually the input token or a near copy)
    embed_prob: float
    final_top: int  # the model's own next-token guess at this position
    final_top_prob: float
    layers: tuple[LayerFlow, ...]


def residual_flow(model: Any, trace: Any, position: int) -> ResidualFlow:
    """Read the residual stream of `trace` at `position` through every block, with the model's own logit lens."""
    n_layer = model.config.n_layer
    probs = softmax(model.logit_lens(trace, position).astype(np.float64))  # [n_layer + 1, n_vocab]: embed, block 0, ...
    final_top = int(np.argmax(probs[-1]))

    def norm(name: str) -> float:
        return float(np.linalg.norm(trace[name][position]))

    layers = []
    for i in range(n_layer):
        row = probs[i + 1]  # the lens after block i
        top = int(np.argmax(row))
        layers.append(LayerFlow(
            layer=i,
            norm_in=norm(f"blocks.{i}.resid_pre"),
            attn_out=norm(f"blocks.{i}.attn.out"),
            norm_mid=norm(f"blocks.{i}.resid_mid"),
            mlp_out=norm(f"blocks.{i}.mlp.out"),
            norm_out=norm(f"blocks.{i}.resid_post"),
            lens_top=top,
            lens_prob=float(row[top]),
            final_prob=float(row[final_top]),
        ))
    embed_top = int(np.argmax(probs[0]))
    return ResidualFlow(
        position=int(position % len(trace.ids)),
        token=int(trace.ids[position]),
        embed_norm=norm("blocks.0.resid_pre"),
        embed_top=embed_top,
        embed_prob=float(probs[0][embed_top]),
        final_top=final_top,
        final_top_prob=float(probs[-1][final_top]),
        layers=tuple(layers),
    )
