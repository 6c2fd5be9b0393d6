"""GGUF files that are truncated, foreign, lying about their sizes, or randomly damaged.

Every case loads through `fwdtui.load_model` (header walk, gguf's reader, dequantization, config,
tokenizer): the only acceptable outcomes are a working model or one of our errors, and no size
a file claims (2**60 tensors, a 2**60-byte string) may be allocated or looped over.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwdtui import load_model
from fwdtui.core.model import Model
from fwdtui.errors import FwdtuiError, WeightsError

from .helpers import bounded_memory, expect_fwdtui_error, files_in, safetensors_bytes, write_small_gguf

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small valid GGUF (about 5 KB: 1.9 KB of header, then the tensors)."""
    path = write_small_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return path.read_bytes()


@pytest.fixture(scope="module")
def layout(template: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Byte offsets of the fields the targeted tests overwrite, read with gguf's own reader."""
    path = tmp_path_factory.mktemp("layout") / "tiny.gguf"
    path.write_bytes(template)
    reader = gguf.GGUFReader(path)
    arch = reader.fields["general.architecture"]
    tokens = reader.fields["tokenizer.ggml.tokens"]
    emb = next(t for t in reader.tensors if t.name == "token_embd.weight").field
    return {
        "tensor_count": 8,
        "kv_count": 16,
        "first_key_length": arch.offset,
        # parts of a string value: key length, key, value type, string length, string
        "string_length": arch.offset + sum(int(p.nbytes) for p in arch.parts[:3]),
        # parts of an array value: key length, key, value type, item type, count, items...
        "array_count": tokens.offset + sum(int(p.nbytes) for p in tokens.parts[:4]),
        # parts of a tensor entry: name length, name, n_dims, dims, type, offset
        "tensor_dims": emb.offset + sum(int(p.nbytes) for p in emb.parts[:3]),
        "tensor_offset": emb.offset + sum(int(p.nbytes) for p in emb.parts[:5]),
        "data_start": reader.data_offset,
    }


def load_bytes(data: bytes, name: str = "m.gguf") -> Model | FwdtuiError:
    """Write `data` as a GGUF in a fresh folder and load it; returns the model or our error (anything else fails)."""
    folder = Path(tempfile.mkdtemp(prefix="gguf-fuzz-"))
    try:
        (folder / name).write_bytes(data)
        try:
            model = load_model(str(folder / name))
        except FwdtuiError as err:
            assert err.message and err.fix
            # No temporary file is left behind; the only thing a failed load may leave is a complete
            # float32 cache (written when the weights were fine and a later step, the tokenizer, failed).
            left = [f for f in files_in(folder) if f != name]
            assert left in ([], [Path(name).stem + ".f32.safetensors"]), left
            return err
        return model
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_template_loads_and_runs(template: bytes) -> None:
    model = load_bytes(template)
    assert isinstance(model, Model)
    ids = model.tokenizer.encode("abc")
    assert model.logits(ids).shape == (len(ids), 31)


# --- truncated and foreign files ----------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 1, 4, 8, 23, 24, 40, 500, 1500, "data_start", "data_start+1", -1, -100])
def test_truncated(template: bytes, layout: dict, keep) -> None:
    if isinstance(keep, str):
        n = layout["data_start"] + (1 if keep.endswith("+1") else 0)
    else:
        n = keep if keep >= 0 else len(template) + keep
    err = load_bytes(template[:n])
    assert isinstance(err, FwdtuiError), f"a file cut to {n} of {len(template)} bytes loaded"


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "not a GGUF"),
        (b"hello world, this is not a model at all" * 3, "not a GGUF"),
        (safetensors_bytes({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "not a GGUF"),
        (b"PK\x03\x04" + b"\0" * 100, "not a GGUF"),  # a zip (a wheel) renamed .gguf
        (b"\x80\x04\x95" + b"\0" * 100, "not a GGUF"),  # a pickle renamed .gguf
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 100, "version 1"),
        (b"GGUF" + struct.pack("<I", 99) + b"\0" * 100, "version 99"),
        (b"FUGG" + struct.pack("<I", 3) + b"\0" * 100, "not a GGUF"),  # big-endian GGUF magic
    ],
    ids=["empty", "text", "safetensors", "zip", "pickle", "v1", "v99", "big-endian"],
)
def test_foreign_files(data: bytes, needle: str) -> None:
    err = load_bytes(data)
    assert isinstance(err, WeightsError) and needle in err.message


def test_foreign_architecture(tmp_path: Path) -> None:
    path = tmp_path / "bert.gguf"
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    err = expect_fwdtui_error(load_model, str(path))
    assert "bert" in err.message


# --- sizes and counts the file cannot back ------------------------------------------------------


@pytest.mark.parametrize("field", ["tensor_count", "kv_count", "first_key_length", "string_length", "array_count",
                                   "tensor_dims", "tensor_offset"])
@pytest.mark.parametrize("value", [2**60, 2**63, 2**64 - 1, 2**32 + 1])
def test_claimed_sizes_beyond_the_file(template: bytes, layout: dict, field: str, value: int) -> None:
    data = bytearray(template)
    data[layout[field] : layout[field] + 8] = struct.pack("<Q", value)
    with bounded_memory(30):  # a reader that believed the claim would allocate or loop far past this
        err = load_bytes(bytes(data))
    assert isinstance(err, FwdtuiError)


# --- metadata with absurd values ----------------------------------------------------------------


def _gguf_with(tmp_path: Path, **metadata) -> Path:
    return write_small_gguf(tmp_path / "m.gguf", metadata=metadata)


