"""Prefill and decode: the prompt in one pass, then one token per pass, timed on the loaded model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import (ACCENT, DIM, Picture, bar, fmt_bytes, fmt_count, fmt_seconds, heading,
                                            note, piece)
from fwdtui.core import engine_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.plots import sparkline

DECODE_CHOICES = (4, 8, 16)


@dataclass(frozen=True)
class PrefillDecodeResult:
    timing: engine_lab.PrefillDecodeTiming
    prefill: engine_lab.StepCost
    decode: engine_lab.StepCost
    text: str  # the greedy continuation
    model_name: str


@register
class PrefillDecodeChapter(Picture, Chapter):
    ID = "engine.prefill-decode"
    PICTURE = "pd"
    SECTION = "engine"
    TITLE = "Prefill and decode"
    SUMMARY = "One pass over the prompt, then a token at a time: timed on this model, on this CPU."
    EXPLANATION = """
Generation has two phases. **Prefill** runs the whole prompt through the model in one pass: every
weight matrix is read once and multiplied by *all* the prompt's rows, and the keys and values of
every position go into the cache. **Decode** then produces one token per pass: the same weights
are read again in full, but multiplied by a single row. So decode does little arithmetic per byte
it reads: its speed is set by how fast memory delivers the weights, not by the CPU's arithmetic.
Below: real wall times of the loaded model on your prompt (`+`/`-` more or fewer decode steps,
`t` time again).
"""
    CODE_FUNCTIONS = (engine_lab.time_prefill_decode, engine_lab.step_cost)
    BINDINGS = [
        Binding("plus,equals_sign", "steps(1)", "More steps", key_display="+", tooltip="Decode more tokens"),
        Binding("minus", "steps(-1)", "Fewer", key_display="-", show=False, tooltip="Decode fewer tokens"),
        Binding("t", "retime", "Time again", tooltip="Measure again (timings vary with the machine's load)"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.decode_index = 1

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> PrefillDecodeResult:
        model = snapshot.require_model()
        n = DECODE_CHOICES[self.decode_index]
        timing = engine_lab.time_prefill_decode(model, snapshot.ids, n, snapshot.progress, snapshot.cancelled)
        text = "".join(piece(model.tokenizer, t, 40) for t in timing.tokens)
        return PrefillDecodeResult(timing, engine_lab.step_cost(model, timing.n_prompt, 0),
                                   engine_lab.step_cost(model, 1, timing.n_prompt), text, model.info.name)

    def draw(self, result: PrefillDecodeResult) -> None:
        self.update_breadcrumb(f"{result.timing.n_prompt} prompt tokens · {len(result.timing.decode_seconds)} decoded")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_steps(self, delta: int) -> None:
        self.decode_index = int(np.clip(self.decode_index + delta, 0, len(DECODE_CHOICES) - 1))
        self.recompute()

    def action_retime(self) -> None:
        self.recompute()

    def _picture(self, r: PrefillDecodeResult, width: int) -> Text:
        t = r.timing
        out = Text(no_wrap=True, overflow="crop")
        n = t.n_prompt
        per_prefill = t.prefill_seconds / max(1, n)
        dec = t.decode_mean
        out.append_text(heading(f"Measured on {r.model_name}, this CPU (numpy, float32)"))
        out.append(f"prefill  {n} tokens in one pass: {fmt_seconds(t.prefill_seconds)}"
                   f"  = {fmt_seconds(per_prefill)} per token\n")
        out.append(f"decode   1 token per pass:       {fmt_seconds(dec)} per token (median of "
                   f"{len(t.decode_seconds)})\n")
        if np.isfinite(dec) and per_prefill > 0:
            out.append(f"→ a prompt token costs {per_prefill / dec:.0%} of a decoded token: "
                       f"prefill is {dec / per_prefill:.1f}x cheaper per token\n", style=f"bold {ACCENT}")
        bw = max(10, width - 26)
        top = max(dec if np.isfinite(dec) else 0, per_prefill)
        out.append("time per token  prefill ", style=DIM)
        out.append_text(bar(per_prefill, top, bw))
        out.append("\n                decode  ", style=DIM)
        out.append_text(bar(dec if np.isfinite(dec) else 0, top, bw, ACCENT))
        out.append("\n")
        if t.decode_seconds:
            out.append("each decode step ", style=DIM)
            out.append_text(sparkline(t.decode_seconds, min(len(t.decode_seconds), width - 40), vmin=0))
            out.append(f"  {fmt_seconds(min(t.decode_seconds))} … {fmt_seconds(max(t.decode_seconds))}\n", style=DIM)
        out.append("\n")
        out.append_text(heading("Work per pass (counted from the config)"))
        head = f"{'pass':<10}{'rows':>6}{'FLOPs':>9}{'bytes read':>12}{'FLOP/byte':>11}{'time':>10}{'GFLOP/s':>9}"
        out.append(head[:width] + "\n", style=DIM)
        for label, cost, secs in (("prefill", r.prefill, t.prefill_seconds), ("decode", r.decode, dec)):
            rate = cost.flops / secs / 1e9 if secs and np.isfinite(secs) else float("nan")
            out.append(f"{label:<10}{cost.n_new:>6}{fmt_count(cost.flops):>9}{fmt_bytes(cost.bytes):>12}"
                       f"{cost.intensity:>11.2f}{fmt_seconds(secs):>10}{rate:>9.2f}"[:width] + "\n")
        gbs = r.decode.bytes / dec / 1e9 if np.isfinite(dec) and dec > 0 else float("nan")
        out.append_text(note(
            f"Decode reads {fmt_bytes(r.decode.weight_bytes)} of weights for one token and does about "
            f"{r.decode.intensity:.1f} FLOP per byte: streaming them (here at {gbs:.1f} GB/s) is most of the step. "
            f"Prefill reads the same bytes once for {n} tokens, {r.prefill.intensity:.0f} FLOP per byte, so the "
            "arithmetic units get to work instead of waiting for memory. This is why servers batch many users' decode steps together, and "
            "why the time to the first token (prefill) and the time per output token (decode) are quoted apart.",
            width))
        if r.text:
            out.append("greedy continuation: ", style=DIM)
            out.append(r.text[: max(10, width * 2 - 22)] + "\n")
        out.append_text(note("Timings are real and vary with the machine's load; press t to measure again.", width))
        return out
