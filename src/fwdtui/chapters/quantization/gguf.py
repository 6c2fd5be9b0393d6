"""GGUF block formats: how llama.cpp lays out Q8_0, Q4_0, Q4_1, Q4_K and Q6_K, a real block of the
loaded model through each, and the tensor types of the GGUF file the model came from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.quantization._common import fmt_num, heading, note, table
from fwdtui.core import quant
from fwdtui.loaders import dequant
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, CHIP_BACKGROUNDS, CHIP_FG, DIM, cell_style

T = dequant.GGMLQuantizationType
TYPES = (T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q6_K)
LAYOUTS = {T.Q8_0: dequant.BLOCK_Q8_0, T.Q4_0: dequant.BLOCK_Q4_0, T.Q4_1: dequant.BLOCK_Q4_1,
           T.Q5_0: dequant.BLOCK_Q5_0, T.Q4_K: dequant.BLOCK_Q4_K, T.Q6_K: dequant.BLOCK_Q6_K}
WHAT = {"d": "fp16 scale", "m": "fp16 min", "dmin": "fp16 scale of mins", "qs": "quants", "qh": "high bits",
        "ql": "low 4 bits", "scales": "sub-block scales", "hmask": "high bits"}


@dataclass(frozen=True)
class FileTypes:
    """The tensor types stored in the GGUF file the model came from."""

    path: str
    counts: tuple[tuple[str, int, int], ...]  # (type name, tensors, bytes)
    examples: tuple[tuple[str, str, tuple[int, ...]], ...]  # (tensor, type, shape) of the first layer


@dataclass(frozen=True)
class GgufResult:
    tensor: str
    weights: np.ndarray  # [n] the tensor's weights, flattened in GGUF order (rows of n_in)
    n_in: int
    file: FileTypes | None


def file_types(path: str) -> FileTypes | None:
    """Read the tensor table of a GGUF file (types and sizes only; nothing is dequantized)."""
    if not path or not path.endswith(".gguf") or not Path(path).is_file():
        return None
    from gguf import GGUFReader

    reader = GGUFReader(path)
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    examples = []
    for t in reader.tensors:
        kind = t.tensor_type.name
        counts[kind] += 1
        sizes[kind] += int(t.n_bytes)
        if t.name.startswith("blk.0.") or not t.name.startswith("blk."):
            examples.append((t.name, kind, tuple(int(d) for d in t.shape)))
    rows = tuple((k, counts[k], sizes[k]) for k in sorted(counts, key=lambda k: -sizes[k]))
    return FileTypes(path, rows, tuple(examples))


@register
class GgufChapter(Chapter):
    ID = "quantization.gguf"
    SECTION = "quantization"
    TITLE = "GGUF block formats"
    SUMMARY = "How llama.cpp stores quantized blocks: bytes per block, bits per weight, a real block decoded."
    EXPLANATION = """
