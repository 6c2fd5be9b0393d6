"""Why attention: what a token's vector holds before and after attention, and where it drew from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import NAV_BINDINGS, NavMixin, dim, token_labels, with_hint
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab, ops
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT
from fwdtui.widgets.plots import sparkline
from fwdtui.widgets.vector_strip import render_vector

# Two texts ending in the same word used in two senses; attention is the only way the second
# half of each text can learn which sense it is.
CONTEXT_PAIRS: tuple[tuple[str, str], ...] = (
    ("We had a picnic on the grassy river bank", "She paid the cheque into her bank"),
    ("He swung the heavy baseball bat", "At dusk a small furry bat"),
    ("She planted a red rose", "Early this morning the sun rose"),
)


@dataclass(frozen=True)
class WhyResult:
    ids: tuple[int, ...]
    labels: list[str]
    trace: Any  # the Trace of the prompt (read only)
    n_layer: int
    n_head: int
    pair: attention_lab.ContextPair


@register
class WhyAttentionChapter(NavMixin, Chapter):
    ID = "attention.why"
    SECTION = "attention"
    TITLE = "Why attention"
    SUMMARY = "What a token's vector knows before and after attention, and which tokens it drew from."
    EXPLANATION = """
Before attention, the vector of a token knows only **which token it is** (and, in GPT-2, where it
sits): " bank" starts out identical in "river bank" and in "my bank". Attention is the one step
where a position **reads other positions**: it adds a weighted mix of earlier tokens' vectors to
its own. Below: the weights your chosen token gives to earlier tokens, its vector before and
after, and the same word after two different contexts drifting apart, layer by layer (cosine 1 = same direction).
This is a decoder: the mask is causal, a token never sees the tokens after it.
"""
    CODE_FUNCTIONS = (ops.attention, attention_lab.context_pair, attention_lab.cosine)

    BINDINGS = NAV_BINDINGS + [
        Binding("x", "next_pair", "Contexts", tooltip="Compare the next pair of contexts"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.layer_index = 0
        self.head_index = -1  # -1: the average over heads
        self.token_index = -1
        self.pair_index = 0

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll(id="why-scroll"):
            yield Canvas(id="why-canvas")

    def compute(self, snapshot: Snapshot) -> WhyResult:
        model = snapshot.require_model()
        ids = snapshot.ids
        trace = model.trace(list(ids))
        text_a, text_b = CONTEXT_PAIRS[self.pair_index % len(CONTEXT_PAIRS)]
        pair = attention_lab.context_pair(model, text_a, text_b)
        return WhyResult(tuple(ids), token_labels(model, ids, 10), trace, model.config.n_layer,
                         model.config.n_head, pair)

    # head -1 means "all heads averaged", so the head key cycles through n_head + 1 states
    def action_head(self, delta: int) -> None:
        n_head = self.result.n_head if self.result else 1
        self.head_index = (self.head_index + 1 + delta) % (n_head + 1) - 1
        self.redraw()

    def action_next_pair(self) -> None:
        self.pair_index = (self.pair_index + 1) % len(CONTEXT_PAIRS)
        self.recompute()

    def draw(self, result: WhyResult) -> None:
        layer, _, token = self.clamp_nav(result.n_layer, result.n_head, len(result.ids))
        head = self.head_index if self.head_index < result.n_head else -1
        self.head_index = head
        who = "all heads averaged" if head < 0 else f"head {head}"
        self.update_breadcrumb(f"layer {layer} · {who} · token #{token}")
        self.query_one("#why-canvas", Canvas).show(lambda width: self._picture(result, layer, head, token, width))

    def _picture(self, r: WhyResult, layer: int, head: int, token: int, width: int) -> Text:
        t = r.trace
        pattern = t[f"blocks.{layer}.attn.pattern"]  # [n_head, n_seq, n_seq]
        weights = pattern[:, token].mean(axis=0) if head < 0 else pattern[head, token]  # [n_seq]
        out = Text(no_wrap=True, overflow="crop")
        head_line = Text()
        head_line.append(f"Token #{token} ", style="bold")
        head_line.append(f"'{r.labels[token]}'", style=f"bold {ACCENT}")
        who = "heads averaged" if head < 0 else f"head {head}"
        head_line.append(f" in layer {layer} ({who}) drew from:")
        out.append_text(with_hint(head_line, width))
        out.append("\n")
        order = np.argsort(weights[: token + 1])[::-1][:4]
        bars = [Bar(f"#{j} {r.labels[j]}", float(weights[j])) for j in order]
        out.append_text(render_bars(bars, width, label_width=14))
        out.append("\n")
        if token == 0:
            out.append_text(dim("(the first token can only look at itself)\n"))
        before = t[f"blocks.{layer}.resid_pre"][token]
        added = t[f"blocks.{layer}.attn.out"][token]
        after = t[f"blocks.{layer}.resid_mid"][token]
        scale = float(np.max(np.abs(np.concatenate([before, after])))) or 1.0
        out.append_text(render_vector(before, width, "before ", scale=scale, stats=False))
        out.append("\n")
        out.append_text(render_vector(added, width, "+ attn ", scale=scale, stats=False))
        out.append("\n")
        out.append_text(render_vector(after, width, "after  ", scale=scale, stats=False))
        out.append("\n")
        share = float(np.linalg.norm(added) / (np.linalg.norm(before) + 1e-12))
        out.append_text(dim(f"attention added {share:.0%} of the vector's length; "
                            f"cos(before, after) {attention_lab.cosine(before, after):.3f}\n"))
        out.append("\n")
        p = r.pair
        word = p.token_a.strip() or p.token_a
        out.append(f"The same '{word}' after two contexts", style="bold")
        out.append_text(dim("  (x: other words)\n"))
        out.append(f" A: …{p.text_a[-34:]}\n B: …{p.text_b[-34:]}\n")
        if not p.same_token:
            out.append_text(dim(f" (this tokenizer ends them with different tokens: {p.token_a!r} / {p.token_b!r})\n"))
        line = Text(" cos(A, B): ")
        line.append(f"input {p.embed_cos:.2f}", style="bold")
        line.append(f" · after layer 0's attention {p.after_attn[0]:.2f}")
        line.append(f" · lowest {p.after_attn.min():.2f} (layer {int(p.after_attn.argmin())})")
        out.append_text(line)
        out.append("\n per layer ")
        out.append_text(sparkline(p.after_attn, min(len(p.after_attn), width - 40), 0.0, 1.0))
        out.append_text(dim(f"  layer {layer}: {p.after_attn[min(layer, len(p.after_attn) - 1)]:.2f}"))
        return out
