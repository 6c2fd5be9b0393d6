"""Contextual representations: the same word in two contexts, followed through every layer of the model."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, shown
from fwdtui.core import embedding_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import ACCENT
from fwdtui.widgets.plots import line_plot


def prompt_set(prompt: str) -> tuple[str, str, str] | None:
    """(word, the prompt, a plain sentence with that word): the prompt's last word against a neutral use."""
    words = re.findall(r"[A-Za-z]{2,}", prompt)
    if not words:
        return None
    word = words[-1]
    return word, prompt, f"Here is the word {word}"


@dataclass(frozen=True)
class ContextualResult:
    ctx: embedding_lab.ContextResult
    n_layer: int
    from_prompt: bool
    pos_note: str  # why the vectors differ before any layer (GPT-2's learned positions)


@register
class ContextualChapter(Picture, Chapter):
    ID = "embeddings.contextual"
    PICTURE = "contextual"
    SECTION = "embeddings"
    TITLE = "Contextual representations"
    SUMMARY = "The same word in two contexts, layer by layer: where the model tells the meanings apart."
    EXPLANATION = """
An embedding table gives " bank" **one** row, whether it is a river bank or a bank account. The
blocks then add what the context says: after each layer the word's vector is a little more about
*this* use of the word. Below, the same word is traced in two sentences and the **cosine** of its two
vectors is drawn after each layer (1 = still the same direction). The table under it reads each
vector with the **logit lens** (final norm + unembedding at that depth): the model's guess of the
next token if it stopped there.
"""
    CODE_FUNCTIONS = (embedding_lab.context_compare, embedding_lab.residual_rows)

    BINDINGS = [
        Binding("n", "next_set(1)", "Next word", tooltip="Compare another word in two contexts (the last: your prompt)"),
        Binding("N", "next_set(-1)", "Prev word", show=False, tooltip="The previous word"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.set_index = 0  # len(CONTEXT_SETS): the prompt's last word

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> ContextualResult:
        model = snapshot.require_model()
        sets = embedding_lab.CONTEXT_SETS
        chosen = sets[self.set_index] if self.set_index < len(sets) else prompt_set(snapshot.prompt)
        from_prompt = self.set_index >= len(sets) and chosen is not None
        word, text_a, text_b = chosen or sets[0]
        ctx = embedding_lab.context_compare(model, word, text_a, text_b, progress=snapshot.progress)
        note = ""
        if "wpe.weight" in model.weights and ctx.pos_a != ctx.pos_b:
            note = f"(below 1 before any layer: GPT-2 adds position {ctx.pos_a} and {ctx.pos_b} vectors)"
        return ContextualResult(ctx, model.config.n_layer, from_prompt, note)

    def action_next_set(self, delta: int) -> None:
        self.set_index = (self.set_index + delta) % (len(embedding_lab.CONTEXT_SETS) + 1)
        self.recompute()

    def draw(self, result: ContextualResult) -> None:
        c = result.ctx
        self.update_breadcrumb(f"'{c.word}'" + (" · prompt" if result.from_prompt else ""))
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def _sentence(self, tag: str, text: str, token: str, width: int) -> Text:
        line = Text(f"{tag} ", style="bold")
        room = max(20, width - 4)
        body = text if len(text) <= room else text[: room - 1] + "…"
        at = body.find(token.strip())
        if at >= 0:
            line.append(body[:at])
            line.append(body[at: at + len(token.strip())], style=f"bold {ACCENT}")
            line.append(body[at + len(token.strip()):])
        else:
            line.append(body)
        line.append("\n")
        return line

    def _picture(self, r: ContextualResult, width: int) -> Text:
        c = r.ctx
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._sentence("A", c.text_a, c.token_a, width))
        out.append_text(self._sentence("B", c.text_b, c.token_b, width))
        if c.token_a != c.token_b:
            out.append_text(dim(f"(the tokenizer writes them differently: {c.token_a!r} / {c.token_b!r})\n"))
        low = int(np.nanargmin(c.cos))
        summary = Text(f"cos(A, B): embedding {c.cos[0]:.2f} → last layer {c.cos[-1]:.2f}"
                       f" · lowest {c.cos[low]:.2f} at depth {low}\n")
        out.append_text(summary)
        if r.pos_note:
            out.append_text(dim(r.pos_note + "\n"))
        # interpolate between depths so the braille line is continuous, not one dot per layer
        dense = np.interp(np.linspace(0, len(c.cos) - 1, 2 * max(10, width - 6)), np.arange(len(c.cos)), c.cos)
        out.append_text(line_plot(list(dense), width, 5, label="cosine by depth (0 = embedding, then each layer)",
                                  fmt="{:.2f}"))
        out.append("\n")
        out.append_text(keys_line("n another word (the last one is from your prompt)"))
        out.append("\ndepth  cos   logit lens A      logit lens B\n", style="bold")
        for d in range(len(c.cos)):
            where = "embed" if d == 0 else f"L{d - 1:<3}"
            out.append(f"{where:<6} {c.cos[d]:.2f}  {shown(c.lens_a[d], 16):<17} {shown(c.lens_b[d], 16)}\n")
        return out
