"""Shared tools for the reliability tests: run the CLI, check its error shape, bound memory, write tiny files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fwdtui.cli import main
from fwdtui.errors import FwdtuiError

MB = 1 << 20


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`fwdtui ARGV` in-process: (exit code, stdout, stderr); argparse's SystemExit counts as an exit code."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse rejects its arguments this way
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, out: str, err: str, needle: str | None = None) -> None:
    """Exit 2, `error: ...` and `  fix: ...` on stderr, one or two lines each, and no traceback."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    rest = lines[start:]
    assert rest[1].startswith("  fix: "), err
    assert len(rest) == 2, err  # the message and the fix, nothing after them
    if needle is not None:
        assert needle in err, err


def run_subprocess(*argv: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m fwdtui ARGV` as a user would run it, with the network kept out of reach."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8", **(env or {})}
    return subprocess.run([sys.executable, "-m", "fwdtui", *argv], capture_output=True, text=True,
                          errors="replace", env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)


@contextmanager
def bounded_memory(limit_mb: float) -> Iterator[None]:
    """Fail if Python and numpy allocate more than `limit_mb` (peak) inside the block.

    A loader that trusted a size claimed by a broken file (10**15 bytes, 2**60 entries) would blow
    far past any limit, or die trying; one that checks the claim against the file stays small.
    """
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit_mb * MB, f"peak allocation {peak / MB:.1f} MB > {limit_mb} MB"


def expect_fwdtui_error(fn, *args, **kwargs) -> FwdtuiError:
    """Call fn; it must raise one of our errors, with a message and a fix."""
    try:
        fn(*args, **kwargs)
    except FwdtuiError as err:
        assert err.message and err.fix, (err.message, err.fix)
        return err
    raise AssertionError(f"{fn.__name__} accepted it")


def safetensors_bytes(header: dict | bytes, data: bytes = b"") -> bytes:
    """A safetensors file by hand: 8-byte little-endian header length, JSON header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def files_in(folder: Path) -> list[str]:
    """Every file under `folder`, relative, sorted: what a failed load must leave exactly as it was."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- a tiny GGUF, written the way llama.cpp's converter writes one --------------------------------

GGUF_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "ab"]
GGUF_MERGES = ["a b"]


def write_small_gguf(path: Path, n_layer: int = 1, seed: int = 0, arch: str = "llama",
                     metadata: dict | None = None) -> Path:
    """A 1-layer Llama GGUF with a 31-token byte-level BPE vocabulary, all tensors float32 (~10 KB).

    `metadata` overrides or adds `{arch}.KEY` values (ints as uint64, floats as float32, str as string).
    """
    import gguf

    n_embd, n_head, n_kv, n_inner, vocab = 8, 2, 1, 16, len(GGUF_TOKENS)
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch)
    values = {"block_count": n_layer, "context_length": 32, "embedding_length": n_embd,
              "feed_forward_length": n_inner, "attention.head_count": n_head, "attention.head_count_kv": n_kv,
              "attention.layer_norm_rms_epsilon": 1e-5, "rope.freq_base": 10000.0, "vocab_size": vocab}
    values.update(metadata or {})
    for key, value in values.items():
        if isinstance(value, str):
            w.add_string(f"{arch}.{key}", value)
        elif isinstance(value, float):
            w.add_float32(f"{arch}.{key}", value)
        else:
            w.add_uint64(f"{arch}.{key}", value)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(GGUF_TOKENS)
    w.add_token_types([3, 3, 3] + [1] * (vocab - 3))
    w.add_token_merges(GGUF_MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    rng = np.random.default_rng(seed)

    def tensor(name: str, shape: tuple[int, ...]) -> None:
        w.add_tensor(name, (0.2 * rng.standard_normal(shape)).astype(np.float32))

    tensor("token_embd.weight", (vocab, n_embd))
    for i in range(n_layer):
        b = f"blk.{i}."
        tensor(b + "attn_norm.weight", (n_embd,))
        tensor(b + "attn_q.weight", (n_head * head_dim, n_embd))
        tensor(b + "attn_k.weight", (n_kv * head_dim, n_embd))
        tensor(b + "attn_v.weight", (n_kv * head_dim, n_embd))
        tensor(b + "attn_output.weight", (n_embd, n_head * head_dim))
        tensor(b + "ffn_norm.weight", (n_embd,))
        tensor(b + "ffn_gate.weight", (n_inner, n_embd))
        tensor(b + "ffn_up.weight", (n_inner, n_embd))
        tensor(b + "ffn_down.weight", (n_embd, n_inner))
    tensor("output_norm.weight", (n_embd,))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
