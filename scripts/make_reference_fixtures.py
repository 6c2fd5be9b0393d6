"""Build tiny seeded Hugging Face models and dump transformers' own logits and greedy ids as test fixtures.

Run once by hand (needs torch and transformers, which the test suite never imports):

    python scripts/make_reference_fixtures.py            # writes tests/fixtures/models/<name>/

Each folder gets config.json + model.safetensors exactly as `save_pretrained` writes them, plus
reference.npz (input_ids, logits, greedy_ids) and reference.json (versions, what it exercises).
The reference numbers are computed from the model *reloaded from the folder*, so they describe
the files on disk and not some in-memory state that was never saved.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "models"
MAX_NEW_TOKENS = 12
MAX_FOLDER_BYTES = 400 * 1024


@dataclass
class Fixture:
    """One tiny model: how to build it and what it is meant to catch."""

    name: str
    model_cls: type[PreTrainedModel]
    config: PretrainedConfig
    exercises: str
    seed: int
    n_prompt: int
    post_save: Callable[[Path], None] | None = None  # rewrites the folder (hub-style layouts)
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- weights

def scale_weights(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every parameter at a large scale so logits spread out and greedy text varies.

    The default init (std 0.02) makes a tiny model's logits nearly flat: greedy decoding then
    repeats one token and a wrong engine could still match it by luck.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            is_norm = any(k in name for k in ("ln_", "layernorm", "norm.weight", "ln_f"))
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)  # norm gains near 1, but not exactly, so a missing gain shows
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif "wpe" in name:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


# ---------------------------------------------------------------- hub-style rewrites

def rewrite_as_hub_gpt2(folder: Path) -> None:
    """Make the folder look like the hub's openai-community/gpt2: no `transformer.` prefix,
    causal-mask buffers `h.N.attn.bias` stored beside the weights, old-style config keys."""
    tensors = load_file(str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    renamed: dict[str, np.ndarray] = {}
    for name, arr in tensors.items():
        renamed[name.removeprefix("transformer.")] = arr
    n_ctx = cfg["n_positions"]
    # The real file stores a [1, 1, 1024, 1024] lower-triangular float32 mask per layer under a
    # name that looks like a weight. It is not one: a loader must skip it. Ours is n_ctx wide.
    mask = np.tril(np.ones((n_ctx, n_ctx), dtype=np.float32))[None, None]
    for i in range(cfg["n_layer"]):
        renamed[f"h.{i}.attn.bias"] = mask
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})

    # The hub's gpt2 config.json predates n_inner/dtype keys and carries n_ctx.
    old = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": cfg["layer_norm_epsilon"],
        "model_type": "gpt2",
        "n_ctx": n_ctx,
        "n_embd": cfg["n_embd"],
        "n_head": cfg["n_head"],
        "n_layer": cfg["n_layer"],
        "n_positions": n_ctx,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": cfg["vocab_size"],
        # The hub's gpt2 points both at its last id, <|endoftext|>; ours is the last id too.
        "bos_token_id": cfg["vocab_size"] - 1,
        "eos_token_id": cfg["vocab_size"] - 1,
    }
    (folder / "config.json").write_text(json.dumps(old, indent=2) + "\n")


def write_config_style_pair(folder: Path) -> None:
    """Save the config both ways transformers has written rope_theta: top level (4.x) and
    inside rope_parameters (5.x), so the config reader is tested on both spellings."""
    cfg = json.loads((folder / "config.json").read_text())
    if "rope_parameters" in cfg:
        new = dict(cfg)
        old = {k: v for k, v in cfg.items() if k != "rope_parameters"}
        old["rope_theta"] = cfg["rope_parameters"]["rope_theta"]
        old["rope_scaling"] = None
        # 4.x also wrote torch_dtype (not dtype) and, before 4.45, no head_dim for Llama: the
        # reader must then derive head_dim = hidden_size // num_attention_heads.
        old["torch_dtype"] = old.pop("dtype", "float32")
        if old.get("head_dim") == old["hidden_size"] // old["num_attention_heads"]:
            del old["head_dim"]
    else:
        old = dict(cfg)
        new = {k: v for k, v in cfg.items() if k not in ("rope_theta", "rope_scaling")}
        new["rope_parameters"] = {"rope_theta": cfg["rope_theta"], "rope_type": "default"}
    (folder / "config.oldstyle.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    (folder / "config.newstyle.json").write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
    # transformers itself must read the old spelling to the same theta, or the pair is wrong.
    reread = LlamaConfig.from_dict(old)
    got = (reread.rope_parameters or {}).get("rope_theta", getattr(reread, "rope_theta", None))
    assert got == old["rope_theta"], (got, old["rope_theta"])
    assert reread.head_dim == cfg["hidden_size"] // cfg["num_attention_heads"]


# ---------------------------------------------------------------- the list

NO_SPECIAL = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)


def fixtures() -> list[Fixture]:
    """The tiny models, each with the shape quirk it is there to pin down."""
    gpt2_tiny = dict(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64, **NO_SPECIAL)
    return [
        Fixture("gpt2-tiny", GPT2LMHeadModel, GPT2Config(**gpt2_tiny),
                "GPT-2 basics: learned positions, Conv1D [in, out] weights, tanh GELU, tied lm_head",
                seed=1, n_prompt=12),
        Fixture("gpt2-odd", GPT2LMHeadModel,
                GPT2Config(vocab_size=300, n_embd=48, n_layer=3, n_head=3, n_inner=80,
                           layer_norm_epsilon=1e-6, n_positions=64, **NO_SPECIAL),
                "GPT-2 with n_inner=80 (not 4*n_embd), 3 heads of 16, eps 1e-6, vocab 300",
                seed=2, n_prompt=15),
        Fixture("gpt2-noprefix", GPT2LMHeadModel, GPT2Config(**gpt2_tiny),
                "GPT-2 stored as the hub's gpt2 model.safetensors: names without `transformer.`, "
                "h.N.attn.bias causal-mask buffers [1,1,n_ctx,n_ctx] to ignore, old-style "
                "config.json (n_ctx, no n_inner, no dtype)",
                seed=3, n_prompt=11, post_save=rewrite_as_hub_gpt2,
                notes={"real_hub_file": "openai-community/gpt2 model.safetensors stores 160 tensors "
                       "named wte.weight, h.0.ln_1.weight, ... (no prefix, no lm_head) plus "
                       "h.N.attn.bias float32 [1,1,1024,1024] lower-triangular masks; transformers "
                       "5 no longer has that buffer and drops it as an unexpected key. Old .bin "
                       "files also carried h.N.attn.masked_bias (a scalar); not included here."}),
        Fixture("llama-gqa", LlamaForCausalLM,
                LlamaConfig(vocab_size=320, hidden_size=32, intermediate_size=88, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
                            rms_norm_eps=1e-5, max_position_embeddings=128,
                            tie_word_embeddings=False, **NO_SPECIAL),
                "Llama GQA (4 query heads share 2 kv heads), untied lm_head, rope_theta 1e4, "
                "intermediate 88",
                seed=4, n_prompt=13),
        Fixture("llama-mha", LlamaForCausalLM,
                LlamaConfig(vocab_size=256, hidden_size=48, intermediate_size=120, num_hidden_layers=3,
                            num_attention_heads=4, num_key_value_heads=4, rope_theta=500000.0,
                            rms_norm_eps=1e-6, max_position_embeddings=128,
                            tie_word_embeddings=True, **NO_SPECIAL),
                "Llama MHA, tied embeddings (no lm_head.weight in the file), rope_theta 5e5; "
                "config.oldstyle.json / config.newstyle.json spell rope_theta both ways",
                seed=5, n_prompt=14, post_save=write_config_style_pair),
        Fixture("llama-headdim", LlamaForCausalLM,
                LlamaConfig(vocab_size=256, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                            rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=128,
                            tie_word_embeddings=False, **NO_SPECIAL),
                "explicit head_dim 16 with hidden 48 and 4 heads (q_proj is [64, 48], o_proj "
                "[48, 64]); GQA 4:2",
                seed=6, n_prompt=10),
        Fixture("qwen2-bias", Qwen2ForCausalLM,
                Qwen2Config(vocab_size=384, hidden_size=48, intermediate_size=136, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, rope_theta=1000000.0,
                            rms_norm_eps=1e-6, max_position_embeddings=128,
                            tie_word_embeddings=True, **NO_SPECIAL),
                "Qwen2: q/k/v projections have biases (o_proj has none), GQA 4:2 with "
                "head_dim 12, tied, "
                "rope_theta 1e6; config.json has no attention_bias key, the biases are implied "
                "by model_type qwen2",
                seed=7, n_prompt=16),
        Fixture("mistral-tiny", MistralForCausalLM,
                MistralConfig(vocab_size=512, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, rope_theta=10000.0,
                              rms_norm_eps=1e-5, max_position_embeddings=128, sliding_window=4096,
                              tie_word_embeddings=False, **NO_SPECIAL),
                "model_type mistral, 4 query heads on 1 kv head, sliding_window 4096 (no effect "
                "at this length), untied, vocab 512",
                seed=8, n_prompt=12),
    ]


# ---------------------------------------------------------------- reference numbers

def greedy_with_margins(model: PreTrainedModel, ids: torch.Tensor) -> tuple[np.ndarray, float]:
    """Greedy ids from transformers' generate, and the smallest top-1 minus top-2 logit gap on
    the way: a near tie would let float32 noise flip the argmax between engines."""
    # No min_new_tokens: it works by masking EOS, which would bend the greedy path.
    # An explicit all-ones mask: left to itself, generate masks every prompt position whose id
    # equals pad_token_id, which silently changes the answer when a prompt contains that id.
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                         do_sample=False, use_cache=True, return_dict_in_generate=True,
                         output_logits=True)
    new = out.sequences[0, ids.shape[1]:].numpy().astype(np.int64)
    margins = []
    for step in out.logits:  # each [1, vocab]
        top2 = torch.topk(step[0].float(), 2).values
        margins.append(float(top2[0] - top2[1]))
    return new, min(margins)


MIN_MARGIN = 0.01      # top-1 minus top-2 logit at every greedy step; 50x the logits tolerance
MIN_DISTINCT = 3       # distinct tokens among the 12 greedy ones
SEED_TRIES = 30


def build(fx: Fixture) -> dict[str, Any]:
    """Try seeds fx.seed, fx.seed + 1000, ... until greedy decoding is varied and free of near
    ties, so an engine that is right to float32 rounding is sure to give the same ids."""
    for attempt in range(SEED_TRIES):
        summary = build_with_seed(fx, fx.seed + 1000 * attempt)
        if summary is not None:
            return summary
    raise RuntimeError(f"{fx.name}: no seed in {SEED_TRIES} tries gave a clean greedy path")


def build_with_seed(fx: Fixture, seed: int) -> dict[str, Any] | None:
    """Make, save, reload and measure one fixture; None if this seed's greedy path is unusable."""
    folder = OUT / fx.name
    if folder.exists():
        shutil.rmtree(folder)
    torch.manual_seed(seed)
    fx.config._attn_implementation = "eager"  # plain softmax(QK^T)V, the textbook reference
    model = fx.model_cls(fx.config).eval()
    scale_weights(model, seed)
    model.save_pretrained(folder, safe_serialization=True)
    if fx.post_save is not None:
        fx.post_save(folder)
    saved_config = json.loads((folder / "config.json").read_text())

    # Reload from disk: the reference must be what the files mean, not the object we built.
    reloaded = fx.model_cls.from_pretrained(folder, dtype=torch.float32,
                                            attn_implementation="eager").eval()
    rng = np.random.default_rng(seed)
    vocab = fx.config.vocab_size
    input_ids = rng.integers(0, vocab, size=fx.n_prompt).astype(np.int64)
    ids_t = torch.from_numpy(input_ids)[None]
    with torch.no_grad():
        logits = reloaded(ids_t).logits[0].float().numpy()          # [n, vocab]
        built_logits = model(ids_t).logits[0].float().numpy()
        greedy, margin = greedy_with_margins(reloaded, ids_t)
    drift = float(np.abs(logits - built_logits).max())
    assert drift < 1e-5, f"{fx.name}: reloaded model differs from the built one by {drift}"
    # The cached greedy path must be what one uncached forward over prompt + answer predicts.
    with torch.no_grad():
        whole = torch.from_numpy(np.concatenate([input_ids, greedy]))[None]
        again = reloaded(whole).logits[0, fx.n_prompt - 1:-1].argmax(-1).numpy()
    assert again.tolist() == greedy.tolist(), f"{fx.name}: generate {greedy} vs forward {again}"
    if (len(greedy) != MAX_NEW_TOKENS or len(set(greedy.tolist())) < MIN_DISTINCT
            or margin < MIN_MARGIN):
        print(f"  {fx.name} seed {seed}: margin {margin:.4f}, greedy {greedy.tolist()}; next seed")
        return None

    np.savez(folder / "reference.npz", input_ids=input_ids, logits=logits.astype(np.float32),
             greedy_ids=greedy)
    rope_style = ("rope_parameters" if "rope_parameters" in saved_config
                  else "rope_theta" if "rope_theta" in saved_config else "none (gpt2)")
    tensor_names = sorted(load_file(str(folder / "model.safetensors")).keys())
    meta = {
        "name": fx.name,
        "exercises": fx.exercises,
        "model_class": fx.model_cls.__name__,
        "model_type": saved_config["model_type"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "dtype": "float32",
        "attn_implementation": "eager",
        "seed": seed,
        "weight_init": "N(0, 0.2) matrices, N(0, 0.1) biases and wpe, 1 + N(0, 0.1) norm gains",
        "input_ids": input_ids.tolist(),
        "greedy_ids": greedy.tolist(),
        "generate_call": f"generate(input_ids, max_new_tokens={MAX_NEW_TOKENS}, do_sample=False, "
                         "use_cache=True)",
        "min_greedy_top1_top2_margin": round(margin, 6),
        "logits_abs_max": float(np.abs(logits).max()),
        "logits_std": float(logits.std()),
        "config_rope_style": rope_style,
        "n_params": int(sum(p.numel() for p in reloaded.parameters())),
        "tensor_names": tensor_names,
        **fx.notes,
    }
    (folder / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < MAX_FOLDER_BYTES, f"{fx.name} is {size} bytes"
    return {"name": fx.name, "bytes": size, "rope": rope_style, "margin": margin,
            "greedy": greedy.tolist()}


def main() -> None:
    torch.set_num_threads(1)  # tiny models; leave the other core to whoever shares the machine
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for fx in fixtures():
        s = build(fx)
        total += s["bytes"]
        print(f"{s['name']:15s} {s['bytes'] / 1024:7.1f} KB  config: {s['rope']:14s} "
              f"margin {s['margin']:.3f}  greedy {s['greedy']}")
    print(f"total {total / 1024:.1f} KB  (transformers {transformers.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
