"""The GGUF loader on tiny GGUF files written here: config, names, Q/K order, cache, damaged files."""

from __future__ import annotations

import os
import struct
import sys
import types
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize as ref_dequantize
from gguf.quants import quantize as ref_quantize

from fwdtui.errors import FwdtuiError, ModelNotFoundError, WeightsError
from fwdtui.loaders import gguf_loader, load_path
from fwdtui.loaders.gguf_loader import (
    cache_path,
    hf_name,
    load_gguf,
    load_gguf_model,
    permute_qk_like_llamacpp,
    unpermute_qk,
)

N_EMBD, N_HEAD, N_KV_HEAD, HEAD_DIM, N_INNER, N_LAYER = 64, 4, 2, 16, 96, 2
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(ord("a"), ord("a") + 26)] + [
    "ab", "abc", "Ġ",
]
MERGES = ["a b", "ab c"]
TOKEN_TYPES = [3, 3, 3] + [1] * (len(TOKENS) - 3)
VOCAB = len(TOKENS)  # 32


def _stored(w: np.ndarray, qtype: T) -> tuple[np.ndarray, np.ndarray]:
    """(what the GGUF stores, what a loader must give back) for HF-order weight `w` in format `qtype`."""
    if qtype == T.F32:
        return w, w
    if qtype == T.F16:
        return w.astype(np.float16), w.astype(np.float16).astype(np.float32)
    raw = ref_quantize(w, qtype)
    return raw, ref_dequantize(raw, qtype).reshape(w.shape)