ABSURD_METADATA = [
    {"block_count": 10**9},
    {"block_count": 0},
    {"block_count": "twelve"},
    {"embedding_length": 0},
    {"embedding_length": 2**62},
    {"attention.head_count": 0},
    {"attention.head_count": 3},  # does not divide the 8-wide rows
    {"attention.head_count_kv": 0},
    {"attention.head_count_kv": 3},
    {"feed_forward_length": 2**62},
    {"context_length": 2**63},
    {"vocab_size": 10**12},
    {"rope.freq_base": float("nan")},
    {"rope.freq_base": -1.0},
    {"attention.layer_norm_rms_epsilon": float("inf")},
    {"attention.key_length": 7},
]


@pytest.mark.parametrize("metadata", ABSURD_METADATA, ids=[f"{k}={v}" for m in ABSURD_METADATA for k, v in m.items()])
def test_absurd_metadata(tmp_path: Path, metadata: dict) -> None:
    path = _gguf_with(tmp_path, **metadata)
    with bounded_memory(30):
        err = expect_fwdtui_error(load_model, str(path))
    assert len(err.message) < 400


def test_missing_tensor_and_wrong_shape(tmp_path: Path) -> None:
    path = write_small_gguf(tmp_path / "two.gguf", n_layer=2)
    data = bytearray(path.read_bytes())
    reader = gguf.GGUFReader(path)
    field = next(t for t in reader.tensors if t.name == "blk.1.ffn_up.weight").field
    name_at = field.offset + 8
    data[name_at : name_at + len("blk.1.ffn_up")] = b"blk.1.ffn_XX"  # the tensor is now unknown
    err = load_bytes(bytes(data))
    assert isinstance(err, WeightsError) and "blk.1.ffn_XX" in err.message


def test_sentencepiece_tokenizer_is_refused(tmp_path: Path) -> None:
    """A Llama 2 style GGUF ("llama" tokenizer, no merges): the weights load, the tokenizer is refused clearly."""
    path = tmp_path / "sp.gguf"
    data = write_small_gguf(path).read_bytes()
    data = data.replace(b"\x04\x00\x00\x00\x00\x00\x00\x00gpt2", b"\x04\x00\x00\x00\x00\x00\x00\x00lama", 1)
    err = load_bytes(data)
    assert isinstance(err, WeightsError) and "tokenizer" in err.message


# --- hypothesis: random and mutated bytes -------------------------------------------------------


def _outcome_ok(result: Model | FwdtuiError) -> None:
    if isinstance(result, Model):  # it loaded: then it must also run (damaged weights may give inf or nan)
        with np.errstate(all="ignore"):
            logits = result.logits([0])  # one token: a damaged file may have shrunk the context or vocabulary
        assert logits.shape == (1, result.config.vocab_size)


@FUZZ
@given(body=st.binary(min_size=0, max_size=4000))
def test_random_bytes_after_a_valid_magic(body: bytes) -> None:
    for prefix in (b"", b"GGUF" + struct.pack("<I", 3)):
        _outcome_ok(load_bytes(prefix + body))


@FUZZ
@given(data=st.data())
def test_flipped_bytes(template: bytes, layout: dict, data) -> None:
    """1 to 8 bytes changed, mostly in the header (where every length and count lives)."""
    blob = bytearray(template)
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        header = data.draw(st.booleans())
        pos = data.draw(st.integers(0, layout["data_start"] - 1 if header else len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    with bounded_memory(60):
        _outcome_ok(load_bytes(bytes(blob)))


INTERESTING_U64 = [0, 1, 2, 3, 7, 8, 31, 32, 255, 2**31, 2**32 - 1, 2**32, 2**60, 2**63, 2**64 - 1]


@FUZZ
@given(data=st.data())
def test_overwritten_numbers(template: bytes, layout: dict, data) -> None:
    """A 4- or 8-byte number anywhere in the header replaced by a boundary value."""
    blob = bytearray(template)
    width = data.draw(st.sampled_from([4, 8]))
    pos = data.draw(st.integers(4, layout["data_start"] - width))
    value = data.draw(st.sampled_from(INTERESTING_U64)) % (1 << (8 * width))
    blob[pos : pos + width] = value.to_bytes(width, "little")
    with bounded_memory(60):
        _outcome_ok(load_bytes(bytes(blob)))


@FUZZ
@given(data=st.data())
def test_cut_and_spliced(template: bytes, data) -> None:
    """Bytes deleted or inserted somewhere: every later offset shifts."""
    start = data.draw(st.integers(0, len(template)))
    length = data.draw(st.integers(0, 64))
    insert = data.draw(st.binary(max_size=64))
    blob = template[:start] + insert + template[start + length :]
    _outcome_ok(load_bytes(blob))


# --- the float32 cache beside a GGUF: a damaged one is rebuilt, never trusted --------------------


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\x00" * 7,
        b"\xff" * 64,
        safetensors_bytes(b"{not json"),
        safetensors_bytes(b"[" * 50_000 + b"]" * 50_000),
        safetensors_bytes({"t": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}),
        "truncated",
        "flipped",
    ],
    ids=["empty", "short", "binary", "not-json", "deep", "huge-tensor", "truncated", "flipped"],
)
def test_damaged_cache_is_rebuilt(template: bytes, tmp_path: Path, damage) -> None:
    from fwdtui.loaders.gguf_loader import cache_path

    path = tmp_path / "m.gguf"
    path.write_bytes(template)
    first = load_model(str(path))
    cache = cache_path(path)
    good = cache.read_bytes()
    if damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "flipped":
        cache.write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:140]) + good[140:])
    else:
        cache.write_bytes(damage)
    with bounded_memory(30):
        again = load_model(str(path))
    ids = [3, 4, 5]
    np.testing.assert_array_equal(again.logits(ids), first.logits(ids))
