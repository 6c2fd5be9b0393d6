"""GPTQ on one real weight matrix: round-to-nearest against GPTQ's column-by-column error
correction, on the calibration tokens and on held-out ones, step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.quantization._common import (
    MatrixPicker, TraceCache, calibration_ids, fmt_num, heading, note, prompt_kl, table,
)
from fwdtui.core import quant
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM
from fwdtui.widgets.plots import sparkline

N_EXTRA = 96  # tokens of the built-in text added to the calibration set (mode 1)
N_HELD = 64  # tokens of the built-in text never used for calibration


@dataclass(frozen=True)
class GptqView:
    name: str
    label: str
    shape: tuple[int, int]  # [n_out, n_in]
    bits: int
    group_size: int
    n_cal: int
    calibration: str
    result: quant.GptqResult
    held_rtn: float
    held_gptq: float
    kl_rtn: float  # mean KL on the prompt with only this matrix quantized by RTN
    kl_gptq: float


@register
class GptqChapter(MatrixPicker, Chapter):
    ID = "quantization.gptq"
    SECTION = "quantization"
    TITLE = "GPTQ"
    SUMMARY = "Quantizing a real matrix column by column, correcting each rounding error as it goes."
    EXPLANATION = """
Round-to-nearest (**RTN**) rounds every weight on its own. **GPTQ** rounds one input column at a
time and then nudges the columns not yet rounded so that the layer's *outputs* on calibration
inputs X stay as close as possible: the error e of column i is spread over the later columns in
proportion to row i of U, the Cholesky factor of the inverse of H = 2XᵀX. Weights that see
correlated inputs can cover for each other. Below: one matrix of the loaded model, calibrated on
the prompt's activations (small-scale: the paper uses 128 sequences of 2048 tokens). `←/→` step
through columns, `l` layer, `t` matrix, `k` calibration set, `n` bits.
"""
    CODE_FUNCTIONS = (quant.gptq_quantize, quant.hessian, quant.output_error, quant.quantize_zeropoint)

    BINDINGS = [
        Binding("l", "next_layer", "Layer", tooltip="Quantize the same matrix in the next layer"),
        Binding("t", "next_matrix", "Matrix", tooltip="Quantize another matrix of the layer"),
        Binding("k", "toggle_calibration", "Calibration",
                tooltip="Calibrate on the prompt only, or on the prompt plus 96 tokens of built-in text"),
        Binding("n", "toggle_bits", "Bits", show=False, tooltip="4 or 3 bits per weight"),
        Binding("right", "step(1)", "Next column", show=False, tooltip="The next column of the loop"),
        Binding("left", "step(-1)", "Prev column", show=False, tooltip="The previous column of the loop"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.calibration_mode = 0
        self.step_index = 0
        self.traces = TraceCache()

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="gptq-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> GptqView:
        model = snapshot.require_model()
        cfg = model.config
        label, name = self.picked_matrix(cfg)
        w = quant.weight_out_in(cfg, name, model.weights[name])
        snapshot.progress(0.0, "tracing the prompt")
        x_prompt = quant.layer_input(self.traces.trace(model, snapshot.ids), cfg, name)
        snapshot.progress(0.1, "tracing the built-in text (held-out tokens)")
        text_ids = calibration_ids(model, N_EXTRA + N_HELD)
        x_text = quant.layer_input(self.traces.trace(model, text_ids), cfg, name)
        n_extra = max(0, len(text_ids) - N_HELD)
        x_held = x_text[n_extra:]
        if self.calibration_mode == 1 and n_extra:
            x_cal = np.concatenate([x_prompt, x_text[:n_extra]])
            calibration = f"prompt + {n_extra} tokens of built-in text"
        else:
            x_cal, calibration = x_prompt, "the prompt"
        group = min(64, w.shape[1])
        snapshot.progress(0.3, f"GPTQ on {name}")
        result = quant.gptq_quantize(w, x_cal, bits=self.bits, group_size=group, n_steps=24,
                                     cancelled=snapshot.cancelled)
        snapshot.progress(0.8, "running the prompt with this matrix quantized")
        ref = model.logits(snapshot.ids)
        kl_rtn, _ = prompt_kl(model, snapshot.ids, ref, name, result.rtn_weight)
        kl_gptq, _ = prompt_kl(model, snapshot.ids, ref, name, result.q_weight)
        return GptqView(name, label, tuple(w.shape), self.bits, group, len(x_cal), calibration, result,
                        quant.output_error(x_held, w, result.rtn_weight), quant.output_error(x_held, w, result.q_weight),
                        kl_rtn, kl_gptq)

    # --- keys (layer, matrix and bits: MatrixPicker) ----------------------------------------------
    def action_toggle_calibration(self) -> None:
        self.calibration_mode = 1 - self.calibration_mode
        self.recompute()

    def action_step(self, step: int) -> None:
        if self.result is not None:
            self.step_index = (self.step_index + step) % max(1, len(self.result.result.steps))
            self.redraw()

    def draw(self, view: GptqView) -> None:
        self.update_breadcrumb(f"{view.label} · INT{view.bits} g{view.group_size}")
        self.query_one("#gptq-canvas", Canvas).show(lambda width: self._picture(view, width))

    # --- the picture ---------------------------------------------------------------------------
    def _picture(self, v: GptqView, width: int) -> Text:
        r = v.result
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(note(f"{v.name} [{v.shape[0]} out × {v.shape[1]} in], INT{v.bits} groups of {v.group_size}, "
                             f"calibrated on {v.calibration} ({v.n_cal} tokens)", width, style="bold"))
        rows = [["round-to-nearest", fmt_num(r.rtn_error), fmt_num(v.held_rtn), fmt_num(v.kl_rtn)],
                ["GPTQ", fmt_num(r.gptq_error), fmt_num(v.held_gptq), fmt_num(v.kl_gptq)]]
        out.append_text(table(["output error", "calibration", f"held-out ({N_HELD} tok)", "KL on prompt"], rows, width,
                              right=[False, True, True, True]))
        out.append_text(note("Output error = ||XWᵀ − XQᵀ||² / ||XWᵀ||² of this layer; KL = the model's next-token "
                             "drift (nats) with only this matrix quantized.", width))
        out.append_text(self._verdict(v, width))
        out.append_text(self._curves(v, width))
        out.append_text(self._step(v, width))
        return out

    @staticmethod
    def _verdict(v: GptqView, width: int) -> Text:
        r = v.result
        if r.gptq_error < r.rtn_error and v.held_gptq > v.held_rtn:
            return note(f"GPTQ fits the {v.n_cal} calibration tokens {r.rtn_error / max(r.gptq_error, 1e-12):.0f}× better "
                        "than RTN, but does worse on tokens it has not seen: with fewer tokens than the "
                        f"{v.shape[1]} inputs, XᵀX is far from full rank and GPTQ over-fits. Press k for more "
                        "calibration tokens.", width, style=f"bold {ACCENT}")
        if r.gptq_error < r.rtn_error:
            return note(f"GPTQ cuts the output error {r.rtn_error / max(r.gptq_error, 1e-12):.1f}× on the calibration "
                        f"tokens and {v.held_rtn / max(v.held_gptq, 1e-12):.2f}× on held-out tokens.", width,
                        style=f"bold {ACCENT}")
        return Text("")

    @staticmethod
    def _curves(v: GptqView, width: int) -> Text:
        r = v.result
        out = heading("Output error while the columns are quantized, left to right")
        top = float(max(r.rtn_curve.max(), r.gptq_curve.max(), 1e-12))
        n = max(4, min(len(r.rtn_curve), width - 22))
        for label, curve in (("RTN ", r.rtn_curve), ("GPTQ", r.gptq_curve)):
            out.append(f"{label} ", style="bold")
            out.append_text(sparkline(curve, n, vmin=0.0, vmax=top))
            out.append(f"  → {fmt_num(float(curve[-1]))}\n", style=DIM)
        out.append_text(note("RTN's error only grows; GPTQ's dips as corrections on later columns cancel earlier "
                             "errors.", width))
        return out

    def _step(self, v: GptqView, width: int) -> Text:
        steps = v.result.steps
        if not steps:
            return Text("")
        s = steps[self.step_index % len(steps)]
        out = heading(f"Step {s.column}: column {s.column} (←/→)")
        n = max(3, min(8, (width - 14) // 9))
        err = (s.w_col - s.q_col) / s.u_diag
        for label, vals in (("w now", s.w_col), ("rounded", s.q_col), ("e/U[i,i]", err),
                            ("col i+1 +=", s.next_change)):
            out.append(f"{label:<11}", style=DIM)
            out.append(" ".join(f"{fmt_num(float(x)):>8}" for x in vals[:n]) + " …\n")
        out.append_text(note(f"U[i,i] = {s.u_diag:.4g}. 'w now' already carries the corrections from columns "
                             "before it; the last line is what this column's error adds to the next one, for the "
                             f"first {n} output rows.", width))
        return out
