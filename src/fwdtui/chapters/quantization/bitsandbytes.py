"""bitsandbytes: LLM.int8's outlier features found in the loaded model's real activations, and
NF4's normal-quantile levels against uniform INT4 on its real weight distribution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.quantization._common import TraceCache, fmt_num, heading, note, table
from fwdtui.core import quant
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

# the three inputs a block's linear layers read: (label, trace name, the first weight that reads it)
INPUTS = (("attention input", "ln1.out", 0), ("MLP input", "ln2.out", 1), ("MLP down input", "mlp.post", 2))
HIST_ROWS = 5
BARS = " ▁▂▃▄▅▆▇█"


def weight_for(config, layer: int, which: int) -> str:
    """The weight that multiplies input `which` (0 attention, 1 MLP, 2 MLP down) in `layer`."""
    part = "attn" if which == 0 else "mlp"
    names = quant.linear_weight_names(config, [layer], part)
    return names[0] if which < 2 else names[-1]


@dataclass(frozen=True)
class BnbView:
    layer: int
    input_label: str
    threshold: float
    counts: np.ndarray  # [n_layer, 3] outlier features per layer and input
    max_abs: np.ndarray  # [n_layer, 3] largest |activation|
    weight: str
    n_in: int
    n_tokens: int
    int8: quant.Int8Matmul
    err_plain: float  # relative output error of plain int8
    err_split: float  # ... of LLM.int8
    outlier_mags: np.ndarray  # [n_outliers] max |x| of each outlier feature
    normed: np.ndarray  # [n] weights of the MLP matrix divided by their block's absmax
    nf4_err: float
    int4_err: float
    fp4_err: float
    hist_weight: str


@register
class BitsandbytesChapter(Chapter):
    ID = "quantization.bitsandbytes"
    SECTION = "quantization"
    TITLE = "bitsandbytes"
    SUMMARY = "LLM.int8 outlier features in the real activations; NF4 against INT4 on the real weights."
    EXPLANATION = """
