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


def read_header(path: Path, file_size: int, head: bytes) -> dict:
    """Parse and check the JSON header: every tensor's bytes must lie inside the file and match its shape."""
    if file_size < 8:
        raise _bad(path, "it is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head[:8])
    if n > min(_MAX_HEADER, file_size - 8):
        raise _bad(path, f"its header claims {n} bytes but the file has {file_size}")
    try:
        header = json.loads(head[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"its header is not JSON ({err.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    data_size = file_size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
            raise _bad(path, f"tensor {name!r} has an unknown dtype {entry.get('dtype') if isinstance(entry, dict) else entry!r}")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _bad(path, f"tensor {name!r} has a malformed shape or offsets")
        begin, end = offsets
        itemsize = 2 if entry["dtype"] == "BF16" else np.dtype(_DTYPES[entry["dtype"]]).itemsize
        expected = int(np.prod(shape, dtype=np.float64)) * itemsize  # float64: no overflow on absurd shapes
        if not 0 <= begin <= end <= data_size:
            raise _bad(path, f"tensor {name!r} lies beyond the end of the file (truncated download?)")
        if end - begin != expected:
            raise _bad(path, f"tensor {name!r} has {end - begin} bytes but its shape {shape} needs {expected}")
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
    header = read_header(path, size, mm[: min(size, 8 + _MAX_HEADER)])
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
