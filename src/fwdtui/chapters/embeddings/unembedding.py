"""The unembedding: the last vector through the final norm and the unembedding matrix to one score per token."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, label
from fwdtui.core import embedding_lab, gpt2, llama
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.palette import ACCENT
from fwdtui.widgets.vector_strip import render_vector


@dataclass(frozen=True)
class UnembeddingResult:
    u: embedding_lab.UnembedResult
    ids: tuple[int, ...]
    token_label: str  # the prompt token at this position
    top_labels: tuple[str, ...]
    bare_labels: tuple[str, ...]
    matrix_name: str
    n_vocab: int
    n_embd: int
    norm_name: str
    family: str


@register
class UnembeddingChapter(Picture, Chapter):
    ID = "embeddings.unembedding"
    PICTURE = "unembedding"
    SECTION = "embeddings"
    TITLE = "The unembedding"
    SUMMARY = "From the last vector back to one score per token: the final norm, then a dot product per row."
    EXPLANATION = """
At the end of the last block each position holds one vector. To turn it into a guess for the next
token the model normalises it (the **final norm**) and multiplies it by the **unembedding matrix**,
one row per vocabulary entry. Each logit is just the **dot product** of the vector with that token's
row: tokens whose rows point the same way as the vector score high. Many models (GPT-2, SmolLM2)
**tie** this matrix to the input embedding table, so one table serves both ends. Below the logits are
recomputed row by row and compared with the forward pass, and the same vector without the final
norm shows why that step matters.
"""
    CODE_FUNCTIONS = (llama.final_norm, llama.unembed, embedding_lab.unembed_position)

    BINDINGS = [
        Binding("left", "token(-1)", "Token-", priority=True, tooltip="Read the previous position"),
        Binding("right", "token(1)", "Token+", priority=True, tooltip="Read the next position"),
        Binding("k", "more", "More tokens", show=False, tooltip="Show more or fewer top tokens"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.token_index = -1  # -1: the last token, whose logits predict what comes next
        self.k = 5

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> UnembeddingResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)
        position = self.token_index % len(ids)
        trace = model.trace(ids)
        u = embedding_lab.unembed_position(model, trace, position, k=10)
        tok = model.tokenizer
        _, tied = embedding_lab.unembedding_matrix(model)
        name = "lm_head.weight" if not tied else ("wte.weight" if "wte.weight" in model.weights else "embed_tokens.weight")
        norm = "LayerNorm ln_f" if model.config.family == "gpt2" else "RMSNorm norm"
        return UnembeddingResult(u, tuple(ids), label(tok, ids[position], 12),
                                 tuple(label(tok, t, 12) for t in u.top), tuple(label(tok, t, 12) for t in u.without_norm_top),
                                 name, u.logits.shape[0], u.normed.shape[0], norm, model.config.family)

    def action_token(self, delta: int) -> None:
        n = len(self.result.ids) if self.result else 1
        current = self.token_index % n
        self.token_index = max(0, min(n - 1, current + delta))
        self.recompute()

    def action_more(self) -> None:
        self.k = 10 if self.k == 5 else 5
        self.redraw()

    def draw(self, result: UnembeddingResult) -> None:
        family = gpt2 if result.family == "gpt2" else llama
        self.set_code((family.final_norm, family.unembed, embedding_lab.unembed_position))  # the loaded family's own
        self.update_breadcrumb(f"position #{result.u.position} of {len(result.ids)}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def _picture(self, r: UnembeddingResult, width: int) -> Text:
        u = r.u
        out = Text(no_wrap=True, overflow="crop")
        head = Text("position ")
        head.append(f"#{u.position} '{r.token_label}'", style=f"bold {ACCENT}")
        head.append(": what comes after it?\n")
        head.append(f"U = {r.matrix_name} [{r.n_vocab:,} × {r.n_embd}]"
                    f" {'(tied: the input embedding table again)' if u.tied else '(its own matrix, not tied)'}\n")
        out.append_text(head)
        scale = float(np.max(np.abs(u.normed))) or 1.0
        out.append_text(render_vector(u.resid, width, "last block out", scale=float(np.max(np.abs(u.resid))) or 1.0, stats=False))
        out.append("\n")
        out.append_text(render_vector(u.normed, width, f"{r.norm_name:<14}", scale=scale, stats=False))
        out.append("\n")
        k = self.k
        values = u.logits[list(u.top[:k])]
        shifted = u.logits - u.logits.max()  # softmax, shifted so exp never overflows
        probs = np.exp(values - u.logits.max()) / np.exp(shifted).sum()
        bars = [Bar(r.top_labels[j], float(probs[j]), chosen=j == 0, note=f"logit {values[j]:+.2f}") for j in range(k)]
        out.append_text(render_bars(bars, width, title=f"top {k}: logit = h · U[token], probability = softmax",
                                    label_width=12))
        out.append("\n")
        out.append("row by row: ", style="bold")
        for j in range(min(3, k)):
            out.append(f"h·U[{u.top[j]}] = {u.dots[j]:+.3f}  ")
        out.append("\n")
        diff = float(np.max(np.abs(u.dots - u.logits[list(u.top)])))
        out.append_text(dim(f"dot products vs logits: max |difference| {diff:.1g} · vs the forward pass: {u.trace_diff:.1g}\n"))
        out.append("skip the final norm", style="bold")
        out.append(" and the top would be: ")
        out.append(", ".join(f"'{t}'" for t in r.bare_labels[:3]) + "\n")
        out.append_text(dim("(the norm's learned per-dimension weights change the direction, not just the length)\n"))
        out.append_text(keys_line("←/→ another position · k more tokens"))
        return out