def write_tiny_gguf(
    path: Path,
    arch: str = "llama",
    tied: bool = True,
    seed: int = 0,
    biases: bool = False,
    rope_theta: float = 100000.0,
    n_ctx: int = 128,
    rope_freqs: np.ndarray | None = None,
    rope_scaling: tuple[str, float] | None = None,
    rope_dims: int = HEAD_DIM,
    add_bos: bool | None = None,
) -> dict[str, np.ndarray]:
    """Write a 2-layer model like llama.cpp's converter would; returns the weights a loader must give back.

    `rope_freqs` [HEAD_DIM/2] is stored as llama.cpp's `rope_freqs.weight` (float32) when given.
    """
    rng = np.random.default_rng(seed)
    expected: dict[str, np.ndarray] = {}
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(N_LAYER)
    w.add_context_length(n_ctx)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_INNER)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(rope_theta)
    w.add_rope_dimension_count(rope_dims)
    if rope_dims != HEAD_DIM:  # partial rotary: the head size is then stated on its own
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
    if rope_scaling is not None:  # {arch}.rope.scaling.type / .factor, as llama.cpp's converter writes them
        w.add_string(f"{arch}.rope.scaling.type", rope_scaling[0])
        w.add_float32(f"{arch}.rope.scaling.factor", rope_scaling[1])
    w.add_vocab_size(VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(TOKENS)
    w.add_token_types(TOKEN_TYPES)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.add_eos_token_id(2)
    w.add_chat_template("{{ messages }}")

    def add(gguf_name: str, ours: str, shape: tuple[int, ...], qtype: T, permute_heads: int = 0) -> None:
        hf = rng.normal(0, 0.1, size=shape).astype(np.float32)  # Hugging Face order
        stored, back = _stored(hf, qtype)
        if permute_heads and arch == "llama":
            stored = permute_qk_like_llamacpp(stored, permute_heads)  # as convert_hf_to_gguf does
        w.add_tensor(gguf_name, stored, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
        expected[ours] = back

    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", np.asarray(rope_freqs, dtype=np.float32))
    add("token_embd.weight", "embed_tokens.weight", (VOCAB, N_EMBD), T.Q8_0)
    for i in range(N_LAYER):
        b, p = f"blk.{i}.", f"layers.{i}."
        add(b + "attn_norm.weight", p + "input_layernorm.weight", (N_EMBD,), T.F32)
        add(b + "attn_q.weight", p + "self_attn.q_proj.weight", (N_HEAD * HEAD_DIM, N_EMBD), T.Q8_0, N_HEAD)
        add(b + "attn_k.weight", p + "self_attn.k_proj.weight", (N_KV_HEAD * HEAD_DIM, N_EMBD), T.F16, N_KV_HEAD)
        add(b + "attn_v.weight", p + "self_attn.v_proj.weight", (N_KV_HEAD * HEAD_DIM, N_EMBD), T.F16)
        add(b + "attn_output.weight", p + "self_attn.o_proj.weight", (N_EMBD, N_HEAD * HEAD_DIM), T.F32)
        if biases:
            add(b + "attn_q.bias", p + "self_attn.q_proj.bias", (N_HEAD * HEAD_DIM,), T.F32, N_HEAD)
            add(b + "attn_k.bias", p + "self_attn.k_proj.bias", (N_KV_HEAD * HEAD_DIM,), T.F32, N_KV_HEAD)
            add(b + "attn_v.bias", p + "self_attn.v_proj.bias", (N_KV_HEAD * HEAD_DIM,), T.F32)
        add(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", (N_EMBD,), T.F32)
        add(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", (N_INNER, N_EMBD), T.Q8_0)
        add(b + "ffn_up.weight", p + "mlp.up_proj.weight", (N_INNER, N_EMBD), T.Q8_0)
        add(b + "ffn_down.weight", p + "mlp.down_proj.weight", (N_EMBD, N_INNER), T.F16)
    add("output_norm.weight", "norm.weight", (N_EMBD,), T.F32)
    if not tied:
        add("output.weight", "lm_head.weight", (VOCAB, N_EMBD), T.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "tiny.Q8_0.gguf"
    return path, write_tiny_gguf(path)


# --- Q/K row order ------------------------------------------------------------------------------


def test_permute_moves_half_split_pairs_next_to_each_other() -> None:
    # one head of 8 rows: HF pairs rows (0,4) (1,5) (2,6) (3,7) for rotary; llama.cpp wants them adjacent
    rows = np.arange(8)
    assert permute_qk_like_llamacpp(rows, n_head=1).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    # two heads: each head is permuted on its own
    assert permute_qk_like_llamacpp(np.arange(8), n_head=2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("n_head", [1, 3, 9])
def test_unpermute_is_the_exact_inverse(n_head: int) -> None:
    w = np.random.default_rng(n_head).normal(size=(n_head * 64, 40)).astype(np.float32)
    permuted = permute_qk_like_llamacpp(w, n_head)
    assert not np.array_equal(permuted, w)
    np.testing.assert_array_equal(unpermute_qk(permuted, n_head), w)
    np.testing.assert_array_equal(permute_qk_like_llamacpp(unpermute_qk(w, n_head), n_head), w)
    bias = w[:, 0].copy()
    np.testing.assert_array_equal(unpermute_qk(permute_qk_like_llamacpp(bias, n_head), n_head), bias)


# --- loading ------------------------------------------------------------------------------------


def test_config_from_metadata(tiny: tuple[Path, dict]) -> None:
    config, _, _ = load_gguf(tiny[0])
    assert config == {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": N_EMBD,
        "num_hidden_layers": N_LAYER,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_KV_HEAD,
        "head_dim": HEAD_DIM,
        "intermediate_size": N_INNER,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "max_position_embeddings": 128,
        "vocab_size": VOCAB,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def test_weights_named_shaped_and_in_hf_order(tiny: tuple[Path, dict]) -> None:
    path, expected = tiny
    _, weights, _ = load_gguf(path)
    assert sorted(weights) == sorted(expected)  # tied: no lm_head.weight
    assert "lm_head.weight" not in weights
    for name, want in expected.items():
        assert weights[name].dtype == np.float32, name
        assert weights[name].shape == want.shape, name
        # Q8_0 and F16 come back exactly as gguf dequantizes them; Q and K un-permuted
        np.testing.assert_array_equal(weights[name], want, err_msg=name)


def test_q_and_k_are_unpermuted(tiny: tuple[Path, dict]) -> None:
    """The stored rows are in llama.cpp order; the loaded ones are not (they are in HF order)."""
    path, expected = tiny
    reader = gguf.GGUFReader(path)
    stored_k = next(t for t in reader.tensors if t.name == "blk.0.attn_k.weight")
    stored = stored_k.data.astype(np.float32)  # F16 rows, as in the file
    _, weights, _ = load_gguf(path)
    loaded = weights["layers.0.self_attn.k_proj.weight"]
    assert not np.array_equal(stored, loaded)
    np.testing.assert_array_equal(permute_qk_like_llamacpp(loaded, N_KV_HEAD), stored)


def test_untied_and_qwen2_with_biases(tmp_path: Path) -> None:
    path = tmp_path / "untied.gguf"
    expected = write_tiny_gguf(path, tied=False)
    config, weights, _ = load_gguf(path)
    assert config["tie_word_embeddings"] is False
    np.testing.assert_array_equal(weights["lm_head.weight"], expected["lm_head.weight"])

    path = tmp_path / "qwen.gguf"
    expected = write_tiny_gguf(path, arch="qwen2", biases=True)
    config, weights, _ = load_gguf(path)
    assert config["model_type"] == "qwen2" and config["attention_bias"] is True
    # qwen2 is converted without the permutation, so nothing is undone
    for name in ("layers.1.self_attn.q_proj.weight", "layers.1.self_attn.q_proj.bias",
                 "layers.1.self_attn.k_proj.bias"):
        np.testing.assert_array_equal(weights[name], expected[name])


def test_tokenizer_metadata(tiny: tuple[Path, dict]) -> None:
    _, _, meta = load_gguf(tiny[0])
    assert meta["tokens"] == TOKENS
    assert meta["merges"] == MERGES
    assert meta["token_types"] == TOKEN_TYPES
    assert (meta["pre"], meta["model"], meta["bos_id"], meta["eos_id"]) == ("smollm", "gpt2", 1, 2)
    assert meta["chat_template"] == "{{ messages }}"
    assert meta["name"] == "tiny.Q8_0"


def test_load_gguf_model_builds_the_tokenizer(tiny: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("fwdtui.tokenizers.bpe")
    fake.from_gguf_metadata = lambda *args, **kw: calls.append((args, kw)) or "TOKENIZER"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fwdtui.tokenizers.bpe", fake)
    config, weights, tokenizer = load_gguf_model(tiny[0])
    assert tokenizer == "TOKENIZER"
    assert calls == [((TOKENS, MERGES, TOKEN_TYPES, "smollm", 1, 2, "{{ messages }}", "tiny.Q8_0"), {"add_bos": False})]


def test_unknown_tokenizer_model_refused() -> None:
    with pytest.raises(WeightsError, match="'bert'"):  # "llama" (SentencePiece) is read: test_sentencepiece.py
        gguf_loader.tokenizer_from_meta({"model": "bert"})


def test_progress_reports_every_tensor(tiny: tuple[Path, dict]) -> None:
    seen = []
    load_gguf(tiny[0], progress=lambda stage, done, total: seen.append((stage, done, total)))
    dequant = [s for s in seen if s[0].startswith("Dequantizing")]
    assert len(dequant) == len(tiny[1])
    assert dequant[0][2] == len(tiny[1]) and "Q8_0" in dequant[0][0]


# --- the float32 cache --------------------------------------------------------------------------


def test_cache_written_then_memory_mapped(tiny: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    path, expected = tiny
    first = load_gguf(path)
    cache = cache_path(path)
    assert cache.name == "tiny.Q8_0.f32.safetensors" and cache.is_file()
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]

    def no_gguf(*args: object) -> None:
        raise AssertionError("the GGUF was read again")

    monkeypatch.setattr(gguf_loader, "open_gguf", no_gguf)
    config, weights, meta = load_gguf(path)
    assert config == first[0] and meta == first[2]
    for name, want in expected.items():
        assert isinstance(weights[name].base, np.memmap) or isinstance(weights[name], np.memmap)
        np.testing.assert_array_equal(weights[name], want)
    # the cache is a real safetensors file
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(cache)["norm.weight"], expected["norm.weight"])


def test_changed_gguf_invalidates_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_tiny_gguf(path, seed=1)
    load_gguf(path)
    expected = write_tiny_gguf(path, seed=2)  # same name, new weights
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # even on a coarse-clock filesystem
    _, weights, _ = load_gguf(path)
    np.testing.assert_array_equal(weights["embed_tokens.weight"], expected["embed_tokens.weight"])


def test_damaged_cache_is_rebuilt(tiny: tuple[Path, dict]) -> None:
    path, expected = tiny
    load_gguf(path)
    cache_path(path).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    _, weights, _ = load_gguf(path)
    np.testing.assert_array_equal(weights["norm.weight"], expected["norm.weight"])
    assert gguf_loader.read_cache(path) is not None  # rewritten


def test_unwritable_cache_is_skipped(tiny: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    path, expected = tiny

    def full_disk(tensors: dict, filename: str, metadata: dict) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.numpy.save_file", full_disk)
    _, weights, _ = load_gguf(path)
    np.testing.assert_array_equal(weights["norm.weight"], expected["norm.weight"])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no cache, no temp file


# --- damaged and foreign files ------------------------------------------------------------------


def _expect_weights_error(path: Path) -> WeightsError:
    with pytest.raises(WeightsError) as info:
        load_gguf(path)
    assert info.value.fix  # every message names what to do
    return info.value


@pytest.mark.parametrize("keep", [0, 3, 10, 24, 200, 0.5, 0.9, -1])
def test_truncated_files(tiny: tuple[Path, dict], keep: float) -> None:
    path, _ = tiny
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    err = _expect_weights_error(path)
    assert path.name in str(err)


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / "random.gguf"
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a GGUF" in str(_expect_weights_error(path))
    # the same behind a valid magic and version: the header walk must still refuse it
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_weights_error(path)


def test_foreign_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mamba.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert "mamba" in str(_expect_weights_error(path))


def _patch_u64(path: Path, offset: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = struct.pack("<Q", value)
    path.write_bytes(bytes(data))


def test_tensor_offset_past_the_end(tiny: tuple[Path, dict]) -> None:
    path, _ = tiny
    field = next(t for t in gguf.GGUFReader(path).tensors if t.name == "output_norm.weight").field
    # parts: name length, name, n_dims, dims, type, offset
    offset_at = field.offset + sum(int(p.nbytes) for p in field.parts[:5])
    _patch_u64(path, offset_at, 1 << 40)
    assert "output_norm.weight" in str(_expect_weights_error(path))


def test_huge_array_count_fails_fast(tiny: tuple[Path, dict]) -> None:
    """A corrupt count of 2**60 token types must not make anyone loop or allocate for it."""
    path, _ = tiny
    field = gguf.GGUFReader(path).fields["tokenizer.ggml.token_type"]
    # parts: key length, key, value type, item type, count, items...
    count_at = field.offset + sum(int(p.nbytes) for p in field.parts[:4])
    _patch_u64(path, count_at, 1 << 60)
    _expect_weights_error(path)


def test_impossible_sizes(tiny: tuple[Path, dict]) -> None:
    """A block count far beyond the tensors there are is refused before anything loops over it."""
    path, _ = tiny
    field = gguf.GGUFReader(path).fields["llama.block_count"]
    value_at = field.offset + sum(int(p.nbytes) for p in field.parts[:3])  # key length, key, type
    data = bytearray(path.read_bytes())
    data[value_at : value_at + 4] = struct.pack("<I", 1_000_000)
    path.write_bytes(bytes(data))
    assert "num_hidden_layers" in str(_expect_weights_error(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_gguf(tmp_path / "nothing.gguf")


def test_unknown_tensor_name() -> None:
    assert hf_name("blk.3.ffn_up.weight") == "layers.3.mlp.up_proj.weight"
    assert hf_name("output.weight") == "lm_head.weight"
    assert hf_name("blk.0.ffn_gate_exps.weight") is None
    assert issubclass(WeightsError, FwdtuiError)


@pytest.mark.smollm2
def test_real_smollm2_gguf() -> None:
    from fwdtui.loaders.registry import local_path

    path = local_path("smollm2-135m")
    if path is None or path.suffix != ".gguf":
        pytest.skip("the SmolLM2 GGUF is not under weights/")
    config, weights, meta = load_gguf(path)
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (30, 9, 3)
    assert meta["pre"] == "smollm" and len(meta["tokens"]) == config["vocab_size"] == 49152
    assert weights["layers.0.self_attn.k_proj.weight"].shape == (192, 576)


@pytest.mark.parametrize("add_bos", [True, False, None])
def test_add_bos_token_puts_bos_before_the_prompt(tmp_path, add_bos) -> None:
    """Llama 3 GGUFs say tokenizer.ggml.add_bos_token = true: the prompt then starts with the BOS id."""
    from fwdtui.prompt import prepare_prompt

    path = tmp_path / "bos.gguf"
    write_tiny_gguf(path, add_bos=add_bos)
    model = load_path(path)
    assert model.tokenizer.add_bos is bool(add_bos)
    ids = prepare_prompt(model, "hi there").ids
    body = model.tokenizer.encode("hi there")
    assert ids == ([1] + body if add_bos else body)
