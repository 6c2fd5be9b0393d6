"""Broken weights and configs: every way a model folder or file can be wrong gives our error, with the fix.

Each case builds a tiny model folder (config.json, model.safetensors, tokenizer files), breaks one
thing, and loads it through `fwdtui.load_model` (and a few through the CLI). Nothing may be
allocated from a size a file claims before the claim is checked against the file.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from fwdtui import load_model
from fwdtui.errors import ConfigError, ModelNotFoundError, WeightsError
from fwdtui.loaders.safetensors_loader import load_safetensors

from .helpers import (
    assert_clear_error,
    bounded_memory,
    expect_fwdtui_error,
    files_in,
    run_cli,
    run_subprocess,
    safetensors_bytes,
)


@pytest.fixture
def folder(tiny_gpt2: Path, tmp_path: Path) -> Path:
    """A fresh, loadable copy of the tiny GPT-2 folder for one test to break."""
    dest = tmp_path / "model"
    shutil.copytree(tiny_gpt2, dest)
    return dest


@pytest.fixture
def llama_folder(tiny_llama: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "llama"
    shutil.copytree(tiny_llama, dest)
    return dest


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is _DELETE:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))  # allow_nan: Infinity and NaN are written as such


_DELETE = object()


def test_the_fixture_folder_loads(folder: Path) -> None:
    """The baseline every other test breaks: it must load and run."""
    model = load_model(str(folder))
    assert model.logits(model.tokenizer.encode("the cat")).shape == (3, 267)


# --- missing things -----------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    err = expect_fwdtui_error(load_model, str(tmp_path / "nowhere"))
    assert isinstance(err, ModelNotFoundError) and "nowhere" in err.message


def test_empty_folder(tmp_path: Path) -> None:
    err = expect_fwdtui_error(load_model, str(tmp_path))
    assert isinstance(err, WeightsError) and "holds no model" in err.message


def test_missing_config(folder: Path) -> None:
    (folder / "config.json").unlink()
    err = expect_fwdtui_error(load_model, str(folder))
    assert "config.json" in err.message


def test_missing_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    err = expect_fwdtui_error(load_model, str(folder))
    assert isinstance(err, WeightsError) and "no .safetensors" in err.message


def test_config_json_is_a_folder(folder: Path) -> None:
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    expect_fwdtui_error(load_model, str(folder))


def test_model_safetensors_is_a_folder(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").mkdir()
    expect_fwdtui_error(load_model, str(folder))


def test_device_is_not_a_model() -> None:
    err = expect_fwdtui_error(load_model, "/dev/null")
    assert "neither a file nor a folder" in err.message


def test_unknown_file_type(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    err = expect_fwdtui_error(load_model, str(tmp_path / "notes.txt"))
    assert "not a model file" in err.message


def test_missing_tokenizer_files_still_load_but_prompts_say_why(folder: Path) -> None:
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    model = load_model(str(folder))
    from fwdtui.prompt import prepare_prompt

    err = expect_fwdtui_error(prepare_prompt, model, "hello")
    assert "tokenizer" in err.message


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"",
                                     b"[" * 100_000 + b"]" * 100_000, b"[1, 2]",
                                     b'{"n_layer": ' + b"9" * 5000 + b"}"],
                         ids=["cut", "binary", "empty", "deep", "list", "5000-digit"])
def test_broken_tokenizer_vocab(folder: Path, content: bytes) -> None:
    (folder / "vocab.json").write_bytes(content)
    expect_fwdtui_error(load_model, str(folder))


@pytest.mark.parametrize("content", [b"{not json", b"[1]", b'{"chat_template": 7, "eos_token": ["x"]}',
                                     pytest.param(b"[" * 100_000)],
                         ids=["cut", "list", "junk-values", "deep"])
def test_broken_tokenizer_config(folder: Path, content: bytes) -> None:
    """tokenizer_config.json only adds the chat template and bos/eos: junk in it is refused or ignored."""
    (folder / "tokenizer_config.json").write_bytes(content)
    try:
        model = load_model(str(folder))
    except (WeightsError, ConfigError) as err:
        assert err.fix
        return
    assert model.tokenizer.encode("the cat") == [116, 257, 265]


# --- config.json --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json at all", b"\xff\xfe\xfd", b"[1, 2, 3]", b"null", b'"gpt2"',
     b"[" * 100_000 + b"]" * 100_000,  # nested past Python's recursion limit
     b'{"n_layer": ' + b"9" * 5000 + b"}"],  # an integer Python refuses to convert
    ids=["empty", "cut", "text", "binary", "list", "null", "string", "deep", "5000-digit"],
)
def test_config_not_a_json_object(folder: Path, content: bytes) -> None:
    (folder / "config.json").write_bytes(content)
    err = expect_fwdtui_error(load_model, str(folder))
    assert isinstance(err, ConfigError)
    assert len(err.message) < 300  # names the problem without dumping the file


def test_config_far_too_big_is_not_read(folder: Path) -> None:
    with open(folder / "config.json", "wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: 200 MB of zeros that take no disk
    with bounded_memory(20):
        err = expect_fwdtui_error(load_model, str(folder))
    assert "too big" in err.message


ABSURD_GPT2 = [
    ("n_layer", 10**9), ("n_layer", -1), ("n_layer", 0), ("n_layer", "12"), ("n_layer", 2.5), ("n_layer", True),
    ("n_layer", None), ("n_layer", float("inf")), ("n_layer", float("nan")), ("n_layer", [2]), ("n_layer", {"a": 1}),
    ("n_layer", 10**400), ("n_embd", 10**9), ("n_embd", 30), ("n_head", 0), ("n_head", -4), ("vocab_size", 10**12),
    ("n_positions", -5), ("n_positions", 10**15), ("layer_norm_epsilon", -1.0), ("layer_norm_epsilon", "small"),
    ("layer_norm_epsilon", float("nan")), ("layer_norm_epsilon", float("inf")), ("activation_function", "relu"),
    ("model_type", "bert"), ("model_type", _DELETE), ("model_type", ["gpt2"]), ("model_type", "x" * 10_000),
    ("n_inner", 0), ("n_inner", 10**8), ("layer_norm_epsilon", 10**400),
]


@pytest.mark.parametrize("key, value", ABSURD_GPT2, ids=[f"{k}={'deleted' if v is _DELETE else str(v)[:12]}" for k, v in ABSURD_GPT2])
def test_absurd_gpt2_config_values(folder: Path, key: str, value) -> None:
    edit_config(folder, **{key: value})
    if value is _DELETE:  # without model_type, architectures would still name GPT-2
        edit_config(folder, architectures=_DELETE)
    with bounded_memory(30):  # a config claiming 10**9 layers must not make anyone build them
        err = expect_fwdtui_error(load_model, str(folder))
    assert isinstance(err, (ConfigError, WeightsError))
    assert len(err.message) < 300  # a 400-digit number or a 10k-character name is not echoed whole


ABSURD_LLAMA = [
    ("num_key_value_heads", 3), ("num_key_value_heads", 0), ("head_dim", 7), ("head_dim", -8),
    ("rope_theta", 0), ("rope_theta", float("inf")), ("rope_theta", "fast"), ("rope_theta", -10000.0),
    ("rope_scaling", {"rope_type": "llama3"}),  # no factor: ops would hit a KeyError
    ("rope_scaling", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0}),
    ("rope_scaling", {"rope_type": "llama3", "factor": float("nan")}),
    ("rope_scaling", {"rope_type": "yarn", "factor": 4.0}), ("rope_scaling", {"rope_type": ["x"]}),
    ("tie_word_embeddings", "false"), ("attention_bias", "yes"), ("hidden_act", "gelu"), ("rms_norm_eps", 0), ("rms_norm_eps", 10**400),
    ("intermediate_size", None), ("num_hidden_layers", 10**9), ("architectures", 5), ("max_position_embeddings", 0),
]


@pytest.mark.parametrize("key, value", ABSURD_LLAMA, ids=[f"{k}={str(v)[:20]}" for k, v in ABSURD_LLAMA])
def test_absurd_llama_config_values(llama_folder: Path, key: str, value) -> None:
    edit_config(llama_folder, **{key: value})
    if key == "architectures":
        # junk beside a valid model_type is ignored, not a crash: the model still loads
        assert load_model(str(llama_folder)).config.family == "llama"
        edit_config(llama_folder, model_type=_DELETE)
    with bounded_memory(30):
        err = expect_fwdtui_error(load_model, str(llama_folder))
    assert isinstance(err, (ConfigError, WeightsError))


def test_config_that_does_not_match_the_weights(folder: Path) -> None:
    edit_config(folder, n_layer=3)  # the file has 2 layers
    err = expect_fwdtui_error(load_model, str(folder))
    assert "h.2." in err.message and "lacks" in err.message
    edit_config(folder, n_layer=2, n_embd=64)
    err = expect_fwdtui_error(load_model, str(folder))
    assert "shape" in err.message


# --- safetensors files --------------------------------------------------------------------------


def _weights(folder: Path) -> Path:
    return folder / "model.safetensors"


@pytest.mark.parametrize("keep", [0, 1, 7, 8, 9, 100, 0.5, 0.99, -1])
def test_truncated_safetensors(folder: Path, keep: float) -> None:
    data = _weights(folder).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    _weights(folder).write_bytes(data[:n])
    err = expect_fwdtui_error(load_model, str(folder))
    assert isinstance(err, WeightsError) and "model.safetensors" in err.message


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_as_safetensors(folder: Path, seed: int) -> None:
    _weights(folder).write_bytes(np.random.default_rng(seed).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    err = expect_fwdtui_error(load_model, str(folder))
    assert "not a valid safetensors file" in err.message


def test_header_length_beyond_the_file(folder: Path) -> None:
    data = bytearray(_weights(folder).read_bytes())
    data[:8] = struct.pack("<Q", 2**64 - 1)
    _weights(folder).write_bytes(bytes(data))
    with bounded_memory(20):
        err = expect_fwdtui_error(load_model, str(folder))
    assert "header claims" in err.message


def _one_tensor_file(path: Path, entry: dict, data: bytes = b"\0" * 16) -> Path:
    path.write_bytes(safetensors_bytes({"t": entry}, data))
    return path


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({"dtype": "F32", "shape": [250 * 10**12], "data_offsets": [0, 10**15]}, "beyond the end"),  # a 1 PB tensor
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 2**63]}, "beyond the end"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}, "beyond the end"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "beyond the end"),
        ({"dtype": "F32", "shape": [10**400], "data_offsets": [0, 16]}, "needs more than the file holds"),
        ({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}, "needs more than the file holds"),
        ({"dtype": "F32", "shape": [2**32] * 2000, "data_offsets": [0, 16]}, "needs more than the file holds"),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}, "needs 12"),
        ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "malformed"),
        ({"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]}, "malformed"),
        ({"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}, "malformed"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0]}, "malformed"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, True]}, "malformed"),
        ({"dtype": "F32", "shape": [4]}, "malformed"),
        ({"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
        ({"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),  # unhashable
        ({"dtype": {"F32": 1}, "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
        ({"shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
    ],
)
def test_header_claims_checked_against_the_file(tmp_path: Path, entry: dict, needle: str) -> None:
    path = _one_tensor_file(tmp_path / "x.safetensors", entry)
    with bounded_memory(20):
        err = expect_fwdtui_error(load_safetensors, path)
    assert needle in err.message
    assert len(err.message) < 400


@pytest.mark.parametrize(
    "header",
    [b"[]", b"null", b"{", b"\xff" * 10, b'{"t": 5}', b'{"t": null}', b"[" * 50_000 + b"]" * 50_000,
     b'{"t": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 16]}}'],
    ids=["list", "null", "cut", "binary", "int-entry", "null-entry", "deep", "5000-digit"],
)
def test_header_not_a_json_object(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(safetensors_bytes(header, b"\0" * 16))
    err = expect_fwdtui_error(load_safetensors, path)
    assert "not a valid safetensors file" in err.message


def test_only_the_header_is_read_into_memory(tmp_path: Path) -> None:
    """A 64 MB tensor file: the loader maps it; reading the header must not copy the data."""
    path = tmp_path / "big.safetensors"
    save_file({"t": np.zeros(16 * 1024 * 1024, dtype=np.float32)}, str(path))
    with bounded_memory(8):
        tensors, _ = load_safetensors(path)
    assert tensors["t"].shape == (16 * 1024 * 1024,)


@pytest.mark.parametrize("dtype, ok", [(np.float16, True), (np.float64, True), (np.int32, False),
                                       (np.uint8, False), (np.bool_, False)])
def test_tensor_dtypes(folder: Path, dtype, ok: bool) -> None:
    """Half and double precision are widened or narrowed to float32; integers and booleans are refused."""
    from safetensors.numpy import load_file

    tensors = load_file(str(_weights(folder)))
    tensors["transformer.h.0.ln_1.weight"] = tensors["transformer.h.0.ln_1.weight"].astype(dtype)
    save_file(tensors, str(_weights(folder)))
    if ok:
        model = load_model(str(folder))
        assert model.weights["h.0.ln_1.weight"].dtype == np.float32
    else:
        err = expect_fwdtui_error(load_model, str(folder))
        assert "not a float" in err.message


def test_bf16_is_widened(folder: Path) -> None:
    """bfloat16 (the top half of float32) is turned back into float32, value for value."""
    from safetensors.numpy import load_file

    tensors = load_file(str(_weights(folder)))
    name = "transformer.h.0.ln_1.weight"
    bits = tensors[name].view(np.uint32) >> 16  # truncate to bf16
    tensors.pop(name)
    save_file(tensors, str(_weights(folder)))
    # safetensors' numpy API has no bf16: append one by hand
    header_len = struct.unpack("<Q", _weights(folder).read_bytes()[:8])[0]
    raw = _weights(folder).read_bytes()
    header = json.loads(raw[8 : 8 + header_len])
    data = raw[8 + header_len :]
    header[name] = {"dtype": "BF16", "shape": [32], "data_offsets": [len(data), len(data) + 64]}
    _weights(folder).write_bytes(safetensors_bytes(header, data + bits.astype(np.uint16).tobytes()))
    model = load_model(str(folder))
    np.testing.assert_array_equal(model.weights["h.0.ln_1.weight"], (bits << 16).view(np.float32))


@pytest.mark.parametrize("change", ["transpose", "drop", "rank"])
def test_tensor_with_wrong_shape_or_missing(folder: Path, change: str) -> None:
    from safetensors.numpy import load_file

    tensors = load_file(str(_weights(folder)))
    name = "transformer.h.1.attn.c_attn.weight"  # [32, 96]
    if change == "transpose":
        tensors[name] = np.ascontiguousarray(tensors[name].T)
    elif change == "drop":
        del tensors[name]
    else:
        tensors[name] = tensors[name].reshape(-1)
    save_file(tensors, str(_weights(folder)))
    err = expect_fwdtui_error(load_model, str(folder))
    assert "h.1.attn.c_attn.weight" in err.message


# --- sharded checkpoints ------------------------------------------------------------------------


def _shard(folder: Path, weight_map) -> None:
    shutil.move(_weights(folder), folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_sharded_folder_loads(folder: Path) -> None:
    _shard(folder, {"wte.weight": "model-00001-of-00001.safetensors"})
    assert load_model(str(folder)).config.n_layer == 2


@pytest.mark.parametrize(
    "weight_map",
    [{"a": 5}, {"a": ["x"]}, {"a": "../../etc/passwd"}, {"a": "/etc/passwd"}, {"a": ".."}, {"a": ""},
     {"a": "missing.safetensors"}, [], "shards", None],
)
def test_broken_shard_index(folder: Path, weight_map) -> None:
    _shard(folder, weight_map)
    err = expect_fwdtui_error(load_model, str(folder))
    assert isinstance(err, WeightsError)


def test_shard_index_not_json(folder: Path) -> None:
    _shard(folder, {})
    (folder / "model.safetensors.index.json").write_bytes(b"[" * 100_000)
    expect_fwdtui_error(load_model, str(folder))


# --- pickles are refused, never opened ----------------------------------------------------------


class _Trap:
    """Unpickling this creates a file: if the marker appears, someone unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "weights.ckpt", "model.pkl"])
