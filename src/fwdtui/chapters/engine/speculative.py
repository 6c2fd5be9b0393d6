"""Speculative decoding: the first layers of the loaded model draft, the whole model verifies in one pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, fmt_seconds, heading, note, piece
from fwdtui.core import engine_lab
from fwdtui.core.sampling import SamplingSettings
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import SEQUENTIAL

N_NEW = 12
DRAFT_LENGTHS = (2, 3, 4, 6)


@dataclass(frozen=True)
class SpecChapterResult:
    spec: engine_lab.SpecResult
    plain_tokens: tuple[int, ...]
    plain_seconds: float
    draft_layers: int
    n_layer: int
    k: int
    sampled: bool
    model_name: str


@register
class SpeculativeChapter(Picture, Chapter):
    ID = "engine.speculative"
    PICTURE = "spec"
    SECTION = "engine"
    TITLE = "Speculative decoding"
    SUMMARY = "A small model drafts a few tokens, the big one checks them all in one pass."
    EXPLANATION = """
A decode pass over one token costs nearly as much as a pass over five (the weights are read once
either way). **Speculative decoding** uses that: a cheap **draft** model proposes k tokens one by
one, then the **target** scores all of them in a single pass. Greedy: keep the drafted tokens while
they equal the target's own choice, then add the target's token, so the text is exactly the
target's. Sampling: keep token x with probability min(1, p(x)/q(x)), else draw from max(0, p − q):
the output still follows the target's distribution. Here the draft is the loaded model cut after
its first layers (self-speculative). `d`/`D` draft layers, `k` draft length, `s` greedy/sampled.
"""
    CODE_FUNCTIONS = (engine_lab.speculative_decode, engine_lab.accept_or_resample, engine_lab.draft_model)
    BINDINGS = [
        Binding("d", "layers(1)", "Draft +", tooltip="Give the draft more of the model's layers"),
        Binding("D", "layers(-1)", "Draft -", show=False, tooltip="Give the draft fewer layers"),
        Binding("k", "draft_length", "k", tooltip="How many tokens the draft proposes per round"),
        Binding("s", "sampled", "Sampled", show=False, tooltip="Switch between greedy and sampling (T=0.8)"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.draft_fraction = 3  # draft = n_layer * fraction / 8 layers
        self.k_index = 2
        self.sampled = False

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> SpecChapterResult:
        model = snapshot.require_model()
        n_draft = max(1, min(model.config.n_layer - 1, round(model.config.n_layer * self.draft_fraction / 8)))
        draft = engine_lab.draft_model(model, n_draft)
        ids = list(snapshot.ids)[: model.config.n_ctx - N_NEW - 8]
        k = DRAFT_LENGTHS[self.k_index]
        settings = SamplingSettings(temperature=0.8 if self.sampled else 0.0)

        def half(fraction, text):
            snapshot.progress(0.5 + fraction / 2 if fraction is not None else None, "speculative: " + text)

        snapshot.progress(0.0, "plain decoding with the whole model")
        plain, plain_s = engine_lab.greedy_decode(model, ids, N_NEW, snapshot.cancelled)
        spec = engine_lab.speculative_decode(model, draft, ids, N_NEW, k, settings, seed=0, progress=half,
                                             cancelled=snapshot.cancelled)
        return SpecChapterResult(spec, plain, plain_s, n_draft, model.config.n_layer, k, self.sampled, model.info.name)

    def draw(self, result: SpecChapterResult) -> None:
        self.update_breadcrumb(f"draft {result.draft_layers}/{result.n_layer} layers · k={result.k}"
                               f" · {'sampled' if result.sampled else 'greedy'}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_layers(self, delta: int) -> None:
        self.draft_fraction = int(np.clip(self.draft_fraction + delta, 1, 7))
        self.recompute()

    def action_draft_length(self) -> None:
        self.k_index = (self.k_index + 1) % len(DRAFT_LENGTHS)
        self.recompute()

    def action_sampled(self) -> None:
        self.sampled = not self.sampled
        self.recompute()

    def _picture(self, r: SpecChapterResult, width: int) -> Text:
        tok = self.session.model.tokenizer if self.session.model is not None else None
        sp = r.spec
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"Draft: first {r.draft_layers} of {r.n_layer} layers · target: all {r.n_layer} · "
                                f"k = {r.k} · {'sampled at T=0.8' if r.sampled else 'greedy'}"))
        good, fix = SEQUENTIAL[-3], ACCENT
        out.append("kept draft tokens", style=f"bold {good}")
        out.append("  target's own tokens", style=f"bold {fix}")
        out.append("  rejected drafts", style="strike dim")
        out.append("\n")
        for i, rnd in enumerate(sp.rounds):
            line = Text(no_wrap=True, overflow="crop")
            line.append(f"pass {i + 1:>2}: ", style=DIM)
            for j, t in enumerate(rnd.drafted):
                text = piece(tok, t, 10) if tok else str(t)
                line.append(text + " ", style=f"bold {good}" if j < rnd.accepted else "strike dim")
            line.append("→ ", style=DIM)
            line.append(piece(tok, rnd.extra, 10) if tok else str(rnd.extra), style=f"bold {fix}")
            line.append(f"  (+{rnd.accepted + 1})", style=DIM)
            out.append_text(line)
            out.append("\n")
        out.append("\n")
        n = len(sp.tokens)
        out.append_text(note(f"acceptance {sp.acceptance:.0%} of drafted tokens · {sp.tokens_per_pass:.2f} tokens "
                             f"per target pass ({sp.target_passes} passes for {n} tokens; plain decoding needs {n})",
                             width, style=f"bold {ACCENT}"))
        out.append_text(note(f"wall time: speculative {fmt_seconds(sp.seconds)} (with {sp.draft_passes} draft passes)"
                             f" · plain {fmt_seconds(r.plain_seconds)} for {len(r.plain_tokens)} tokens", width,
                             style=""))
        if not r.sampled:
            same = sp.tokens == r.plain_tokens[: len(sp.tokens)]
            out.append(f"identical to the whole model's greedy text: {'yes' if same else 'NO'}\n",
                       style=f"bold {ACCENT}" if same else "bold red")
        else:
            out.append("sampled: a different text from greedy, drawn from the target's distribution\n", style=DIM)
        out.append_text(note(
            "A model cut after a few layers was never trained to predict from there, so it drafts poorly and much "
            "is rejected: real systems train a small draft (or extra heads, as in Medusa and EAGLE) to agree with "
            "the target. The gain is the tokens per target pass; on this CPU the wall time also pays for the "
            "draft's own passes and for verifying k+1 rows.", width))
        return out
