"""Sampling strategies on the real next-token distribution: greedy, temperature, top-k, top-p, min-p, penalty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, note, piece
from fwdtui.core import engine_lab, ops, sampling
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars

TEMPERATURES = (0.0, 0.3, 0.7, 1.0, 1.5, 2.0)
TOP_KS = (0, 40, 10, 3)
TOP_PS = (1.0, 0.95, 0.8, 0.5)
MIN_PS = (0.0, 0.02, 0.1, 0.3)
PENALTIES = (1.0, 1.2, 1.5, 3.0)
N_BARS = 10


@dataclass(frozen=True)
class SamplingResult:
    logits: np.ndarray  # [n_vocab] for the token after the prompt
    history: tuple[int, ...]  # the prompt: what the repetition penalty looks at
    pieces: tuple[str, ...]  # readable text of every token id shown (filled lazily for the top ones)
    model_name: str


@register
class SamplingChapter(Picture, Chapter):
    ID = "engine.sampling"
    PICTURE = "sampling"
    SECTION = "engine"
    TITLE = "Sampling strategies"
    SUMMARY = "Greedy, temperature, top-k, top-p, min-p and a repetition penalty on the real distribution."
    EXPLANATION = """
The model gives a score (logit) to every token of its vocabulary; the **sampler** turns them into
the next token. **Greedy** takes the top one. **Temperature** divides the logits before the softmax
(below 1 sharpens, above 1 flattens). **Top-k** keeps the k best, **top-p** the smallest set whose
probability reaches p, **min-p** the tokens at least p times as likely as the best. A **repetition
penalty** pushes down tokens already in the text. Keys: `t` temperature, `k` top-k, `o` top-p,
`n` min-p, `r` penalty, `s` draw a token. Dim bars are cut.
"""
    CODE_FUNCTIONS = (engine_lab.full_distribution, sampling.sampling_distribution, engine_lab.min_p_keep,
                      engine_lab.repetition_penalty, engine_lab.entropy_bits)
    BINDINGS = [
        Binding("t", "cycle('t')", "Temp", tooltip="Temperature: 0 (greedy), 0.3 … 2"),
        Binding("k", "cycle('k')", "Top-k", tooltip="Keep only the k most likely tokens (0 = off)"),
        Binding("o", "cycle('p')", "Top-p", show=False, tooltip="Keep the smallest set reaching probability p"),
        Binding("n", "cycle('m')", "Min-p", show=False, tooltip="Keep tokens at least p x as likely as the best"),
        Binding("r", "cycle('r')", "Penalty", show=False, tooltip="Repetition penalty on the prompt's tokens"),
        Binding("s", "draw_token", "Sample", show=False, tooltip="Draw one token from the distribution"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.choice = {"t": 3, "k": 0, "p": 0, "m": 0, "r": 0}
        self.draws: list[int] = []
        self.rng = np.random.default_rng(0)

    def settings(self) -> engine_lab.SamplerSettings:
        c = self.choice
        return engine_lab.SamplerSettings(TEMPERATURES[c["t"]], TOP_KS[c["k"]], TOP_PS[c["p"]], MIN_PS[c["m"]],
                                          PENALTIES[c["r"]])

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> SamplingResult:
        model = snapshot.require_model()
        logits = model.forward(snapshot.ids, last_only=True)[0][-1]
        return SamplingResult(logits, tuple(snapshot.ids), (), model.info.name)

    def draw(self, result: SamplingResult) -> None:
        s = self.settings()
        self.update_breadcrumb(f"T={s.temperature} top-k={s.top_k} top-p={s.top_p} min-p={s.min_p} "
                               f"pen={s.repetition_penalty}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_cycle(self, knob: str) -> None:
        sizes = {"t": TEMPERATURES, "k": TOP_KS, "p": TOP_PS, "m": MIN_PS, "r": PENALTIES}
        self.choice[knob] = (self.choice[knob] + 1) % len(sizes[knob])
        self.draws = []
        self.redraw()

    def action_draw_token(self) -> None:
        if self.result is None:
            return
        probs = engine_lab.full_distribution(self.result.logits, self.settings(), self.result.history)
        token, _ = sampling.sample(np.log(np.maximum(probs, 1e-300)), sampling.SamplingSettings(temperature=1.0),
                                   self.rng) if self.settings().temperature > 0 else (int(np.argmax(probs)), probs)
        self.draws = (self.draws + [token])[-12:]
        self.redraw()

    def _picture(self, r: SamplingResult, width: int) -> Text:
        tok = self.session.model.tokenizer if self.session.model is not None else None
        s = self.settings()
        raw = ops.softmax(np.asarray(r.logits, np.float64))
        probs = engine_lab.full_distribution(r.logits, s, r.history)
        kept = int((probs > 0).sum())
        out = Text(no_wrap=True, overflow="crop")
        knobs = (f"temperature {s.temperature:g}{' (greedy)' if s.temperature == 0 else ''} · top-k "
                 f"{s.top_k or 'off'} · top-p {s.top_p:g} · min-p {s.min_p:g} · penalty {s.repetition_penalty:g}")
        out.append_text(note(knobs, width, style="bold"))
        out.append(f"kept {kept:,} of {r.logits.size:,} tokens · entropy {engine_lab.entropy_bits(probs):.2f} bits "
                   f"(model's own at T=1: {engine_lab.entropy_bits(raw):.2f})"[:width] + "\n", style=f"bold {ACCENT}")
        # the tokens the model itself ranks highest, and any the settings pushed up
        order = list(np.argsort(-raw)[:N_BARS])
        for extra in np.argsort(-probs)[:3]:
            if int(extra) not in order and probs[extra] > 0:
                order[-1] = int(extra)
        top_choice = int(np.argmax(probs))
        bars = [Bar(piece(tok, t, 12) if tok else str(t), float(probs[t]), chosen=int(t) == top_choice,
                    excluded=probs[t] == 0, note=f"was {raw[t]:5.1%}") for t in order]
        out.append_text(render_bars(bars, width, title="after the sampler (was = softmax of the raw logits)", vmax=1.0))
        out.append("\n")
        if self.draws:
            out.append("drawn: ", style=DIM)
            out.append(" ".join(piece(tok, t, 10) if tok else str(t) for t in self.draws) + "\n")
        else:
            out.append("press s to draw tokens from this distribution\n", style=DIM)
        pen = [t for t in order if int(t) in set(r.history)]
        if s.repetition_penalty != 1.0 and pen:
            out.append_text(note(f"penalised (in the prompt): {', '.join(piece(tok, t, 10) for t in pen[:5])}", width))
        out.append_text(note("The order here is repetition penalty, min-p (measured at this temperature), then "
                             "temperature, top-k and top-p from the core sampler. Greedy always gives the same "
                             "text; a higher temperature and looser cuts give more varied and less careful text. "
                             "Min-p adapts: when the model is sure, few tokens pass; when it is not, many do.", width))
        return out
