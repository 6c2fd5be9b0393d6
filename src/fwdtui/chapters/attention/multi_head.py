"""Multi-head attention: every head of a layer at once, what each one does, and the model without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import (
    NAV_BINDINGS,
    NavMixin,
    dim,
    mini_pattern,
    tile_grid,
    token_labels,
    with_hint,
)
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT
from fwdtui.tokenizers import fragment_text

ROLE_WORDS = {
    "induction": "copies what followed the last time this token appeared (an induction head)",
    "previous token": "looks at the previous token",
    "first token (sink)": "parks its weight on the first token, a 'sink' that adds little",
    "mixed": "follows no single simple pattern on this test",
}
SHORT_ROLE = {"induction": "induct", "previous token": "prev", "first token (sink)": "sink", "mixed": "mixed"}


@dataclass(frozen=True)
class MultiHeadResult:
    ids: tuple[int, ...]
    labels: list[str]
    trace: Any
    scores: attention_lab.HeadScores
    random_trace: Any  # the trace of the repeated random sequence (for the `r` view)
    n_layer: int
    n_head: int
    ablation: attention_lab.AblationResult | None
    decode: Any  # id -> text, for the ablation's top tokens


@register
class MultiHeadChapter(NavMixin, Chapter):
    ID = "attention.multi-head"
    SECTION = "attention"
    TITLE = "Multi-head attention"
    SUMMARY = "Every head of a layer, what each one looks at, and what happens without it."
    EXPLANATION = """