llama.cpp's GGUF files cut every row of weights into **blocks**. A block stores a few scale numbers
in fp16 and one small integer per weight. **Q8_0**: 32 weights, one scale, int8 codes (8.5 bits per
weight). **Q4_0**: 32 weights, one scale, 4-bit codes: w = d·(q − 8). **Q4_1** adds a minimum:
w = d·q + m. The **K-quants** (Q4_K, Q6_K) group 256 weights into a super-block of 8 or 16
sub-blocks whose own scales are small integers, scaled again by one fp16 number: scales cost
fewer bits. Below: the layouts, then a real block of the loaded model quantized and decoded by our
dequantizers. `f` another format, `b` the next block, `t` another tensor.
"""
    CODE_FUNCTIONS = (quant.quantize_q4_0, dequant.dequant_q4_0, quant.quantize_q4_1, dequant.dequant_q4_1,
                      quant.quantize_q8_0, dequant.dequant_q8_0, quant.quantize_q4_k, dequant.dequant_q4_k,
                      quant.quantize_q6_k, dequant.dequant_q6_k)

    BINDINGS = [
        Binding("f", "next_format", "Format", tooltip="Quantize the block with the next GGUF type"),
        Binding("b", "next_block", "Block", tooltip="The next block of the tensor"),
        Binding("t", "next_tensor", "Tensor", show=False, tooltip="Take the block from another weight matrix"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.type_index = 2  # Q4_1: the format SmolLM2's file uses
        self.block_index = 0
        self.matrix_index = 0

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="gguf-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> GgufResult:
        from fwdtui.chapters.quantization._common import matrix_name

        model = snapshot.require_model()
        _, name = matrix_name(model.config, 0, self.matrix_index)
        w = quant.weight_out_in(model.config, name, model.weights[name])  # [n_out, n_in]: GGUF's row order
        snapshot.progress(None, "reading the GGUF file's tensor table")
        try:
            ft = file_types(model.info.path)
        except Exception:  # a file we cannot read only loses the last panel
            ft = None
        return GgufResult(name, np.ascontiguousarray(w, np.float32).reshape(-1), int(w.shape[1]), ft)

    def action_next_format(self) -> None:
        self.type_index = (self.type_index + 1) % len(TYPES)
        self.redraw()

    def action_next_block(self) -> None:
        self.block_index += 1
        self.redraw()

    def action_next_tensor(self) -> None:
        from fwdtui.chapters.quantization._common import matrix_choices

        model = self.session.model
        n = len(matrix_choices(model.config)) if model is not None else 1
        self.matrix_index = (self.matrix_index + 1) % n
        self.block_index = 0
        self.recompute()

    def draw(self, result: GgufResult) -> None:
        qtype = TYPES[self.type_index]
        self.update_breadcrumb(f"{qtype.name} · block {self.block_index}")
        self.query_one("#gguf-canvas", Canvas).show(lambda width: self._picture(result, qtype, width))

    # --- the picture ---------------------------------------------------------------------------
    def _picture(self, r: GgufResult, qtype: T, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._block(r, qtype, width))
        out.append("\n")
        out.append_text(self._layouts(qtype, width))
        out.append("\n")
        out.append_text(self._file(r, width))
        return out

    def _block(self, r: GgufResult, qtype: T, width: int) -> Text:
        block = quant.gguf_block_size(qtype)
        n_blocks = r.weights.size // block
        self.block_index %= max(1, n_blocks)
        start = self.block_index * block
        x = r.weights[start : start + block]  # [block] a real run of weights
        raw = quant.GGUF_QUANTIZERS[qtype](x)  # the bytes a GGUF file would hold
        back = dequant.DEQUANTIZERS[qtype](raw)  # read back by the loader's own dequantizer
        fields = raw.view(LAYOUTS[qtype])[0]
        out = heading(f"A real block: {r.tensor}, weights {start}–{start + block - 1} as {qtype.name}")
        size = raw.size
        out.append(f"{block} weights × 4 bytes = {block * 4} bytes in FP32 → {size} bytes "
                   f"({size * 8 / block:g} bits per weight)\n")
        hexes = " ".join(f"{b:02x}" for b in raw[: max(4, (width - 12) // 3)])
        out.append("bytes  ", style=DIM)
        out.append(hexes + (" …" if size > (width - 12) // 3 else "") + "\n")
        parts = []
        for name in ("d", "m", "dmin"):
            if name in fields.dtype.names:
                parts.append(f"{name} = {float(fields[name]):.6g}")
        if "scales" in fields.dtype.names:
            parts.append("scales " + " ".join(str(int(v)) for v in fields["scales"][:8]) + " …")
        out.append("fields " + "   ".join(parts) + "\n", style=DIM)
        codes = _codes(qtype, raw)
        n_show = max(2, min(8, (width - 10) // 10))
        out.append("weight ", style=DIM)
        out.append(" ".join(f"{v:>9.4f}" for v in x[:n_show]) + "\n")
        out.append("code   ", style=DIM)
        out.append(" ".join(f"{c:>9d}" for c in codes[:n_show]) + "\n")
        out.append("back   ", style=DIM)
        out.append(" ".join(f"{v:>9.4f}" for v in back[:n_show]) + "\n")
        err = quant.weight_error(x, back)
        out.append(f"block error: max {fmt_num(err['max'])}, RMS {err['rel']:.2%} of the block's RMS\n", style="bold")
        if qtype in (T.Q8_0, T.Q4_0, T.Q4_1):
            from gguf.quants import quantize as gguf_quantize

            same = np.array_equal(raw, gguf_quantize(x[None, :], qtype).reshape(-1))
            out.append(f"{'✓' if same else '✗'} bytes {'identical to' if same else 'DIFFER from'} gguf.quants.quantize\n",
                       style=ACCENT if same else "bold red")
        else:
            out.append("(our K-quant scales are plain min/max; llama.cpp searches for better ones)\n", style=DIM)
        if r.n_in % block:
            out.append_text(note(f"Rows of this tensor hold {r.n_in} weights, not a whole number of {block}-weight "
                                 f"blocks, so llama.cpp cannot store them as {qtype.name}: it falls back to another "
                                 "type for such tensors. (This block is a run of the flattened tensor.)", width,
                                 style="bold"))
        return out

    @staticmethod
    def _layouts(selected: T, width: int) -> Text:
        room = max(10, width - 30)
        per_cell = max(1, int(np.ceil(210 / room)))  # one scale for every row, so lengths compare
        out = heading(f"Block layouts (one cell = {per_cell} bytes)")
        for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q4_K, T.Q6_K):
            layout = LAYOUTS[qtype]
            block, size = dequant.GGML_QUANT_SIZES[qtype]
            mark = "▶" if qtype == selected else " "
            out.append(f"{mark}{qtype.name:<5}{block:>4} w {size:>4} B {size * 8 / block:>6.4g} b/w ",
                       style=f"bold {ACCENT}" if qtype == selected else "")
            for k, name in enumerate(layout.names):
                nbytes = layout.fields[name][0].itemsize
                cells = max(1, round(nbytes / per_cell))
                label = name if cells >= len(name) + 1 else ""
                out.append(label.center(cells), style=cell_style(CHIP_FG, CHIP_BACKGROUNDS[k % len(CHIP_BACKGROUNDS)]))
            out.append("\n")
        fields = {n for t in (T.Q4_1, T.Q4_K, T.Q6_K) for n in LAYOUTS[t].names}
        out.append_text(note("fields: " + ", ".join(f"{n} = {WHAT[n]}" for n in sorted(fields)), width))
        return out

    @staticmethod
    def _file(r: GgufResult, width: int) -> Text:
        if r.file is None:
            return note("This model was not loaded from a GGUF file; load SmolLM2 (m) to see the tensor types "
                        "of a real one.", width)
        out = heading(f"The file this model came from: {Path(r.file.path).name}")
        rows = [[kind, str(n), quant.fmt_bytes(b)] for kind, n, b in r.file.counts]
        out.append_text(table(["type", "tensors", "bytes"], rows, width, right=[False, True, True]))
        ex = [f"{name} {kind}" for name, kind, _ in r.file.examples[:6]]
        out.append_text(note("e.g. " + ", ".join(ex), width))
        out.append_text(note("The norms stay F32 (tiny and sensitive), the large embedding gets 8 bits, the "
                             "block matrices 4 bits: a file mixes types tensor by tensor.", width))
        return out


def _codes(qtype: T, raw: np.ndarray) -> np.ndarray:
    """The integer code of each weight of one block, unpacked from the bytes (for display)."""
    b = raw.view(LAYOUTS[qtype])
    if qtype == T.Q8_0:
        return b["qs"].reshape(-1).astype(int)
    if qtype in (T.Q4_0, T.Q4_1):
        return dequant._nibbles(b["qs"]).reshape(-1).astype(int)
    if qtype == T.Q4_K:
        return dequant._nibbles(b["qs"].reshape(-1, 4, 32)).reshape(-1).astype(int)
    low = dequant._nibbles(b["ql"].reshape(-1, 2, 64))  # Q6_K
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]
    high = ((b["qh"].reshape(-1, 2, 1, 32) >> shifts) & 3).reshape(-1, 2, 128)
    return ((low | (high << 4)).astype(int) - 32).reshape(-1)
