"""One configuration dataclass for both model families, read from Hugging Face `config.json`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fwdtui.errors import ConfigError

FAMILIES = ("gpt2", "llama")
LLAMA_TYPES = ("llama", "qwen2", "mistral")
# Above these a config is not a language model we could run in numpy on a CPU; it is a broken file.
_LIMITS = {
    "n_layer": 512,
    "n_embd": 65536,
    "n_head": 1024,
    "n_inner": 1 << 20,
    "n_ctx": 1 << 22,
    "vocab_size": 1 << 22,
}


@dataclass(frozen=True)
class ModelConfig:
    """The hyperparameters the forward pass needs, in GPT-2's vocabulary for both families."""

    family: str  # "gpt2" or "llama" (Llama, Qwen2, Mistral: RMSNorm, RoPE, GQA, SwiGLU)
    n_layer: int
    n_embd: int
    n_head: int
    n_kv_head: int  # == n_head for multi-head attention, fewer for grouped-query attention
    head_dim: int
    n_inner: int  # hidden width of the MLP
    n_ctx: int  # longest sequence the model was trained on
    vocab_size: int
    norm_eps: float
    model_type: str = "gpt2"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    # One divisor per rotary pair [head_dim/2], applied after rope_scaling: llama.cpp's rope_freqs.weight,
    # which a GGUF of Llama 3.1 and later carries in place of the rope_scaling of its config.json.
    rope_freq_factors: tuple[float, ...] | None = None
    tie_word_embeddings: bool = True
    attn_bias: bool = False  # biases on q/k/v (Qwen2 has them)
    attn_out_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None  # keys further back than this are masked (Mistral; sparse-attention chapter)
    attention_sinks: int = 0  # with a window: the first positions every query still sees
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    @property
    def n_group(self) -> int:
        """Query heads that share one key/value head (1 for plain multi-head attention)."""
        return self.n_head // self.n_kv_head

    @property
    def n_params(self) -> int:
        """Parameter count computed from the shapes alone (tied embeddings counted once)."""
        return count_params(self)

    @classmethod
    def from_hf(cls, raw: dict[str, Any]) -> "ModelConfig":
        """Read a Hugging Face `config.json` dict, in the spellings old and new versions write."""
        if not isinstance(raw, dict):
            raise ConfigError("config.json does not hold a JSON object.", "Re-download the model or fix the file.")
        model_type = str(raw.get("model_type") or "").lower()
        archs = raw.get("architectures") or []
        # A broken config may hold anything here; only strings in a list (or one string) name architectures.
        if isinstance(archs, str):
            archs = [archs]
        archs = " ".join(a for a in archs if isinstance(a, str)) if isinstance(archs, list) else ""
        if model_type in ("gpt2",) or (not model_type and "GPT2" in archs):
            return _gpt2_from_hf(raw)
        if model_type in LLAMA_TYPES or (not model_type and any(a in archs for a in ("Llama", "Qwen2", "Mistral"))):
            return _llama_from_hf(raw, model_type or "llama")
        raise ConfigError(
            f"model_type {_short(model_type) if model_type else '(missing)'} is not supported.",
            "fwdtui runs GPT-2 (gpt2) and Llama-family (llama, qwen2, mistral) models.",
        )