A layer runs several attention heads side by side, each with its own q, k, v projections, and
adds their outputs. Heads specialise. We measure each head on a **repeated random sequence**
(r₁…r₂₄ r₁…r₂₄): a **previous-token** head puts its weight on the token just before; an
**induction** head, on the second copy, looks at the token *after* the earlier copy of the
current one (so it can predict the repeat); a **sink** head parks its weight on the first token.
Press `a` to switch the selected head off and see the next-token distribution change.
"""
    CODE_FUNCTIONS = (attention_lab.induction_score, attention_lab.previous_token_score, attention_lab.head_scores,
                      attention_lab.head_ablation_weights, attention_lab.ablation_effect)

    BINDINGS = NAV_BINDINGS + [
        Binding("a", "ablate", "Ablate", tooltip="Zero the selected head and compare the next-token distribution"),
        Binding("r", "toggle_random", "Random seq", tooltip="Show the heads on the repeated random sequence or on the prompt"),
        Binding("g", "goto_best", "Strongest", show=False,
                tooltip="Jump to the strongest induction, previous-token, then sink head of the model"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.layer_index = 0
        self.head_index = 0
        self.on_random = False
        self.ablate_target: tuple[int, int] | None = None
        self._goto = 0
        self._scores_cache: tuple[int, attention_lab.HeadScores, Any] | None = None

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="mh-canvas")

    def compute(self, snapshot: Snapshot) -> MultiHeadResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)
        trace = model.trace(ids)
        cached = self._scores_cache
        if cached is None or cached[0] != id(model):
            snapshot.progress(None, "measuring every head on a repeated random sequence")
            scores = attention_lab.head_scores(model)
            random_trace = model.trace(scores.ids.tolist())
            cached = (id(model), scores, random_trace)
            self._scores_cache = cached
        ablation = None
        if self.ablate_target is not None:
            layer, head = self.ablate_target
            if layer < model.config.n_layer and head < model.config.n_head:
                ablation = attention_lab.ablation_effect(model, ids, layer, head)
        return MultiHeadResult(tuple(ids), token_labels(model, ids, 8), trace, cached[1], cached[2],
                               model.config.n_layer, model.config.n_head, ablation,
                               lambda t: fragment_text(model.tokenizer, [t]))

    def action_ablate(self) -> None:
        target = (self.layer_index, self.head_index)
        self.ablate_target = None if self.ablate_target == target else target
        self.recompute()

    def action_toggle_random(self) -> None:
        self.on_random = not self.on_random
        self.redraw()

    def action_goto_best(self) -> None:
        if self.result is None:
            return
        kind = ("induction", "previous", "sink")[self._goto % 3]
        self._goto += 1
        self.layer_index, self.head_index, _ = self.result.scores.best(kind)
        self.redraw()

    def draw(self, result: MultiHeadResult) -> None:
        layer, head, _ = self.clamp_nav(result.n_layer, result.n_head, len(result.ids))
        self.update_breadcrumb(f"layer {layer} · head {head}")
        self.query_one("#mh-canvas", Canvas).show(lambda width: self._picture(result, layer, head, width))

    def _picture(self, r: MultiHeadResult, layer: int, head: int, width: int) -> Text:
        s = r.scores
        trace = r.random_trace if self.on_random else r.trace
        pattern = trace[f"blocks.{layer}.attn.pattern"]  # [n_head, n, n]
        entropy = attention_lab.mean_entropy(pattern)
        out = Text(no_wrap=True, overflow="crop")
        what = f"the repeated random sequence ({len(s.ids)} tokens)" if self.on_random else "your prompt"
        out.append_text(with_hint(Text(f"Layer {layer}: {r.n_head} heads on {what}", style="bold"), width, "l/L layer · h/H head"))
        out.append("\n")
        per_row = -(-r.n_head // 2) if width < 120 else r.n_head
        tile_w = max(8, min(18, (width + 2) // per_row - 2))
        room = self.query_one("#mh-canvas", Canvas).room()
        tile_h = max(4, min(9, (room - 8) // 2))  # two rows of tiles plus about eight lines of text
        tiles = []
        for h in range(r.n_head):
            role = attention_lab.head_role(s.induction[layer, h], s.previous[layer, h], s.sink[layer, h])
            title = f"{'▶' if h == head else ' '}H{h} {SHORT_ROLE[role]} {entropy[h]:.1f}b"
            tiles.append(mini_pattern(pattern[h], tile_w, tile_h, title, highlight=h == head))
        out.append_text(tile_grid(tiles, width))
        out.append("\n")
        out.append_text(dim("tiles: query rows ↓, keys →; b = mean entropy in bits (low = focused)\n"))
        ind, prev, sink = s.induction[layer, head], s.previous[layer, head], s.sink[layer, head]
        role = attention_lab.head_role(ind, prev, sink)
        line = Text()
        line.append(f"Head {head}: ", style="bold")
        line.append(ROLE_WORDS[role], style=f"bold {ACCENT}" if role != "mixed" else "")
        out.append_text(line)
        out.append("\n")
        out.append_text(dim(f"  induction {ind:.2f} · previous token {prev:.2f} · first token {sink:.2f} · "
                            f"entropy {entropy[head]:.2f} bits\n"))
        bl, bh, bv = s.best("induction")
        pl, ph, pv = s.best("previous")
        out.append_text(dim(f"strongest: induction L{bl}.H{bh} {bv:.2f} · previous token "
                            f"L{pl}.H{ph} {pv:.2f} (g: go there)\n"))
        out.append_text(self._ablation_text(r, layer, head, width))
        return out

    def _ablation_text(self, r: MultiHeadResult, layer: int, head: int, width: int) -> Text:
        out = Text()
        a = r.ablation
        if a is None or (a.layer, a.head) != (layer, head):
            out.append_text(dim(f"press a to switch off head {head} of layer {layer} and see what changes"))
            return out
        out.append(f"Without L{layer}.H{head}: ", style="bold")
        out.append(f"KL {a.kl:.4f} bits", style=f"bold {ACCENT}")
        out.append_text(dim(" (how far the next-token distribution moved)\n"))
        top = np.argsort(-a.base)[:4]
        cells = []
        for t in top:
            word = r.decode(t).replace("\n", "⏎")[:10]
            cells.append(f"{word!r} {a.base[t]:.1%}→{a.ablated[t]:.1%}")
        out.append("  " + " · ".join(cells)[: width - 3])
        new_top = int(np.argmax(a.ablated))
        if new_top != int(top[0]):
            out.append(f"\n  the top token changes to {r.decode(new_top)!r}", style=ACCENT)
        return out