def test_pickled_checkpoint_is_refused_and_never_opened(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    marker = tmp_path / "UNPICKLED"
    (folder / name).write_bytes(pickle.dumps(_Trap(marker)))
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    for spec in (folder, folder / name):
        err = expect_fwdtui_error(load_model, str(spec))
        assert "never unpickles" in err.message and "safetensors" in err.fix
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_not_unpickled(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "UNPICKLED"
    _weights(folder).write_bytes(pickle.dumps(_Trap(marker)))
    err = expect_fwdtui_error(load_model, str(folder))
    assert "not a valid safetensors file" in err.message
    assert not marker.exists()


# --- nothing is written while loading fails -----------------------------------------------------


def test_failed_loads_leave_the_folder_as_it_was(folder: Path) -> None:
    edit_config(folder, n_layer=3)
    before = files_in(folder)
    for _ in range(2):
        expect_fwdtui_error(load_model, str(folder))
    assert files_in(folder) == before


# --- the same through the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    "breakage, needle",
    [
        ("no-config", "no config.json"),
        ("bad-json", "is not valid JSON"),
        ("absurd", "out of range"),
        ("truncated", "not a valid safetensors file"),
        ("pickle", "never unpickles"),
        ("missing", "No model called"),
    ],
)
def test_cli_reports_broken_models(capsys, folder: Path, breakage: str, needle: str) -> None:
    if breakage == "no-config":
        (folder / "config.json").unlink()
    elif breakage == "bad-json":
        (folder / "config.json").write_text("{oops")
    elif breakage == "absurd":
        edit_config(folder, n_layer=10**9)
    elif breakage == "truncated":
        _weights(folder).write_bytes(_weights(folder).read_bytes()[:1000])
    elif breakage == "pickle":
        _weights(folder).unlink()
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04junk")
    elif breakage == "missing":
        shutil.rmtree(folder)
    for argv in (["step", "-m", str(folder), "hi"], ["generate", "-m", str(folder), "-n", "2", "hi"],
                 ["tokenize", "-m", str(folder), "hi"]):
        assert_clear_error(*run_cli(capsys, *argv), needle=needle)


def test_subprocess_prints_no_traceback(folder: Path) -> None:
    """The real entry point, in its own process: the message and the fix, exit 2, nothing else."""
    edit_config(folder, n_embd=float("inf"))
    result = run_subprocess("step", "-m", str(folder), "hi")
    assert_clear_error(result.returncode, result.stdout, result.stderr, needle="not a whole number")


def test_out_of_memory_is_a_message(capsys, tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model too big for the machine: numpy's MemoryError becomes advice, not a traceback."""
    import fwdtui.loaders as loaders

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(loaders, "normalize_weights", no_memory)
    assert_clear_error(*run_cli(capsys, "step", "-m", str(tiny_gpt2), "hi"), needle="out of memory")
