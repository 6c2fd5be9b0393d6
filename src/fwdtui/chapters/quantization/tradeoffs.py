"""Trade-offs: size against quality on the loaded model, and what each width means for 7B to 405B models."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from fwdtui.chapters.base import register
from fwdtui.chapters.quantization._common import fmt_num, heading, note, table
from fwdtui.chapters.quantization.damage import DamageChapter, Setup
from fwdtui.core import quant

BANDWIDTH = 100e9  # bytes/s: a recent laptop's memory; a data-centre GPU has 2-3 TB/s
WIDTHS = ((16.0, "FP16 / BF16"), (8.5, "Q8_0"), (8.0, "INT8"), (5.0, "Q4_1"), (4.5, "Q4_0 / Q4_K"),
          (4.25, "NF4"), (3.3, "INT3 g64"), (2.3, "INT2 g64"))


@register
class TradeoffsChapter(DamageChapter):
    ID = "quantization.tradeoffs"
    SECTION = "quantization"
    TITLE = "Trade-offs"
    SUMMARY = "Size against quality on this model, and the memory 7B to 405B models need at each width."
    EXPLANATION = """
Fewer bits make a model smaller and, since generating a token reads every weight once, faster:
decoding is bound by memory bandwidth, so halving the bytes roughly doubles the tokens per
second. The price is quality, and it is not linear: 8 bits are nearly free, 4 bits with small
groups cost a little, 3 and 2 bits break small models (large models tolerate more). Below: this
model at each width, measured on your prompt, then the weights of published model sizes.
`s` which weights to quantize, `↑/↓` pick a row.
"""
    CODE_FUNCTIONS = (quant.weight_memory, quant.measure_damage, quant.Scheme.bits_per_weight)
    SCHEME_NAMES: ClassVar[tuple[str, ...]] = ("BF16", "INT8 channel", "Q8_0", "Q4_1", "INT4 g64", "NF4 b64",
                                               "INT3 g64", "INT2 g64")

    def _picture(self, s: Setup, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        model = self.session.model
        n_params = model.n_params if model is not None else s.n_weights
        rest = n_params - s.n_weights  # embeddings, norms and any matrix outside the scope: kept in 16 bits
        out.append_text(note(f"This model: {n_params / 1e6:.1f}M weights, {s.n_weights / 1e6:.1f}M of them quantized "
                             f"({s.scope}), the rest kept in 16 bits:", width, style="bold"))
        rows, sel = [["FP32 (original)", "32", quant.fmt_bytes(n_params * 4), "0", "100%", f"{BANDWIDTH / (n_params * 4):.0f}"]], None
        for i, scheme in enumerate(self.schemes()):
            row = self.rows.get(scheme.name)
            if row is None or row.damage is None:
                what = "measuring…" if row is None else "skipped"
                rows.append([scheme.name, "", "", what, "", ""])
                continue
            d = row.damage
            size = d.weight_bytes + rest * 2
            rows.append([scheme.name, f"{d.bits_per_weight:.2f}", quant.fmt_bytes(size), fmt_num(float(d.kl.mean())),
                         f"{d.top1_agree:.0%}", f"{BANDWIDTH / size:.0f}"])
            if i == self.selected:
                sel = len(rows) - 1
        out.append_text(table(["scheme", "bits/w", "model size", "KL nats", "top-1", "tok/s*"], rows, width,
                              selected=sel, right=[False, True, True, True, True, True]))
        out.append_text(note(f"* the bandwidth bound at {BANDWIDTH / 1e9:.0f} GB/s: each token reads every weight "
                             "once (compute and the KV cache ignored).", width))
        out.append_text(self._q41_note(width))
        out.append("\n")
        out.append_text(self._published(width))
        return out

    @staticmethod
    def _published(width: int) -> Text:
        out = heading("Weights of published model sizes at each width (KV cache not included)")
        sizes = quant.PUBLISHED_SIZES
        rows = []
        for bits, label in WIDTHS:
            rows.append([f"{label} ({bits:g})"] + [quant.fmt_bytes(quant.weight_memory(p.n_params, bits)) for p in sizes])
        out.append_text(table(["bits per weight"] + [p.name for p in sizes], rows, width))
        b7_16 = quant.weight_memory(7e9, 16)
        b7_4 = quant.weight_memory(7e9, 4.5)
        out.append_text(note(f"A 7B model needs {quant.fmt_bytes(b7_16)} in 16 bits (a 24 GB GPU, barely) and "
                             f"{quant.fmt_bytes(b7_4)} at 4.5 bits (a laptop); at {BANDWIDTH / 1e9:.0f} GB/s that is about "
                             f"{BANDWIDTH / b7_16:.0f} against {BANDWIDTH / b7_4:.0f} tokens per second. A 70B model "
                             "only fits one 80 GB GPU below about 9 bits per weight.", width))
        return out