def _get(raw: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of several spellings present in the config (older transformers wrote n_ctx, newer n_positions)."""
    for key in keys:
        if raw.get(key) is not None:
            return raw[key]
    return default


def _int(raw: dict[str, Any], name: str, *keys: str, default: int | None = None) -> int:
    value = _get(raw, *keys, default=default)
    if value is None:
        raise ConfigError(f"config.json has no {keys[0]!r}.", "Use the config.json that came with the weights.")
    # inf and nan (Python's json reads Infinity and NaN) are floats that int() cannot take: refuse them first.
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value)) or int(value) != value):
        raise ConfigError(f"config.json: {keys[0]!r} is {_short(value)}, not a whole number.", "Fix or re-download config.json.")
    value = int(value)
    limit = _LIMITS.get(name, 1 << 30)
    if not 1 <= value <= limit:
        raise ConfigError(f"config.json: {keys[0]!r} = {_short(value)} is out of range (1..{limit}).",
                          "Fix or re-download config.json.")
    return value


def _short(value: Any) -> str:
    """A config value for a message: a 300-digit number or a huge list must not flood the terminal."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"{float(value):.3g}" if value.bit_length() < 1000 else "a number of hundreds of digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _flag(raw: dict[str, Any], key: str, default: bool) -> bool:
    """A true/false setting: JSON true/false (or 0/1); the string "false" must not count as true."""
    value = raw.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ConfigError(f"config.json: {key!r} is {_short(value)}, not true or false.", "Fix or re-download config.json.")


def _float(raw: dict[str, Any], *keys: str, default: float) -> float:
    value = _get(raw, *keys, default=default)
    # compared as given: float() of a 400-digit integer would raise OverflowError
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 1e12):
        raise ConfigError(f"config.json: {keys[0]!r} = {_short(value)} is not a positive number.", "Fix or re-download config.json.")
    return float(value)


