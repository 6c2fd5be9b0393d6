"""AWQ on a real layer: the input channels with large activations, the scales that protect them,
the search over alpha, and the scales folded into the op before the layer."""

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

N_HELD = 64  # tokens of the built-in text used to check the scales on text they were not fitted on


@dataclass(frozen=True)
class AwqView:
    name: str
    label: str
    shape: tuple[int, int]
    bits: int
    group_size: int
    n_cal: int
    result: quant.AwqResult
    held_rtn: float
    held_awq: float
    kl_rtn: float
    kl_awq: float
    absorber: str | None  # the op that took 1/s, when one can
    fold_diff: float  # max |logits| difference between folded and unfolded AWQ (nan when not folded)
    salient_weight_err_rtn: float  # RMS error on the salient columns' weights, RTN
    salient_weight_err_awq: float


@register
class AwqChapter(MatrixPicker, Chapter):
    ID = "quantization.awq"
    SECTION = "quantization"
    TITLE = "AWQ"
    SUMMARY = "Activation-aware scales that protect the weights of the loudest input channels."
    EXPLANATION = """
Not all weights matter alike: a weight multiplies its input channel, and a few channels carry
much larger activations than the rest, so errors there cost most. **AWQ** multiplies the weights
of input channel j by s_j = mean|x_j|^α before rounding and divides the input by s_j (folded into
the norm or matrix before, so it costs nothing at run time): the rounding error of those weights,
seen at the output, shrinks by s_j. α is picked by trying 0, 0.05, … 0.95 on calibration
activations (α = 0 is plain round-to-nearest). It needs only activation magnitudes, so the
prompt suffices. `l` layer, `t` matrix, `n` bits.
"""
    CODE_FUNCTIONS = (quant.awq_search, quant.awq_scales, quant.awq_fake_quantize, quant.awq_fold)

    BINDINGS = [
        Binding("l", "next_layer", "Layer", tooltip="The same matrix in the next layer"),
        Binding("t", "next_matrix", "Matrix", tooltip="Another matrix of the layer"),
        Binding("n", "toggle_bits", "Bits", show=False, tooltip="4 or 3 bits per weight"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.traces = TraceCache()

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="awq-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> AwqView:
        model = snapshot.require_model()
        cfg = model.config
        label, name = self.picked_matrix(cfg)
        w = quant.weight_out_in(cfg, name, model.weights[name])
        group = min(64, w.shape[1])
        snapshot.progress(0.0, "tracing the prompt")
        x = quant.layer_input(self.traces.trace(model, snapshot.ids), cfg, name)
        snapshot.progress(0.2, "tracing held-out text")
        x_held = quant.layer_input(self.traces.trace(model, calibration_ids(model, N_HELD)), cfg, name)
        snapshot.progress(0.5, "searching alpha")
        r = quant.awq_search(w, x, bits=self.bits, group_size=group, cancelled=snapshot.cancelled)
        rtn = quant.quantize_zeropoint(w, self.bits, "group", group).dequantize()
        snapshot.progress(0.8, "running the prompt with this matrix quantized")
        ref = model.logits(snapshot.ids)
        kl_rtn, _ = prompt_kl(model, snapshot.ids, ref, name, rtn)
        kl_awq, unfolded = prompt_kl(model, snapshot.ids, ref, name, r.q_weight)
        folded = quant.awq_fold(model, name, r.scales, self.bits, group)
        absorber, diff = None, float("nan")
        if folded is not None:
            absorber = folded[0]
            diff = float(np.abs(model.variant(replace_weights=folded[1]).logits(snapshot.ids) - unfolded).max())
        salient = np.argsort(-r.act_magnitude)[: max(1, w.shape[1] // 100)]
        return AwqView(name, label, tuple(w.shape), self.bits, group, len(x), r,
                       quant.output_error(x_held, w, rtn), quant.output_error(x_held, w, r.q_weight),
                       kl_rtn, kl_awq, absorber, diff,
                       quant.weight_error(w[:, salient], rtn[:, salient])["rel"],
                       quant.weight_error(w[:, salient], r.q_weight[:, salient])["rel"])

    def draw(self, view: AwqView) -> None:
        self.update_breadcrumb(f"{view.label} · INT{view.bits} g{view.group_size} · α={view.result.alpha:.2f}")
        self.query_one("#awq-canvas", Canvas).show(lambda width: self._picture(view, width))

    def _picture(self, v: AwqView, width: int) -> Text:
        r = v.result
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(note(f"{v.name} [{v.shape[0]} out × {v.shape[1]} in], INT{v.bits} groups of {v.group_size}, "
                             f"scales from the prompt's {v.n_cal} tokens", width, style="bold"))
        rows = [["round-to-nearest", fmt_num(r.rtn_error), fmt_num(v.held_rtn), fmt_num(v.kl_rtn),
                 f"{v.salient_weight_err_rtn:.1%}"],
                [f"AWQ α={r.alpha:.2f}", fmt_num(r.awq_error), fmt_num(v.held_awq), fmt_num(v.kl_awq),
                 f"{v.salient_weight_err_awq:.1%}"]]
        out.append_text(table(["output error", "prompt", f"held-out ({N_HELD})", "KL", "salient w err"], rows, width,
                              right=[False, True, True, True, True]))
        out.append_text(note("Output error = ||XWᵀ − XQᵀ||² / ||XWᵀ||²; KL = next-token drift with only this matrix "
                             "quantized; salient w err = RMS weight error on the top 1% channels.", width))
        out.append_text(self._channels(v, width))
        out.append_text(self._search(v, width))
        out.append_text(self._fold(v, width))
        return out

    @staticmethod
    def _channels(v: AwqView, width: int) -> Text:
        r = v.result
        out = heading("Mean |activation| of each input channel (the loud ones are salient)")
        out.append_text(sparkline(r.act_magnitude, max(8, min(r.act_magnitude.size, width - 2)), vmin=0.0))
        out.append("\n")
        top = np.argsort(-r.act_magnitude)[:6]
        median = float(np.median(r.act_magnitude))
        cells = [f"#{int(j)} {r.act_magnitude[j]:.2f} (s={r.scales[j]:.2f})" for j in top]
        out.append("loudest: " + " · ".join(cells) + "\n")
        out.append(f"median channel {median:.3f}; loudest {r.act_magnitude[top[0]] / max(median, 1e-12):.0f}× that\n",
                   style=DIM)
        return out

    @staticmethod
    def _search(v: AwqView, width: int) -> Text:
        r = v.result
        out = heading("The search: output error for α = 0 … 0.95")
        out.append("error ", style=DIM)
        out.append_text(sparkline(r.errors, len(r.errors)))
        best = int(np.argmin(r.errors))
        out.append(f"  best α = {r.alphas[best]:.2f}: {fmt_num(r.errors[best])} vs {fmt_num(r.errors[0])} at α = 0\n")
        out.append("      " + " " * best + "▲\n", style=ACCENT)
        if r.alpha == 0:
            out.append_text(note("Here no scaling helps: this layer's channels are too even for AWQ to find "
                                 "salient ones worth protecting.", width))
        return out

    @staticmethod
    def _fold(v: AwqView, width: int) -> Text:
        if v.absorber is None:
            return note("Nothing before this matrix can absorb 1/s (a GELU, or a mix of attention heads sits in "
                        "between), so AWQ would leave it unscaled; the numbers above apply the scales explicitly.",
                        width)
        return note(f"Folded for real: {v.absorber} divided by s, the matrix stored as Q(W·s). The model's logits "
                    f"match the explicit version to {v.fold_diff:.1e}: the scaling is free at run time.", width,
                    style=f"bold {ACCENT}")
