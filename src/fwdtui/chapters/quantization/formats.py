"""Number formats: a real weight stored as FP32, FP16, BF16, FP8, INT8, INT4 and NF4, bit by bit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.quantization._common import fmt_num, heading, matrix_choices, matrix_name, note, table
from fwdtui.core import quant
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM, xterm, cell_style

SIGN_BG, EXP_BG, MAN_BG = xterm(89), xterm(24), xterm(29)
FG = xterm(255)


@dataclass(frozen=True)
class RowResult:
    row: np.ndarray  # [n_in] one output row of a real weight matrix (or a seeded synthetic one)
    source: str  # where the row came from


@register
class NumberFormatsChapter(Chapter):
    ID = "quantization.formats"
    SECTION = "quantization"
    TITLE = "Number formats"
    SUMMARY = "FP32, FP16, BF16, FP8, INT8, INT4 and NF4: the same real weight in each."
    EXPLANATION = """
A float spends its bits on a **sign**, an **exponent** (how big: the range) and a **mantissa**
(how precise). FP16 keeps 10 mantissa bits but only 5 exponent bits (max 65504); BF16 keeps FP32's
8-bit exponent and cuts the mantissa to 7 bits: the same range, about 2-3 significant digits.
**Integers** have no exponent: a row (or group) of weights shares one **scale**, and each weight
becomes a small whole number: INT8 has 255 steps, INT4 only 15. **NF4** keeps 16 levels too,
placed at quantiles of a normal distribution, where weights really are dense.
`←/→` pick a weight of the row, `+/-` double or halve it, `t` another matrix.
"""
    CODE_FUNCTIONS = (quant.bf16_bits, quant.round_minifloat, quant.quantize_absmax, quant.nf4_levels,
                      quant.quantize_levels)
    NEEDS_MODEL = False

    BINDINGS = [
        Binding("right", "pick(1)", "Next weight", tooltip="The next weight of the row"),
        Binding("left", "pick(-1)", "Prev weight", show=False, tooltip="The previous weight of the row"),
        Binding("plus,equals_sign", "scale(2)", "×2", show=False, key_display="+", tooltip="Double the value"),
        Binding("minus", "scale(0.5)", "÷2", show=False, key_display="-", tooltip="Halve the value"),
        Binding("t", "next_matrix", "Matrix", tooltip="Take the row from another weight matrix"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.weight_index = 0
        self.multiplier = 1.0
        self.matrix_index = 0

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="formats-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> RowResult:
        model = snapshot.model
        if model is None:  # a seeded synthetic row: normal weights with two outliers
            rng = np.random.default_rng(0)
            row = (0.04 * rng.standard_normal(256)).astype(np.float32)
            row[[17, 90]] = [0.31, -0.22]
            return RowResult(row, "a synthetic row (no model loaded): 256 normal weights, two outliers")
        label, name = matrix_name(model.config, 0, self.matrix_index)
        w = quant.weight_out_in(model.config, name, model.weights[name])
        return RowResult(np.array(w[0], dtype=np.float32), f"{name}, row 0 ({w.shape[1]} weights)")

    def action_pick(self, step: int) -> None:
        if self.result is not None:
            self.weight_index = (self.weight_index + step) % len(self.result.row)
            self.multiplier = 1.0
            self.redraw()

    def action_scale(self, factor: float) -> None:
        self.multiplier = float(np.clip(self.multiplier * factor, 2.0**-40, 2.0**40))
        self.redraw()

    def action_next_matrix(self) -> None:
        model = self.session.model
        if model is None:
            self.notify("Without a model there is only the synthetic row.", timeout=3)
            return
        self.matrix_index = (self.matrix_index + 1) % len(matrix_choices(model.config))
        self.weight_index, self.multiplier = 0, 1.0
        self.recompute()

    def draw(self, result: RowResult) -> None:
        self.weight_index %= len(result.row)
        value = float(result.row[self.weight_index]) * self.multiplier
        self.update_breadcrumb(f"weight #{self.weight_index} = {value:.6g}")
        self.query_one("#formats-canvas", Canvas).show(lambda width: self._picture(result, value, width))

    # --- the picture ---------------------------------------------------------------------------
    def _picture(self, r: RowResult, value: float, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        scaled = "" if self.multiplier == 1 else f" × {self.multiplier:g}"
        out.append(f"Weight #{self.weight_index}{scaled} = {value:.8g}\n", style=f"bold {ACCENT}")
        out.append_text(note(f"from {r.source}", width))
        out.append_text(self._bits_block(value, width))
        out.append_text(self._int_block(r.row * self.multiplier, value, width))
        out.append("\n")
        out.append_text(self._row_table(r.row, width))
        out.append("\n")
        out.append_text(self._range_table(width))
        return out

    def _bits_block(self, value: float, width: int) -> Text:
        out = Text()
        legend = Text("  ")
        for label, bg in (("sign", SIGN_BG), ("exponent", EXP_BG), ("mantissa", MAN_BG)):
            legend.append(f" {label} ", style=cell_style(FG, bg))
            legend.append(" ")
        out.append_text(legend)
        out.append("\n")
        for fmt in quant.FLOAT_FORMATS:
            stored = float(quant.round_to_format(np.array([value], np.float32), fmt)[0])
            sign, exp, man = quant.split_code(quant.float_code(value, fmt), fmt)
            out.append(f"{fmt.name:<9}", style="bold")
            cells = Text()
            cells.append(sign, style=cell_style(FG, SIGN_BG))
            cells.append(exp, style=cell_style(FG, EXP_BG))
            cells.append(man, style=cell_style(FG, MAN_BG))
            out.append_text(cells)
            out.append(" " * (33 - fmt.bits))
            out.append_text(self._stored(value, stored, width - 43, saturates=abs(value) > fmt.max_value))
        return out

    @staticmethod
    def _stored(value: float, stored: float, room: int, saturates: bool = False) -> Text:
        err = abs(stored - value)
        rel = err / abs(value) if value else 0.0
        text = Text(f"= {stored:<11.6g}")
        if room > 20:
            if err == 0:
                text.append(" exact", style=DIM)
            elif stored == 0:
                text.append(" underflow to 0", style="bold red")
            else:
                text.append(f" err {rel:.2%}" + (" (clipped)" if saturates else ""), style="red" if rel > 0.05 else DIM)
        text.append("\n")
        return text

    def _int_block(self, row: np.ndarray, value: float, width: int) -> Text:
        """The integer formats store a code and share a scale with the rest of the row (or group)."""
        out = Text()
        i = self.weight_index
        amax = float(np.abs(row).max()) or 1.0
        for bits in (8, 4):
            iq = quant.quantize_absmax(row[None, :], bits, "channel")
            stored = float(iq.dequantize()[0, i])
            out.append(f"INT{bits:<6}", style="bold")
            out.append(f"code {int(iq.q[0, i]):>4} × scale {fmt_num(float(iq.scale[0, 0]))}".ljust(33))
            out.append_text(self._stored(value, stored, width - 43))
        g = min(64, row.size)
        lq = quant.quantize_levels(row[None, :], quant.NF4_LEVELS, g)
        code = int(lq.codes[0, i])
        block_max = float(lq.absmax[0, i // g])
        out.append(f"{'NF4':<9}", style="bold")
        out.append(f"level {code:>2} ({quant.NF4_LEVELS[code]:+.3f}) × {fmt_num(block_max)}"[:32].ljust(33))
        out.append_text(self._stored(value, float(lq.dequantize()[0, i]), width - 43))
        out.append_text(note(f"INT8/INT4 scale = the row's largest |weight| ({fmt_num(amax)}) / 127 or / 7; "
                             f"NF4 scales each block of {g} by its own largest |weight|.", width))
        return out

    def _row_table(self, row: np.ndarray, width: int) -> Text:
        """Every weight of the row through every format: the error the format costs."""
        out = heading(f"The whole row ({row.size} weights) in each format")
        rows = []
        for name, bits, w_hat in self._row_formats(row):
            err = quant.weight_error(row, w_hat)
            zeros = int(np.sum((w_hat == 0) & (row != 0)))
            rows.append([name, f"{bits:g}", fmt_num(err["max"]), f"{err['rel']:.2%}", str(zeros)])
        out.append_text(table(["format", "bits/w", "max |err|", "RMS err", "→0"], rows, width))
        out.append_text(note("RMS err is relative to the row's RMS; →0 counts weights that became zero.", width))
        return out

    @staticmethod
    def _row_formats(row: np.ndarray):
        m = row[None, :]
        yield "FP16", 16, quant.round_to_format(row, quant.FP16)
        yield "BF16", 16, quant.round_to_format(row, quant.BF16)
        yield "FP8 E4M3 (raw)", 8, quant.round_to_format(row, quant.FP8_E4M3)
        yield "FP8 E4M3 scaled", 8, quant.fake_quantize(m, quant.Scheme("", "float", 8, fmt="FP8 E4M3"))[0]
        yield "INT8 absmax", 8, quant.quantize_absmax(m, 8, "channel").dequantize()[0]
        yield "INT4 absmax", 4, quant.quantize_absmax(m, 4, "channel").dequantize()[0]
        yield "INT4 g64 zero-pt", 4.31, quant.quantize_zeropoint(m, 4, "group", 64).dequantize()[0]
        yield "NF4 b64", 4.25, quant.quantize_levels(m, quant.NF4_LEVELS, 64).dequantize()[0]

    @staticmethod
    def _range_table(width: int) -> Text:
        out = heading("Range against precision")
        rows = []
        for f in quant.FLOAT_FORMATS:
            rows.append([f.name, str(f.bits), f"{f.exp_bits}/{f.man_bits}", f"{f.max_value:.3g}", f"{f.min_normal:.2g}",
                         f"{f.epsilon:.2g}"])
        out.append_text(table(["format", "bits", "exp/man", "largest", "smallest normal", "step at 1.0"], rows, width))
        out.append_text(note("Weights of a trained model mostly lie between 0.001 and 1: FP16 and BF16 hold them "
                             "with small relative error; raw FP8 E4M3 flushes the smallest ones toward 0, which is "
                             "why FP8 weights carry a scale. Integer formats trade the exponent away for a shared "
                             "scale.", width))
        return out