def _token_id(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if isinstance(value, list):  # some configs list several end-of-sequence ids; the first is the main one
        value = value[0] if value else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _gpt2_from_hf(raw: dict[str, Any]) -> ModelConfig:
    n_embd = _int(raw, "n_embd", "n_embd", "hidden_size")
    n_head = _int(raw, "n_head", "n_head", "num_attention_heads")
    if n_embd % n_head:
        raise ConfigError(f"config.json: n_embd {n_embd} is not divisible by n_head {n_head}.", "Fix or re-download config.json.")
    act = str(raw.get("activation_function", "gelu_new"))
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise ConfigError(f"activation_function {_short(act)} is not supported.", "GPT-2 checkpoints use gelu_new (the tanh GELU).")
    return ModelConfig(
        family="gpt2",
        model_type="gpt2",
        n_layer=_int(raw, "n_layer", "n_layer", "num_hidden_layers"),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=n_head,
        head_dim=n_embd // n_head,
        n_inner=_int(raw, "n_inner", "n_inner", default=4 * n_embd),
        n_ctx=_int(raw, "n_ctx", "n_positions", "n_ctx", "max_position_embeddings", default=1024),
        vocab_size=_int(raw, "vocab_size", "vocab_size", default=50257),
        norm_eps=_float(raw, "layer_norm_epsilon", "layer_norm_eps", default=1e-5),
        tie_word_embeddings=True,
        attn_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        bos_token_id=_token_id(raw, "bos_token_id"),
        eos_token_id=_token_id(raw, "eos_token_id"),
    )


def _rope_theta(raw: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """rope_theta sits at the top level in older configs and inside rope_parameters in newer ones."""
    params = raw.get("rope_parameters")
    scaling = raw.get("rope_scaling")
    theta = raw.get("rope_theta")
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        if params.get("rope_type", "default") != "default":
            scaling = params
    if theta is None:
        theta = 10000.0
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not 0 < theta < 1e12:
        raise ConfigError(f"config.json: rope_theta = {_short(theta)} is not a positive number.", "Fix or re-download config.json.")
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            raise ConfigError(f"rope scaling {_short(kind)} is not supported.", "fwdtui supports plain RoPE and Llama 3's scaling.")
        else:
            _check_llama3_scaling(scaling)
    else:
        scaling = None
    return float(theta), scaling


def _check_llama3_scaling(scaling: dict[str, Any]) -> None:
    """The numbers Llama 3's frequency blend divides by: present, finite, and low < high."""
    values = {}
    for key, default in (("factor", None), ("low_freq_factor", 1.0), ("high_freq_factor", 4.0),
                         ("original_max_position_embeddings", 8192)):
        value = scaling.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e12:
            raise ConfigError(f"config.json: rope scaling {key!r} = {_short(value)} is not a positive number.",
                              "Fix or re-download config.json.")
        values[key] = value
    if values["low_freq_factor"] >= values["high_freq_factor"]:
        raise ConfigError("config.json: rope scaling low_freq_factor must be below high_freq_factor.",
                          "Fix or re-download config.json.")


def _rope_freq_factors(raw: dict[str, Any], head_dim: int) -> tuple[float, ...] | None:
    """`rope_freq_factors`: not a transformers key but the one the GGUF loader writes from rope_freqs.weight."""
    factors = raw.get("rope_freq_factors")
    if factors is None:
        return None
    if (not isinstance(factors, list) or len(factors) != head_dim // 2
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1e12 for f in factors)):
        raise ConfigError(f"config.json: rope_freq_factors must be {head_dim // 2} positive numbers, one per rotary pair.",
                          "Fix or re-download config.json (beside a GGUF: delete its .f32.safetensors cache).")
    return tuple(float(f) for f in factors)


def _llama_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    n_embd = _int(raw, "n_embd", "hidden_size")
    n_head = _int(raw, "n_head", "num_attention_heads")
    n_kv_head = _int(raw, "n_head", "num_key_value_heads", default=n_head)
    if n_head % n_kv_head:
        raise ConfigError(
            f"config.json: {n_head} attention heads cannot share {n_kv_head} key/value heads evenly.",
            "Fix or re-download config.json.",
        )
    head_dim = raw.get("head_dim")
    if head_dim is None:
        if n_embd % n_head:
            raise ConfigError(f"config.json: hidden_size {n_embd} is not divisible by {n_head} heads.", "Fix config.json.")
        head_dim = n_embd // n_head
    else:
        head_dim = _int(raw, "n_embd", "head_dim")
    if head_dim % 2:
        raise ConfigError(f"config.json: head_dim {head_dim} is odd; rotary embeddings need pairs.", "Fix config.json.")
    act = str(raw.get("hidden_act", "silu"))
    if act not in ("silu", "swish"):
        raise ConfigError(f"hidden_act {_short(act)} is not supported.", "Llama-family models use silu (SwiGLU).")
    theta, scaling = _rope_theta(raw)
    is_qwen2 = model_type == "qwen2"
    window = raw.get("sliding_window")
    if is_qwen2 and not raw.get("use_sliding_window", False):
        window = None  # Qwen2 writes a window size but only uses it when this flag is set
    return ModelConfig(
        family="llama",
        model_type=model_type,
        n_layer=_int(raw, "n_layer", "num_hidden_layers"),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=n_kv_head,
        head_dim=head_dim,
        n_inner=_int(raw, "n_inner", "intermediate_size"),
        n_ctx=_int(raw, "n_ctx", "max_position_embeddings", default=2048),
        vocab_size=_int(raw, "vocab_size", "vocab_size", default=32000),
        norm_eps=_float(raw, "rms_norm_eps", default=1e-6),
        rope_theta=theta,
        rope_scaling=scaling,
        rope_freq_factors=_rope_freq_factors(raw, head_dim),
        tie_word_embeddings=_flag(raw, "tie_word_embeddings", False),
        attn_bias=_flag(raw, "attention_bias", False) or is_qwen2,
        attn_out_bias=_flag(raw, "attention_bias", False),
        mlp_bias=_flag(raw, "mlp_bias", False),
        sliding_window=int(window) if isinstance(window, int) and not isinstance(window, bool) and window > 0 else None,
        bos_token_id=_token_id(raw, "bos_token_id"),
        eos_token_id=_token_id(raw, "eos_token_id"),
    )


def count_params(cfg: ModelConfig) -> int:
    """Parameters from the config alone: what the Architecture Explorer shows for published models."""
    d, f, v = cfg.n_embd, cfg.n_inner, cfg.vocab_size
    q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    if cfg.family == "gpt2":
        per_layer = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
        return v * d + cfg.n_ctx * d + cfg.n_layer * per_layer + 2 * d
    attn = d * q_dim + 2 * d * kv_dim + q_dim * d
    if cfg.attn_bias:
        attn += q_dim + 2 * kv_dim
    if cfg.attn_out_bias:
        attn += d
    mlp = 3 * d * f + (2 * f + d if cfg.mlp_bias else 0)
    per_layer = attn + mlp + 2 * d
    unembed = 0 if cfg.tie_word_embeddings else v * d
    return v * d + cfg.n_layer * per_layer + d + unembed
