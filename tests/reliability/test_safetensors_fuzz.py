"""Hypothesis against our safetensors reader: random bytes, random headers, mutated valid files.

The reader may accept a file (then every tensor lies inside it, with as many bytes as its shape
needs) or refuse it with WeightsError; any other exception, or an allocation sized by a claim in
the header, is a bug.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from fwdtui import load_model
from fwdtui.core.config import ModelConfig
from fwdtui.core.model import Model
from fwdtui.errors import ConfigError, FwdtuiError, WeightsError
from fwdtui.loaders.safetensors_loader import load_safetensors

from .helpers import bounded_memory, safetensors_bytes

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def read_bytes(data: bytes) -> dict[str, np.ndarray] | WeightsError:
    """Load `data` as a .safetensors file; returns the tensors or our error (anything else fails the test)."""
    with tempfile.TemporaryDirectory(prefix="st-fuzz-") as tmp:
        path = Path(tmp) / "x.safetensors"
        path.write_bytes(data)
        try:
            tensors, _ = load_safetensors(path)
        except WeightsError as err:
            assert err.message and err.fix
            return err
        # Check while the file is still there: every tensor is whole and inside the file.
        total = sum(a.nbytes for a in tensors.values())
        assert total <= len(data) * 2  # bf16 is widened to float32, at most doubling
        for arr in tensors.values():
            np.asarray(arr).sum()  # touching every byte must not fault
        return {k: np.array(v) for k, v in tensors.items()}


@pytest.fixture(scope="module")
def template() -> bytes:
    """A small valid file: three tensors of different dtypes and ranks, with metadata."""
    rng = np.random.default_rng(0)
    tensors = {"a": rng.standard_normal((4, 3)).astype(np.float32), "b": np.arange(5, dtype=np.int64),
               "c": rng.standard_normal((2, 2, 2)).astype(np.float16)}
    with tempfile.TemporaryDirectory() as tmp:
        save_file(tensors, f"{tmp}/t.safetensors", metadata={"format": "pt"})
        return Path(f"{tmp}/t.safetensors").read_bytes()


def test_template_round_trips(template: bytes) -> None:
    tensors = read_bytes(template)
    assert isinstance(tensors, dict) and sorted(tensors) == ["a", "b", "c"]
    assert tensors["c"].dtype == np.float32 and tensors["b"].tolist() == [0, 1, 2, 3, 4]


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    read_bytes(data)
    # the same bytes behind a header length that fits: JSON parsing and checks, not just the length test
    read_bytes(struct.pack("<Q", min(len(data), 1000)) + data)


DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]
dims = st.one_of(st.integers(0, 6), st.integers(-3, 2**70), st.sampled_from([2**31, 2**32, 2**63, 2**64]))
entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.one_of(st.sampled_from(DTYPES + ["Q4_0", "f32", ""]), st.integers(), st.lists(st.text(max_size=3))),
        "shape": st.one_of(st.lists(dims, max_size=4), st.text(max_size=3), st.integers()),
        "data_offsets": st.one_of(st.lists(st.integers(-5, 200), min_size=2, max_size=2),
                                  st.lists(st.integers(), max_size=3), st.just([0, 2**64])),
    },
)


@FUZZ
@given(header=st.dictionaries(st.text(max_size=8), entries, max_size=4), data=st.binary(max_size=200))
def test_random_headers(header: dict, data: bytes) -> None:
    with bounded_memory(20):
        result = read_bytes(safetensors_bytes(header, data))
    if isinstance(result, dict):
        for name, arr in result.items():
            entry = header[name]
            assert list(arr.shape) == entry["shape"]
            begin, end = entry["data_offsets"]
            assert 0 <= begin <= end <= len(data)


@st.composite
def headers_that_nearly_fit(draw) -> tuple[dict, bytes]:
    """Consistent headers with one thing off by a little: the cases a sloppy bounds check lets through."""
    n = draw(st.integers(1, 3))
    header, offset = {}, 0
    for i in range(n):
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        size = int(np.prod(shape, dtype=np.int64)) * (2 if dtype == "BF16" else np.dtype(
            {"F64": "f8", "F32": "f4", "F16": "f2", "I64": "i8", "I32": "i4", "I16": "i2", "I8": "i1", "U8": "u1",
             "BOOL": "?"}[dtype]).itemsize)
        begin = offset + draw(st.integers(-1, 1))
        end = begin + size + draw(st.sampled_from([0, 0, 0, -1, 1]))
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
        offset = max(offset, end)
    data = draw(st.binary(min_size=max(0, offset - 1), max_size=offset + 1))
    return header, data


@FUZZ
@given(case=headers_that_nearly_fit())
def test_nearly_consistent_headers(case: tuple[dict, bytes]) -> None:
    header, data = case
    result = read_bytes(safetensors_bytes(header, data))
    if isinstance(result, dict):
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            assert 0 <= begin <= end <= len(data), "a tensor outside the file was accepted"


@FUZZ
@given(data=st.data())
def test_mutated_valid_file(template: bytes, data) -> None:
    blob = bytearray(template)
    header_end = 8 + struct.unpack("<Q", template[:8])[0]
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, header_end - 1 if data.draw(st.booleans()) else len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):  # sometimes also cut or extend the file
        blob = blob[: data.draw(st.integers(0, len(blob)))] + data.draw(st.binary(max_size=16))
    with bounded_memory(20):
        read_bytes(bytes(blob))


# --- the same through a whole model folder ------------------------------------------------------


@pytest.fixture(scope="module")
def folder_bytes(tiny_gpt2: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tiny_gpt2.iterdir()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_mutated_model_folder(folder_bytes: dict[str, bytes], data) -> None:
    """A model folder with damaged weights: a working model or our error, through `load_model`."""
    blob = bytearray(folder_bytes["model.safetensors"])
    header_end = 8 + struct.unpack("<Q", blob[:8])[0]
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, header_end - 1))] = data.draw(st.integers(0, 255))
    tmp = Path(tempfile.mkdtemp(prefix="folder-fuzz-"))
    try:
        for name, content in folder_bytes.items():
            (tmp / name).write_bytes(content)
        (tmp / "model.safetensors").write_bytes(bytes(blob))
        try:
            model = load_model(str(tmp))
        except FwdtuiError as err:
            assert err.message and err.fix
            return
        assert isinstance(model, Model)
        with np.errstate(all="ignore"):
            assert model.logits([1, 2]).shape == (2, model.config.vocab_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- config.json: any JSON at all ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = ["model_type", "architectures", "n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "n_inner",
        "layer_norm_epsilon", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "intermediate_size", "max_position_embeddings", "head_dim", "rope_theta", "rope_scaling", "rope_parameters",
        "rms_norm_eps", "tie_word_embeddings", "attention_bias", "sliding_window", "use_sliding_window",
        "activation_function", "hidden_act", "bos_token_id", "eos_token_id"]
GOOD = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64, "vocab_size": 267}


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(KEYS),
                               json_values | st.integers(-2**70, 2**70) | st.sampled_from(["gpt2", "llama", "qwen2", 10**400, -10**400]),
                               max_size=5),
       base=st.sampled_from([GOOD, {"model_type": "gpt2"}, {}]))
def test_any_config_json(changes: dict, base: dict) -> None:
    """Any values under the keys we read: a config, or ConfigError; a config made is a sane one."""
    raw = {**base, **changes}
    json.dumps(raw)  # it is something a config.json could hold
    try:
        cfg = ModelConfig.from_hf(raw)
    except ConfigError as err:
        assert err.fix and len(err.message) < 400
        return
    assert cfg.family in ("gpt2", "llama")
    for value in (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.n_inner, cfg.n_ctx,
                  cfg.vocab_size):
        assert isinstance(value, int) and value >= 1
    assert cfg.n_head % cfg.n_kv_head == 0
    assert 0 < cfg.norm_eps and np.isfinite(cfg.rope_theta) and cfg.rope_theta > 0
    assert isinstance(cfg.tie_word_embeddings, bool)
