"""Loading a model folder in Hugging Face layout: config.json, *.safetensors, tokenizer files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fwdtui.core.config import ModelConfig
from fwdtui.errors import ConfigError, WeightsError
from fwdtui.loaders.safetensors_loader import load_safetensors

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_IGNORED = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")  # buffers, not parameters
_MAX_JSON = 64 * 1024 * 1024  # bytes; the largest shard indexes are a few hundred kilobytes


def refuse_pickle(path: Path) -> WeightsError:
    return WeightsError(
        f"{path.name} is a PyTorch pickle checkpoint; fwdtui never unpickles files (loading one can run any code).",
        "Use the model's .safetensors file instead (most hub models have one), or convert it with a tool you trust.",
    )


def read_config(folder: Path) -> ModelConfig:
    """`config.json` of a model folder, parsed and checked (ConfigError or WeightsError if it is unusable)."""
    path = folder / "config.json"
    if not path.is_file():
        raise WeightsError(f"{folder} has no config.json.", "A model folder needs config.json next to its .safetensors file.")
    raw = read_json(path, "Re-download the model or fix the file.")
    return ModelConfig.from_hf(raw)


def read_json(path: Path, fix: str) -> object:
    """A small JSON file (a config or an index), with every way of being broken turned into ConfigError."""
    try:
        size = path.stat().st_size
        if size > _MAX_JSON:  # real configs and shard indexes are kilobytes; do not read gigabytes to find out
            raise ConfigError(f"{path} is {size} bytes, far too big for a config file.", fix)
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # not UTF-8, not JSON, or a number of more than 4300 digits
        raise ConfigError(f"{path} is not valid JSON ({str(err)[:120]}).", fix) from None
    except RecursionError:  # thousands of nested brackets: a damaged or hostile file
        raise ConfigError(f"{path} is not valid JSON (nested too deeply).", fix) from None
    except OSError as err:
        raise ConfigError(f"Cannot read {path}: {err.strerror or err}.", "Check the file's permissions and the disk.") from None


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter the forward pass reads, with the shape it must have (contract names)."""
    d, f, v = cfg.n_embd, cfg.n_inner, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.family == "gpt2":
        shapes |= {"wte.weight": (v, d), "wpe.weight": (cfg.n_ctx, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            shapes |= {
                p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
                p + "mlp.c_fc.weight": (d, f), p + "mlp.c_fc.bias": (f,),
                p + "mlp.c_proj.weight": (f, d), p + "mlp.c_proj.bias": (d,),
            }
        return shapes
    qd, kvd = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    shapes |= {"embed_tokens.weight": (v, d), "norm.weight": (d,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (v, d)
    for i in range(cfg.n_layer):
        p = f"layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (qd, d), p + "self_attn.k_proj.weight": (kvd, d),
            p + "self_attn.v_proj.weight": (kvd, d), p + "self_attn.o_proj.weight": (d, qd),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d), p + "mlp.down_proj.weight": (d, f),
        }
        if cfg.attn_bias:
            shapes |= {p + "self_attn.q_proj.bias": (qd,), p + "self_attn.k_proj.bias": (kvd,), p + "self_attn.v_proj.bias": (kvd,)}
        if cfg.attn_out_bias:
            shapes[p + "self_attn.o_proj.bias"] = (d,)
        if cfg.mlp_bias:
            shapes |= {p + "mlp.gate_proj.bias": (f,), p + "mlp.up_proj.bias": (f,), p + "mlp.down_proj.bias": (d,)}
    return shapes


def normalize_weights(cfg: ModelConfig, raw: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Strip the `transformer.` / `model.` prefixes, drop buffers, check every shape; float32 out."""
    out: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        if name.endswith(_IGNORED):
            continue
        for prefix in ("transformer.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out[name] = arr
    if cfg.family == "gpt2":
        out.pop("lm_head.weight", None)  # GPT-2 ties it to wte; save_pretrained may or may not write it
    elif cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    expected = expected_shapes(cfg)
    missing = [n for n in expected if n not in out]
    if missing:
        raise WeightsError(
            f"{source} lacks {len(missing)} tensor(s) the config calls for, e.g. {missing[0]!r}.",
            "The weights do not match config.json: download the model again or fix the folder.",
        )
    for name, shape in expected.items():
        arr = out[name]
        if tuple(arr.shape) != shape:
            raise WeightsError(
                f"{source}: tensor {name!r} has shape {tuple(arr.shape)}, the config needs {shape}.",
                "The weights do not match config.json: download the model again.",
            )
        if arr.dtype != np.float32:
            if not np.issubdtype(arr.dtype, np.floating):
                raise WeightsError(f"{source}: tensor {name!r} is {arr.dtype}, not a float.", "Use a float checkpoint.")
            out[name] = arr.astype(np.float32)
    return {name: out[name] for name in expected}


def load_weights(folder: Path) -> tuple[dict[str, np.ndarray], list[Path]]:
    """All tensors from model.safetensors, or from the shards its index lists."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = read_json(index, "Download the model again.")["weight_map"]  # type: ignore[index]
            shard_names = sorted(set(weight_map.values()))
        except (ConfigError, KeyError, TypeError, AttributeError):
            raise WeightsError(f"{index} is not a valid shard index.", "Download the model again.") from None
        # Shards are plain file names beside the index; anything else (a number, "../x", "/etc/x") is damage.
        if not all(isinstance(n, str) and n and Path(n).name == n and n not in (".", "..") for n in shard_names):
            raise WeightsError(f"{index} lists shard names that are not files in {folder.name}.", "Download the model again.")
        files = [folder / name for name in shard_names]
    else:
        candidates = sorted(folder.glob("*.safetensors"))
        if candidates:
            files = candidates
        else:
            pickles = [p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
            if pickles:
                raise refuse_pickle(pickles[0])
            raise WeightsError(f"{folder} has no .safetensors weights.", "Download the model with `fwdtui download NAME`.")
    tensors: dict[str, np.ndarray] = {}
    for path in files:
        part, _ = load_safetensors(path)
        tensors.update(part)
    return tensors, files