**LLM.int8** quantizes both the activations (one scale per token) and the weights (one per output
row) to int8 and multiplies them in integers. A few input *features* carry huge values in every
token; they would set every token's scale and squash the rest, so any feature above a threshold
(6.0) is split off and multiplied in fp16. **NF4** (QLoRA) stores 4-bit codes into 16 levels at
quantiles of a normal distribution, one absmax per 64 weights; weights are roughly normal, so the
levels sit where the weights are. `l` layer, `i` which input, `+/-` the threshold.
"""
    CODE_FUNCTIONS = (quant.llm_int8_matmul, quant.int8_matmul, quant.nf4_levels, quant.quantize_levels)

    BINDINGS = [
        Binding("l", "next_layer", "Layer", tooltip="The next layer"),
        Binding("i", "next_input", "Input", tooltip="Attention input, MLP input or the MLP's down-projection input"),
        Binding("plus,equals_sign", "threshold(2)", "Threshold×2", show=False, key_display="+",
                tooltip="Double the outlier threshold"),
        Binding("minus", "threshold(0.5)", "Threshold÷2", show=False, key_display="-",
                tooltip="Halve the outlier threshold"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.layer_index: int | None = None  # the layer with the most outliers until the user picks one
        self.input_index: int | None = None
        self.threshold = 6.0
        self.traces = TraceCache(2)

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="bnb-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> BnbView:
        model = snapshot.require_model()
        cfg = model.config
        snapshot.progress(None, "tracing the prompt")
        trace = self.traces.trace(model, snapshot.ids)
        counts = np.zeros((cfg.n_layer, len(INPUTS)), dtype=int)
        max_abs = np.zeros((cfg.n_layer, len(INPUTS)))
        for L in range(cfg.n_layer):
            for k, (_, key, _) in enumerate(INPUTS):
                a = np.abs(trace[f"blocks.{L}.{key}"])
                counts[L, k] = int((a > self.threshold).any(axis=0).sum())
                max_abs[L, k] = float(a.max())
        if self.layer_index is None or self.input_index is None:
            L, k = np.unravel_index(int(np.argmax(max_abs)), max_abs.shape)
            layer, which = int(L), int(k)
        else:
            layer, which = self.layer_index % cfg.n_layer, self.input_index % len(INPUTS)
        name = weight_for(cfg, layer, which)
        w = quant.weight_out_in(cfg, name, model.weights[name])
        x = quant.layer_input(trace, cfg, name)
        snapshot.progress(0.5, "int8 products")
        r = quant.llm_int8_matmul(x, w, self.threshold)
        ref = x @ w.T
        denom = float(np.sum(ref.astype(np.float64) ** 2)) or 1.0
        err = lambda y: float(np.sum((y - ref).astype(np.float64) ** 2) / denom)  # noqa: E731
        mags = np.abs(x[:, r.outliers]).max(axis=0) if r.outliers.size else np.zeros(0)
        # NF4 against uniform INT4 and FP4, all with one absmax per 64 weights, on an MLP matrix
        hist_name = weight_for(cfg, layer, 1)
        wm = quant.weight_out_in(cfg, hist_name, model.weights[hist_name])
        g = min(64, wm.shape[1])
        nf4 = quant.quantize_levels(wm, quant.NF4_LEVELS, g)
        normed = (wm / np.repeat(nf4.absmax, g, axis=1)[:, : wm.shape[1]]).reshape(-1)
        errs = [quant.weight_error(wm, quant.quantize_levels(wm, lv, g).dequantize())["rel"]
                for lv in (quant.NF4_LEVELS, quant.INT4_LEVELS, quant.FP4_LEVELS)]
        return BnbView(layer, INPUTS[which][0], self.threshold, counts, max_abs, name, int(w.shape[1]), int(x.shape[0]),
                       r, err(r.y_plain), err(r.y), mags, normed, errs[0], errs[1], errs[2], hist_name)

    def action_next_layer(self) -> None:
        if self.result is not None:
            self.layer_index = self.result.layer + 1
            self.input_index = [label for label, _, _ in INPUTS].index(self.result.input_label)
            self.recompute()

    def action_next_input(self) -> None:
        if self.result is not None:
            self.layer_index = self.result.layer
            self.input_index = [label for label, _, _ in INPUTS].index(self.result.input_label) + 1
            self.recompute()

    def action_threshold(self, factor: float) -> None:
        self.threshold = float(np.clip(self.threshold * factor, 0.25, 512.0))
        if self.result is not None:
            self.layer_index = self.result.layer
            self.input_index = [label for label, _, _ in INPUTS].index(self.result.input_label)
        self.recompute()

    def draw(self, view: BnbView) -> None:
        self.update_breadcrumb(f"layer {view.layer} · {view.input_label} · threshold {view.threshold:g}")
        self.query_one("#bnb-canvas", Canvas).show(lambda width: self._picture(view, width))

    def _picture(self, v: BnbView, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._int8(v, width))
        out.append("\n")
        out.append_text(self._per_layer(v, width))
        out.append("\n")
        out.append_text(self._nf4(v, width))
        return out

    @staticmethod
    def _int8(v: BnbView, width: int) -> Text:
        r = v.int8
        out = note(f"LLM.int8 on layer {v.layer}'s {v.input_label} ({v.n_tokens} tokens × {v.n_in} features) "
                   f"× {v.weight.split('.', 2)[2]}", width, style="bold")
        n_out = r.outliers.size
        if n_out:
            cells = [f"#{int(j)} {m:.1f}" for j, m in sorted(zip(r.outliers, v.outlier_mags), key=lambda p: -p[1])[:6]]
            out.append_text(note(f"{n_out} outlier feature{'s' if n_out > 1 else ''} above {v.threshold:g} "
                                 f"({n_out / v.n_in:.1%} of {v.n_in}): " + " · ".join(cells), width,
                                 style=f"bold {ACCENT}"))
        else:
            out.append(f"no feature above {v.threshold:g} here (largest |x| {fmt_num(float(v.max_abs[v.layer].max()))})"
                       "; press i, l or - to find some\n", style=DIM)
        rows = [["int8 everything", fmt_num(v.err_plain)], ["LLM.int8 (outliers in fp16)", fmt_num(v.err_split)]]
        out.append_text(table(["product", "output error"], rows, width, right=[False, True]))
        if n_out and v.err_split < v.err_plain:
            out.append_text(note(f"Splitting {n_out} feature{'s' if n_out > 1 else ''} off cuts the error "
                                 f"{v.err_plain / max(v.err_split, 1e-30):.0f}× for {n_out / v.n_in:.1%} of the "
                                 "work in fp16.", width))
        return out

    @staticmethod
    def _per_layer(v: BnbView, width: int) -> Text:
        out = heading(f"Outlier features (|x| > {v.threshold:g}) in every layer")
        n_layer = v.counts.shape[0]
        shown = min(n_layer, max(4, (width - 21) // 3))
        out.append(" " * 17 + "".join(f"{L:>3}" for L in range(shown)) + ("  …" if shown < n_layer else "") + "\n",
                   style=DIM)
        for k, (label, _, _) in enumerate(INPUTS):
            out.append(f"{label:<17}")
            for L in range(shown):
                c = int(v.counts[L, k])
                style = f"bold {ACCENT}" if (L == v.layer and label == v.input_label) else ("" if c else DIM)
                out.append(f"{c:>3}", style=style)
            out.append("\n")
        return out

    @staticmethod
    def _nf4(v: BnbView, width: int) -> Text:
        out = note(f"NF4 against INT4 on {v.hist_weight} (weights ÷ their block's absmax)", width, style="bold")
        cols = max(20, min(96, width - 8))
        hist, _ = np.histogram(v.normed, bins=cols, range=(-1, 1))
        h = hist / max(1, hist.max()) * HIST_ROWS * 8  # heights in eighths
        for row in range(HIST_ROWS - 1, -1, -1):
            line = "".join(BARS[int(np.clip(hh - row * 8, 0, 8))] for hh in h)
            out.append("      " + line + "\n", style=cell_style(SEQUENTIAL[-4]))
        for label, levels, colour in (("NF4", quant.NF4_LEVELS, ACCENT), ("INT4", quant.INT4_LEVELS, SEQUENTIAL[-1])):
            marks = [" "] * cols
            for lv in levels:
                marks[int(np.clip((lv + 1) / 2 * cols, 0, cols - 1))] = "┃"
            out.append(f"{label:<6}", style="bold")
            out.append("".join(marks) + "\n", style=colour)
        out.append("      -1" + " " * max(0, cols // 2 - 3) + "0" + " " * max(0, cols - cols // 2 - 3) + "+1\n", style=DIM)
        rows = [["NF4 (normal quantiles)", f"{v.nf4_err:.2%}"], ["INT4 (evenly spaced)", f"{v.int4_err:.2%}"],
                ["FP4 E2M1", f"{v.fp4_err:.2%}"]]
        out.append_text(table(["16 levels, absmax per 64", "RMS weight error"], rows, width, right=[False, True]))
        out.append_text(note("NF4 puts more levels near 0, where most weights are, and fewer in the tails; INT4 "
                             "spends as many on the rare large weights as on the crowd.", width))
        return out
