"""GGUF files (llama.cpp's format) -> a Hugging Face-style config, float32 weights and tokenizer data.

The file is checked before anything is trusted: its header is walked with every length bounded by
the bytes that are really there, so a truncated, corrupt or foreign file gives a WeightsError
(never a huge allocation or another exception). Tensors are dequantized to float32 once, renamed
to the Hugging Face names of docs/architecture.md, and the result is cached next to the GGUF as
`<stem>.f32.safetensors`, memory-mapped on every later load.

Llama 3.1 and later GGUFs carry `rope_freqs.weight`: one divisor per rotary pair that llama.cpp's
converter works out from the model's Llama 3 rope scaling, and that llama.cpp divides each pair's
frequency by. It is not a weight: it goes into the config as `rope_freq_factors`.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fwdtui.errors import ModelNotFoundError, WeightsError
from fwdtui.loaders.download import ProgressCallback, _no_progress

SUPPORTED_ARCHS = ("llama", "qwen2")
# Bump when the cached contents change meaning. 2: the config holds rope_freq_factors and the tokenizer data
# SentencePiece's scores (a version-1 cache lacks both, so it must be rebuilt, not trusted).
CACHE_VERSION = "2"
GGUF_MAGIC = b"GGUF"
MAX_DIMS = 4  # ggml tensors have at most 4 dimensions

BAD_FILE_FIX = (
    "Download it again (fwdtui download smollm2-135m, or fetch the .gguf anew), "
    "or pass --model PATH to another model folder or .gguf file."
)


# --- checking the file's layout before gguf reads it ---------------------------------------------

# GGUF metadata value types -> bytes of one scalar (8 = string, 9 = array are handled apart)
_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Reads little-endian numbers from a byte buffer, refusing to go past its end."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf, self.pos, self.size, self.path = buf, 0, len(buf), path

    def require(self, n: int, what: str) -> None:
        """Fail unless `n` more bytes are there (checked before a loop that reads them)."""
        if n < 0 or n > self.size - self.pos:
            raise WeightsError(
                f"{self.path.name} is truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, "
                f"but the file has {self.size} bytes.",
                BAD_FILE_FIX,
            )

    def take(self, n: int, what: str) -> int:
        self.require(n, what)
        start = self.pos
        self.pos += n
        return start

    def u32(self, what: str) -> int:
        return struct.unpack_from("<I", self.buf, self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack_from("<Q", self.buf, self.take(8, what))[0]

    def string(self, what: str) -> bytes:
        n = self.u64(what)
        start = self.take(n, what)
        return bytes(self.buf[start : start + n])


def _skip_value(cur: _Cursor, vtype: int, key: str) -> None:
    """Step over one metadata value; every element costs at least one byte, so this always ends."""
    if vtype in _SCALAR_SIZE:
        cur.take(_SCALAR_SIZE[vtype], key)
    elif vtype == _STRING:
        cur.string(key)
    elif vtype == _ARRAY:
        item_type = cur.u32(key)
        count = cur.u64(key)
        if item_type in _SCALAR_SIZE:
            cur.take(count * _SCALAR_SIZE[item_type], key)
            return
        min_item = {_STRING: 8, _ARRAY: 12}.get(item_type)
        if min_item is None:
            raise WeightsError(f"Metadata {key!r} has an unknown item type {item_type}.", BAD_FILE_FIX)
        cur.require(count * min_item, key)  # a huge count in a damaged file fails here, not in the loop
        for _ in range(count):
            _skip_value(cur, item_type, key)
    else:
        raise WeightsError(f"Metadata {key!r} has an unknown value type {vtype}.", BAD_FILE_FIX)


def check_layout(path: Path) -> None:
    """Walk the header of `path` with bounds checks; raise WeightsError if it is not a sound GGUF."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    if size < 24:
        raise WeightsError(f"{path.name} is only {size} bytes: not a GGUF file (truncated?).", BAD_FILE_FIX)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != GGUF_MAGIC:
            raise WeightsError(
                f"{path.name} is not a GGUF file (it starts with {bytes(buf[:4])!r}, not b'GGUF').", BAD_FILE_FIX
            )
        cur = _Cursor(buf, path)
        cur.take(4, "magic")
        version = cur.u32("version")
        if version not in (2, 3):
            raise WeightsError(
                f"{path.name} is GGUF version {version}; we read versions 2 and 3.",
                "Convert it again with a current llama.cpp, or pass --model PATH to another file.",
            )
        n_tensors = cur.u64("tensor count")
        n_kv = cur.u64("metadata count")
        cur.require(n_kv * 12, "metadata")  # each entry takes at least 12 bytes
        alignment = 32
        for _ in range(n_kv):
            key = cur.string("metadata key").decode("utf-8", "replace")
            vtype = cur.u32(key)
            if key == "general.alignment" and vtype == 4:
                alignment = struct.unpack_from("<I", buf, cur.take(4, key))[0]
                cur.pos -= 4  # read again by _skip_value below
                if alignment == 0 or alignment & (alignment - 1):
                    raise WeightsError(f"{path.name} has an invalid alignment {alignment}.", BAD_FILE_FIX)
            _skip_value(cur, vtype, key)
        cur.require(n_tensors * 24, "tensor table")  # each entry takes at least 24 bytes
        tensors = []
        for _ in range(n_tensors):
            name = cur.string("tensor name").decode("utf-8", "replace")
            n_dims = cur.u32(name)
            if not 1 <= n_dims <= MAX_DIMS:
                raise WeightsError(f"Tensor {name!r} claims {n_dims} dimensions.", BAD_FILE_FIX)
            dims = [cur.u64(name) for _ in range(n_dims)]
            raw_type = cur.u32(name)
            offset = cur.u64(name)
            try:
                qtype = GGMLQuantizationType(raw_type)
                block_size, type_size = GGML_QUANT_SIZES[qtype]
            except (ValueError, KeyError):
                raise WeightsError(f"Tensor {name!r} has an unknown type {raw_type}.", BAD_FILE_FIX) from None
            if dims[0] % block_size:
                raise WeightsError(
                    f"Tensor {name!r} rows of {dims[0]} are not whole {qtype.name} blocks.", BAD_FILE_FIX
                )
            tensors.append((name, int(np.prod(dims, dtype=object)) // block_size * type_size, offset))
        data_start = -(-cur.pos // alignment) * alignment  # the data section starts aligned
        for name, nbytes, offset in tensors:
            end = data_start + offset + nbytes
            if end > size:
                raise WeightsError(
                    f"{path.name} is truncated: tensor {name!r} ends at byte {end} of a {size}-byte file.",
                    BAD_FILE_FIX,
                )


def open_gguf(path: Path) -> Any:
    """A `gguf.GGUFReader` (memory-mapped) on a file that passed `check_layout`."""
    from gguf import GGUFReader

    if not path.is_file():
        raise ModelNotFoundError(
            f"No GGUF file at {path}.", "Check the path, or download one: fwdtui download smollm2-135m"
        )
    check_layout(path)
    try:
        return GGUFReader(path)
    except Exception as err:  # gguf raises ValueError, KeyError, IndexError... on damaged files
        raise WeightsError(
            f"{path.name} is corrupt or not a GGUF file ({type(err).__name__}: {err}).", BAD_FILE_FIX
        ) from err


# --- metadata -> Hugging Face config and tokenizer data -----------------------------------------


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.types:
        return default
    try:
        return field.contents()
    except (UnicodeDecodeError, ValueError, IndexError) as err:
        raise WeightsError(f"Metadata {key!r} cannot be read ({err}).", BAD_FILE_FIX) from err


def architecture(reader: Any) -> str:
    """`general.architecture`, checked against the ones we can run."""
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise WeightsError(
            f"This GGUF holds a {arch or 'unnamed'!s} model; fwdtui runs {' and '.join(SUPPORTED_ARCHS)} models.",
            "Pass --model PATH to a Llama-family GGUF (for example SmolLM2: fwdtui download smollm2-135m).",
        )
    return arch


def _short_float(value: float) -> float:
    """A float32 from the file as the decimal it was written from: 9.99999974e-06 -> 1e-05."""
    return float(str(np.float32(value)))


def _number(value: Any, key: str, kind: type = int) -> Any:
    """A metadata value as a number, or WeightsError when a damaged file stored something else there."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise WeightsError(f"The GGUF metadata {key} is {value!r}, not a number.", BAD_FILE_FIX)
    if not np.isfinite(value):
        raise WeightsError(f"The GGUF metadata {key} is {value!r}, not a finite number.", BAD_FILE_FIX)
    return kind(value)


def hf_config(reader: Any) -> dict[str, Any]:
    """A Hugging Face `config.json`-style dict built from the GGUF metadata (and its rope_freqs.weight)."""
    arch = architecture(reader)

    def need(key: str) -> Any:
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise WeightsError(f"The GGUF metadata lacks {arch}.{key}.", BAD_FILE_FIX)
        return _number(value, f"{arch}.{key}")

    def optional(key: str, default: Any, kind: type = int) -> Any:
        value = _field(reader, f"{arch}.{key}", default)
        return default if value is None else _number(value, f"{arch}.{key}", kind)

    names = {t.name for t in reader.tensors}
    n_embd = need("embedding_length")
    n_head = need("attention.head_count")
    n_kv_head = optional("attention.head_count_kv", n_head)
    head_dim = optional("attention.key_length", None) or optional("rope.dimension_count", None)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab_size = optional("vocab_size", None) or (len(tokens.data) if tokens is not None else None)
    if vocab_size is None:
        embd = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
        vocab_size = int(embd.shape[-1]) if embd is not None else 0
    config = {
        "model_type": arch,
        "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
        "hidden_size": n_embd,
        "num_hidden_layers": need("block_count"),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv_head,
        "head_dim": int(head_dim) if head_dim else (n_embd // n_head if n_head > 0 else 0),
        "intermediate_size": need("feed_forward_length"),
        "rms_norm_eps": _short_float(optional("attention.layer_norm_rms_epsilon", 1e-6, float)),
        "rope_theta": _short_float(optional("rope.freq_base", 10000.0, float)),
        "max_position_embeddings": optional("context_length", 2048),
        "vocab_size": int(vocab_size),
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_q.bias" in names,
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
    }
    _check_config(config, len(reader.tensors))
    rotated = optional("rope.dimension_count", None)
    if rotated is not None and int(rotated) != config["head_dim"]:
        raise WeightsError(
            f"This GGUF rotates {int(rotated)} of each head's {config['head_dim']} dimensions (partial RoPE); "
            "fwdtui rotates whole heads.", "Use a Llama, Qwen2 or Mistral GGUF.")
    factors = rope_freq_factors(reader, config["head_dim"])
    stretch = linear_rope_factor(reader, arch)
    if stretch is not None:  # linear scaling divides every position, i.e. every pair's frequency, by one factor
        factors = [f * stretch for f in (factors or [1.0] * (config["head_dim"] // 2))]
    if factors is not None:
        config["rope_freq_factors"] = factors  # our key, not transformers': ModelConfig.from_hf reads it
    return config


def linear_rope_factor(reader: Any, arch: str) -> float | None:
    """`{arch}.rope.scaling.*`: None for plain RoPE, the factor for linear scaling; YaRN and others are refused."""
    kind = _field(reader, f"{arch}.rope.scaling.type")
    if kind is None or kind == "none":
        return None
    if kind != "linear":
        raise WeightsError(
            f"This GGUF uses {str(kind)[:40]!r} rope scaling, which fwdtui does not implement (it would run with "
            "wrong positions).", "Use a GGUF with plain RoPE, linear scaling or Llama 3's rope_freqs.")
    factor = _number(_field(reader, f"{arch}.rope.scaling.factor"), f"{arch}.rope.scaling.factor", float)
    if not 0 < factor < 1e6:
        raise WeightsError(f"{arch}.rope.scaling.factor = {factor!r} is not a positive number.", BAD_FILE_FIX)
    return factor


def _check_config(config: dict[str, Any], n_tensors: int) -> None:
    """Sizes that are positive and fit together; a damaged header must not drive a huge loop."""
    sizes = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "intermediate_size", "vocab_size")
    bad = [k for k in sizes if not 0 < config[k] < 1 << 24]
    if config["num_hidden_layers"] * 9 > n_tensors:  # every layer has at least 9 tensors
        bad.append("num_hidden_layers")
    if config["num_attention_heads"] % max(config["num_key_value_heads"], 1) or config["head_dim"] % 2:
        bad.append("num_key_value_heads/head_dim")
    if bad:
        raise WeightsError(f"The GGUF metadata has impossible values for {', '.join(bad)}.", BAD_FILE_FIX)


def tokenizer_meta(reader: Any, path: Path) -> dict[str, Any]:
    """The tokenizer as the GGUF stores it: vocabulary, merges, token types, specials, template."""
    return {
        "model": _field(reader, "tokenizer.ggml.model"),  # "gpt2" = byte-level BPE; "llama" = SentencePiece
        "pre": _field(reader, "tokenizer.ggml.pre"),  # llama.cpp's name for the pre-tokenizer regex
        "tokens": _field(reader, "tokenizer.ggml.tokens", []),
        "merges": _field(reader, "tokenizer.ggml.merges", []),
        "token_types": _field(reader, "tokenizer.ggml.token_type", []),
        "scores": _field(reader, "tokenizer.ggml.scores"),  # SentencePiece: which pair merges first
        "bos_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_id": _field(reader, "tokenizer.ggml.eos_token_id"),
        "unk_id": _field(reader, "tokenizer.ggml.unknown_token_id"),
        "pad_id": _field(reader, "tokenizer.ggml.padding_token_id"),
        "add_bos_token": _field(reader, "tokenizer.ggml.add_bos_token"),
        "add_eos_token": _field(reader, "tokenizer.ggml.add_eos_token"),
        "add_space_prefix": _field(reader, "tokenizer.ggml.add_space_prefix"),
        "chat_template": _field(reader, "tokenizer.chat_template"),
        "name": path.stem,  # e.g. SmolLM2-135M-Instruct.Q4_1
    }


# --- tensors ------------------------------------------------------------------------------------

_GLOBAL_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
ROPE_FREQS = "rope_freqs.weight"  # read into the config by `rope_freq_factors`, not a weight
# Phi-3's LongRoPE tables. llama.cpp writes them only for architectures `architecture` refuses (phi3, phimoe,
# minicpm, minicpm3), so no file that gets as far as its tensors holds them; they are named here, not refused.
_SKIPPED = {"rope_factors_long.weight", "rope_factors_short.weight"}


def hf_name(gguf_name: str) -> str | None:
    """llama.cpp's tensor name -> ours (the Hugging Face name without `model.`); None if unknown."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".")  # blk.{i}.{kind}.{weight|bias}
    if len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_NAMES:
        return f"layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}.{parts[3]}"
    return None


def permute_qk_like_llamacpp(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's converter does to Q/K rows: HF's half-split rotary pairs -> adjacent pairs.

    Hugging Face's rotary embedding rotates dimension i of a head together with i + head_dim/2;
    llama.cpp rotates dimensions 2i and 2i+1. So in each head, row i goes to row 2i and row
    i + head_dim/2 goes to row 2i + 1. Shape [n_head * head_dim, ...] is kept.
    """
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """The exact inverse of `permute_qk_like_llamacpp`: rows 2i, 2i+1 of each head -> rows i, i + head_dim/2."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_freq_factors(reader: Any, head_dim: int) -> list[float] | None:
    """The divisor of each rotary pair's frequency from `rope_freqs.weight` [head_dim/2], or None without one.

    llama.cpp turns pair i by position * base_freq_i / factor_i; its converter writes these factors for
    Llama 3 rope scaling (1 for fast pairs, the scaling factor for slow ones, a blend between).
    """
    from fwdtui.loaders.dequant import dequantize

    tensor = next((t for t in reader.tensors if t.name == ROPE_FREQS), None)
    if tensor is None:
        return None
    n_pairs = head_dim // 2
    n_values = int(np.prod(tensor.shape.tolist(), dtype=np.int64))
    if n_values != n_pairs:
        raise WeightsError(
            f"{ROPE_FREQS} holds {n_values} values, but heads of {head_dim} dimensions rotate {n_pairs} pairs: "
            "the file and its metadata disagree.", BAD_FILE_FIX)
    try:
        factors = dequantize(tensor.data, tensor.tensor_type, (n_pairs,)).astype(np.float64)
    except (ValueError, NotImplementedError) as err:
        raise WeightsError(f"Cannot dequantize {ROPE_FREQS} ({tensor.tensor_type.name}): {err}", BAD_FILE_FIX) from err
    bad = np.flatnonzero(~((factors > 0) & (factors < 1e12)))  # nan fails both comparisons
    if bad.size:
        raise WeightsError(f"{ROPE_FREQS} holds {factors[bad[0]]:g} for pair {bad[0]}; each factor must be a "
                           "positive number below 1e12.", BAD_FILE_FIX)
    return factors.tolist()  # exact float32 values as Python floats: they survive JSON unchanged


def read_weights(reader: Any, config: dict[str, Any], progress: ProgressCallback) -> dict[str, np.ndarray]:
    """Every tensor dequantized to float32, in Hugging Face names, shapes and row order."""
    from fwdtui.loaders.dequant import dequantize

    weights: dict[str, np.ndarray] = {}
    n = len(reader.tensors)
    for i, tensor in enumerate(reader.tensors):
        name = hf_name(tensor.name)
        if name is None:
            if tensor.name == ROPE_FREQS or tensor.name in _SKIPPED:
                continue
            raise WeightsError(f"Unexpected tensor {tensor.name!r} in a {config['model_type']} GGUF.", BAD_FILE_FIX)
        progress(f"Dequantizing {tensor.name} ({tensor.tensor_type.name})", i, n)
        # GGUF lists dimensions fastest-first; numpy wants slowest-first: [out, in] for a matrix.
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        try:
            w = dequantize(tensor.data, tensor.tensor_type, shape)
        except (ValueError, NotImplementedError) as err:
            raise WeightsError(
                f"Cannot dequantize {tensor.name} ({tensor.tensor_type.name}): {err}", BAD_FILE_FIX
            ) from err
        if config["model_type"] == "llama" and name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
            # llama.cpp permuted these rows for its interleaved rotary; put them back in HF order.
            heads = config["num_attention_heads"] if ".q_proj." in name else config["num_key_value_heads"]
            if w.shape[0] != heads * config["head_dim"]:
                raise WeightsError(
                    f"{tensor.name} has {w.shape[0]} rows, but {heads} heads of {config['head_dim']} need "
                    f"{heads * config['head_dim']}: the metadata and the tensors disagree.", BAD_FILE_FIX)
            w = unpermute_qk(w, heads)
        weights[name] = np.ascontiguousarray(w, dtype=np.float32)
    progress("Dequantized", n, n)
    _check_shapes(weights, config)
    return weights


def _check_shapes(weights: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Every weight the model needs is there, with the shape the config implies."""
    d, hd = config["hidden_size"], config["head_dim"]
    q_out, kv_out = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    expected = {"embed_tokens.weight": (config["vocab_size"], d), "norm.weight": (d,)}
    if not config["tie_word_embeddings"]:
        expected["lm_head.weight"] = (config["vocab_size"], d)
    for i in range(config["num_hidden_layers"]):
        p = f"layers.{i}."
        expected |= {
            p + "input_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (q_out, d),
            p + "self_attn.k_proj.weight": (kv_out, d),
            p + "self_attn.v_proj.weight": (kv_out, d),
            p + "self_attn.o_proj.weight": (d, q_out),
            p + "post_attention_layernorm.weight": (d,),
            p + "mlp.gate_proj.weight": (config["intermediate_size"], d),
            p + "mlp.up_proj.weight": (config["intermediate_size"], d),
            p + "mlp.down_proj.weight": (d, config["intermediate_size"]),
        }
    for name, shape in expected.items():
        if name not in weights:
            raise WeightsError(f"The GGUF lacks the weight {name}.", BAD_FILE_FIX)
        if weights[name].shape != shape:
            raise WeightsError(f"{name} has shape {weights[name].shape}, the config implies {shape}.", BAD_FILE_FIX)


# --- the float32 cache next to the GGUF ---------------------------------------------------------


def cache_path(path: Path) -> Path:
    """`<dir>/<stem>.f32.safetensors` beside the GGUF."""
    return path.with_name(f"{path.stem}.f32.safetensors")


def _source_key(path: Path) -> dict[str, str]:
    """What ties a cache to one exact GGUF: a changed size or mtime makes the cache stale."""
    st = path.stat()
    return {"fwdtui_cache": CACHE_VERSION, "source_size": str(st.st_size), "source_mtime_ns": str(st.st_mtime_ns)}


def write_cache(path: Path, config: dict, weights: dict[str, np.ndarray], tok_meta: dict) -> Path | None:
    """Save the float32 weights (config and tokenizer data in the header) atomically; None if we cannot."""
    from safetensors.numpy import save_file

    target = cache_path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    metadata = _source_key(path) | {"config": json.dumps(config), "tokenizer": json.dumps(tok_meta)}
    try:
        save_file(weights, str(tmp), metadata=metadata)
        os.chmod(tmp, path.stat().st_mode & 0o666)  # as readable as the GGUF it comes from
        os.replace(tmp, target)  # readers see the old state or the whole new file, never half of it
    except OSError:
        # A read-only folder or a full disk only costs speed next time: no cache, same weights.
        tmp.unlink(missing_ok=True)
        return None
    return target


def _read_header(f: Any) -> tuple[int, dict[str, Any]]:
    (n,) = struct.unpack("<Q", f.read(8))
    if n > 100_000_000:
        raise ValueError("header too large")
    return 8 + n, json.loads(f.read(n))


def read_cache(path: Path) -> tuple[dict, dict[str, np.ndarray], dict] | None:
    """The cached (config, weights, tokenizer data) when the cache matches this GGUF, else None.

    The weights are memory-mapped (copy-on-write): nothing is read until it is used.
    """
    target = cache_path(path)
    if not target.is_file():
        return None
    try:
        with open(target, "rb") as f:
            data_start, header = _read_header(f)
        meta = header.pop("__metadata__", {})
        key = _source_key(path)
        if any(meta.get(k) != v for k, v in key.items()):
            return None
        # One copy-on-write map of the whole file; each weight is a view into it.
        buf = np.memmap(target, dtype=np.uint8, mode="c")
        weights = {}
        for name, info in header.items():
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            if info["dtype"] != "F32" or data_start + end > buf.size or end - begin != 4 * int(np.prod(shape)):
                return None
            weights[name] = buf[data_start + begin : data_start + end].view("<f4").reshape(shape)
        return json.loads(meta["config"]), weights, json.loads(meta["tokenizer"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError, struct.error):
        return None  # a damaged cache is rebuilt from the GGUF


# --- entry points -------------------------------------------------------------------------------


def load_gguf(path: str | Path, progress: ProgressCallback | None = None) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Load a GGUF file: (Hugging Face-style config, float32 weights, tokenizer metadata)."""
    path = Path(path)
    progress = progress or _no_progress
    cached = read_cache(path) if path.is_file() else None
    if cached is not None:
        progress(f"Memory-mapped {cache_path(path).name}", 1, 1)
        return cached
    progress(f"Reading {path.name}", 0, None)
    reader = open_gguf(path)
    config = hf_config(reader)
    tok_meta = tokenizer_meta(reader, path)
    weights = read_weights(reader, config, progress)
    progress(f"Caching float32 weights as {cache_path(path).name}", 0, None)
    write_cache(path, config, weights, tok_meta)
    return config, weights, tok_meta


def tokenizer_from_meta(tok_meta: dict) -> Any:
    """Build our tokenizer from the GGUF's tokenizer data: byte-level BPE ("gpt2") or SentencePiece ("llama")."""
    if tok_meta.get("model") == "llama":
        from fwdtui.tokenizers.spm import from_gguf_metadata as spm_from_gguf_metadata

        return spm_from_gguf_metadata(tok_meta)
    if tok_meta.get("model") not in (None, "gpt2"):
        raise WeightsError(
            f"This GGUF uses a {tok_meta.get('model')!r} tokenizer; fwdtui reads byte-level BPE ('gpt2') "
            "and SentencePiece ('llama') ones.",
            "Pass --model PATH to a model with one of those (Llama 2, Mistral, GPT-2, SmolLM2, Llama 3, Qwen2.5).",
        )
    from fwdtui.tokenizers.bpe import from_gguf_metadata  # imported here: tokenizers need not exist to read weights

    return from_gguf_metadata(
        tok_meta["tokens"], tok_meta["merges"], tok_meta["token_types"], tok_meta["pre"],
        tok_meta["bos_id"], tok_meta["eos_id"], tok_meta["chat_template"], tok_meta["name"],
        add_bos=bool(tok_meta.get("add_bos_token")),  # Llama 3 says true: <|begin_of_text|> before a prompt
    )


def load_gguf_model(
    path: str | Path, progress: ProgressCallback | None = None
) -> tuple[dict, dict[str, np.ndarray], Any]:
    """Load a GGUF file: (Hugging Face-style config, float32 weights, tokenizer)."""
    config, weights, tok_meta = load_gguf(path, progress)
    return config, weights, tokenizer_from_meta(tok_meta)

