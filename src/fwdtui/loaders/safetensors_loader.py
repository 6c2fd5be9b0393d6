"""Reading safetensors files ourselves: header checked against the file, tensors memory-mapped, no pickle."""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from fwdtui.errors import WeightsError

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,  # BF16 widened below
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_HEADER = 100 * 1024 * 1024  # real headers are kilobytes; a bigger claim means a broken file


def _bad(path: Path, what: str) -> WeightsError:
    return WeightsError(
        f"{path.name} is not a valid safetensors file: {what}.",
        "The file is corrupt or incomplete; delete it and download the model again.",
    )


def _short(value: object) -> str:
    """A name or value from a damaged header, cut so that it cannot flood the terminal."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nbytes(shape: list[int], itemsize: int, limit: int) -> int:
    """Bytes a tensor of `shape` needs, in exact integers; stops at the first product above `limit`
    (returning it), so a shape of [10**400, ...] is neither a float overflow nor a slow huge product."""
    if 0 in shape:
        return 0
    total = itemsize
    for dim in shape:
        total *= dim
        if total > limit:
            return total
    return total


def read_header(path: Path, file_size: int, head: bytes) -> dict:
    """Parse and check the JSON header: every tensor's bytes must lie inside the file and match its shape."""
    if file_size < 8:
        raise _bad(path, "it is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head[:8])
    if n > min(_MAX_HEADER, file_size - 8):
        raise _bad(path, f"its header claims {n} bytes but the file has {file_size}")
    if len(head) < 8 + n:
        raise _bad(path, f"its header claims {n} bytes but only {len(head) - 8} were read")
    try:
        header = json.loads(head[8 : 8 + n].decode("utf-8"))
    except ValueError as err:  # not UTF-8, not JSON, or a number of more than 4300 digits
        raise _bad(path, f"its header is not JSON ({err.__class__.__name__})") from None
    except RecursionError:  # thousands of nested brackets
        raise _bad(path, "its header is not JSON (nested too deeply)") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    data_size = file_size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not isinstance(dtype, str) or dtype not in _DTYPES:  # a list or dict here is not even hashable
            raise _bad(path, f"tensor {_short(name)} has an unknown dtype {_short(dtype)}")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _bad(path, f"tensor {_short(name)} has a malformed shape or offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise _bad(path, f"tensor {_short(name)} lies beyond the end of the file (truncated download?)")
        expected = _nbytes(shape, np.dtype(_DTYPES[dtype]).itemsize, data_size)
        if end - begin != expected:
            raise _bad(path, f"tensor {_short(name)} has {end - begin} bytes but its shape {_short(shape)} needs "
                             f"{expected if expected <= data_size else f'more than the file holds ({data_size})'}")
    return {"n": n, "tensors": {k: v for k, v in header.items() if k != "__metadata__"},
            "metadata": header.get("__metadata__") or {}}


def load_safetensors(path: str | Path, to_float32: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """All tensors of one file, memory-mapped (float32 stays mapped; f16/bf16 are widened into RAM)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            if size == 0:
                raise _bad(path, "it is empty")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise WeightsError(f"{path} does not exist.", "Check the path, or download the model with `fwdtui download`.") from None
    except IsADirectoryError:
        raise WeightsError(f"{path} is a folder, not a safetensors file.", "Point at the model.safetensors file or its folder.") from None
    except OSError as err:
        raise WeightsError(f"Cannot read {path}: {err.strerror or err}.", "Check the file's permissions and the disk.") from None
    # Copy only the header out of the map, after its claimed length is checked against the file.
    claimed = struct.unpack("<Q", mm[:8])[0] if size >= 8 else 0
    header = read_header(path, size, mm[: 8 + min(claimed, _MAX_HEADER, size - 8)] if size >= 8 else b"")
    base = 8 + header["n"]
    out: dict[str, np.ndarray] = {}
    for name, entry in header["tensors"].items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        count = (end - begin) // np.dtype(dtype).itemsize
        arr = np.frombuffer(mm, dtype=dtype, count=count, offset=base + begin).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: shift the bits back into place.
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if to_float32 and arr.dtype in (np.float16, np.float64):
            arr = arr.astype(np.float32)
        out[name] = arr
    return out, header["metadata"]
