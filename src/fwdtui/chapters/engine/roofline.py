"""Memory and the roofline: this CPU's measured bandwidth and compute, and where prefill and decode sit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, fmt_bytes, fmt_seconds, note
from fwdtui.core import engine_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import SEQUENTIAL, cell_style

BATCHES = (8, 32, 128)


@dataclass(frozen=True)
class RooflineResult:
    roof: engine_lab.Roofline
    weight_bytes: int
    timing: engine_lab.PrefillDecodeTiming
    prefill: engine_lab.StepCost
    decode: engine_lab.StepCost
    batched: tuple[engine_lab.StepCost, ...]
    model_name: str


@register
class RooflineChapter(Picture, Chapter):
    ID = "engine.roofline"
    PICTURE = "roof"
    SECTION = "engine"
    TITLE = "Memory and the roofline"
    SUMMARY = "Why decoding is bound by memory: measured bandwidth, the decode ceiling, the roofline."
    EXPLANATION = """
A computation is held back by one of two roofs: how many FLOPs per second the processor does, or
how many bytes per second memory delivers. Its **arithmetic intensity** (FLOPs per byte moved)
says which: below the **ridge** (peak FLOP/s ÷ bandwidth) the memory roof is lower. Batch-1 decode
reads every weight for one multiply-add, about 0.5 FLOP per byte in float32, far below the ridge:
so the fastest decode possible is bandwidth ÷ bytes of weights per token. Both roofs are measured
on this machine below (a streaming matrix-vector product and a large matrix product). `t` measures
again.
"""
    CODE_FUNCTIONS = (engine_lab.measure_roofline, engine_lab.measure_bandwidth, engine_lab.measure_peak_flops,
                      engine_lab.step_cost)
    BINDINGS = [Binding("t", "remeasure", "Measure again", tooltip="Measure bandwidth, compute and the model again")]

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> RooflineResult:
        model = snapshot.require_model()
        snapshot.progress(0.1, "measuring memory bandwidth and peak FLOP/s")
        roof = engine_lab.measure_roofline()
        if snapshot.cancelled():
            return None
        snapshot.progress(0.5, "timing the model")
        timing = engine_lab.time_prefill_decode(model, snapshot.ids, 3, cancelled=snapshot.cancelled)
        n = timing.n_prompt
        return RooflineResult(roof, engine_lab.weight_bytes(model), timing, engine_lab.step_cost(model, n, 0),
                              engine_lab.step_cost(model, 1, n),
                              tuple(engine_lab.step_cost(model, b, 0) for b in BATCHES), model.info.name)

    def draw(self, result: RooflineResult) -> None:
        if result is None:
            return
        self.update_breadcrumb(f"{result.roof.bandwidth / 1e9:.1f} GB/s · {result.roof.peak_flops / 1e9:.0f} GFLOP/s")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_remeasure(self) -> None:
        self.recompute()

    def _picture(self, r: RooflineResult, width: int) -> Text:
        roof, t = r.roof, r.timing
        out = Text(no_wrap=True, overflow="crop")
        ceiling = roof.bandwidth / r.weight_bytes
        measured = 1.0 / t.decode_mean if t.decode_seconds else float("nan")
        out.append(f"memory bandwidth {roof.bandwidth / 1e9:.1f} GB/s · peak compute {roof.peak_flops / 1e9:.1f} "
                   f"GFLOP/s · ridge {roof.ridge:.1f} FLOP/byte"[:width] + "\n", style="bold")
        out.append(f"{r.model_name}: {fmt_bytes(r.weight_bytes)} of weights read per decode step\n"[: width + 1])
        out.append_text(note(f"decode ceiling = {roof.bandwidth / 1e9:.1f} GB/s ÷ {fmt_bytes(r.weight_bytes)} = "
                             f"{ceiling:.1f} tokens/s · measured {measured:.1f} tokens/s "
                             f"({fmt_seconds(t.decode_mean)} per token, {measured / ceiling:.0%} of the ceiling)",
                             width, style=f"bold {ACCENT}"))
        points = [("D", "decode, 1 row", r.decode, r.decode.flops / t.decode_mean if t.decode_seconds else 0.0),
                  ("P", f"prefill, {r.prefill.n_new} rows", r.prefill, r.prefill.flops / t.prefill_seconds)]
        points += [(str(i + 1), f"batch of {c.n_new} rows (counted)", c, 0.0) for i, c in enumerate(r.batched)]
        out.append_text(self._plot(roof, points, width, 12))
        for mark, label, cost, achieved in points:
            got = f", achieved {achieved / 1e9:.2f} GFLOP/s" if achieved else ""
            out.append(f" {mark}  {label}: {cost.intensity:.2f} FLOP/byte, roof "
                       f"{roof.attainable(cost.intensity) / 1e9:.1f} GFLOP/s{got}"[:width] + "\n")
        out.append_text(note("The line is min(peak, bandwidth × intensity). Decode sits far left, under the "
                             "sloped memory roof: a faster CPU would not help, fewer bytes would (quantized weights,"
                             " a smaller KV cache) or more rows per read (batching several users). Prefill of a "
                             "prompt moves right, toward the flat compute roof. Batch points are counted, not "
                             "timed.", width))
        return out

    def _plot(self, roof: engine_lab.Roofline, points, width: int, height: int) -> Text:
        """A log-log roofline as text: x = intensity (FLOP/byte), y = FLOP/s."""
        x_lo, x_hi = -2.0, 10.0  # log2 of intensity: 1/4 … 1024
        y_hi = math.log10(roof.peak_flops) + 0.3
        y_lo = y_hi - 3.5
        plot_w = max(20, width - 12)
        grid = [[" "] * plot_w for _ in range(height)]
        styles = [[DIM] * plot_w for _ in range(height)]

        def col(intensity):
            return int(round((math.log2(max(intensity, 1e-9)) - x_lo) / (x_hi - x_lo) * (plot_w - 1)))

        def row(flops):
            y = (math.log10(max(flops, 1.0)) - y_lo) / (y_hi - y_lo)
            return int(round((1 - y) * (height - 1)))

        for c in range(plot_w):
            intensity = 2 ** (x_lo + c / (plot_w - 1) * (x_hi - x_lo))
            rr = row(roof.attainable(intensity))
            if 0 <= rr < height:
                grid[rr][c] = "─" if intensity >= roof.ridge else "╱"
                styles[rr][c] = SEQUENTIAL[-4]
        for mark, _, cost, achieved in points:
            c = col(cost.intensity)
            rr = row(achieved or roof.attainable(cost.intensity))
            if 0 <= c < plot_w:
                rr = min(max(rr, 0), height - 1)
                grid[rr][c] = mark
                styles[rr][c] = f"bold {ACCENT}"
        out = Text(no_wrap=True, overflow="crop")
        for i in range(height):
            label = f"{10 ** (y_hi - i / (height - 1) * (y_hi - y_lo)) / 1e9:8.2f}G " if i in (0, height - 1) else " " * 10
            out.append(label, style=DIM)
            out.append("│", style=DIM)
            for c in range(plot_w):
                out.append(grid[i][c], style=cell_style(styles[i][c]) if styles[i][c].startswith("#") else styles[i][c])
            out.append("\n")
        axis = "└" + "─" * plot_w
        out.append(" " * 10 + axis + "\n", style=DIM)
        ticks = [" "] * plot_w
        for v in (0.25, 1, 4, 16, 64, 256, 1024):
            c = col(v)
            txt = f"{v:g}"
            if 0 <= c and c + len(txt) <= plot_w:
                ticks[c:c + len(txt)] = list(txt)
        out.append(" " * 11 + "".join(ticks) + "  FLOP/byte\n", style=DIM)
        return out
