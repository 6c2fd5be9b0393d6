"""Sentence embeddings: the loaded model's hidden states pooled into one vector per sentence, compared by cosine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, para
from fwdtui.core import embedding_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.heatmap import HeatmapData, render_heatmap
from fwdtui.widgets.palette import ACCENT


@dataclass(frozen=True)
class SentenceResult:
    texts: tuple[str, ...]  # the fixed sentences, then the prompt
    hidden: tuple[np.ndarray, ...]  # [n_seq_i, n_embd] final-norm hidden states of each text
    model_name: str


def sentence_vectors(hidden: tuple[np.ndarray, ...], how: str, centre: bool) -> np.ndarray:
    """[n_texts, n_embd] pooled vectors, optionally minus their mean."""
    vecs = np.stack([embedding_lab.pool(h, how) for h in hidden])
    return embedding_lab.centred(vecs) if centre else vecs


@register
class SentenceChapter(Picture, Chapter):
    ID = "embeddings.sentence"
    PICTURE = "sentence"
    SECTION = "embeddings"
    TITLE = "Sentence embeddings"
    SUMMARY = "Pool the token vectors of a sentence into one, and compare sentences by cosine."
    EXPLANATION = """
To compare whole sentences we need **one vector per sentence**. The simplest recipe: run the text
through the model and **pool** the last layer's vectors, either their **mean** or the **last token's**
(in a causal model only the last token has read the whole sentence). Below, five sentences and your
prompt, pooled from the loaded model, and the cosine of every pair. This model was trained to predict
the next token, **not** to make sentence vectors: all its vectors share a large common direction, so
raw cosines sit close to 1 (`z` subtracts the mean vector to remove it). Dedicated embedding models
(Sentence-BERT, E5, GTE) are fine-tuned with a contrastive loss on pairs of texts, so that texts
with the same meaning end up close and others far apart.
"""
    CODE_FUNCTIONS = (embedding_lab.hidden_states, embedding_lab.pool, embedding_lab.centred, embedding_lab.cosine_matrix)

    BINDINGS = [
        Binding("o", "toggle_pool", "Mean/last", tooltip="Pool by the mean of all tokens or take the last token"),
        Binding("z", "toggle_centre", "Centre", tooltip="Subtract the mean sentence vector before the cosines"),
        Binding("right", "cell(0, 1)", "Col+", show=False, priority=True, tooltip="Move the cell right"),
        Binding("left", "cell(0, -1)", "Col-", show=False, priority=True, tooltip="Move the cell left"),
        Binding("down", "cell(1, 0)", "Row+", show=False, priority=True, tooltip="Move the cell down"),
        Binding("up", "cell(-1, 0)", "Row-", show=False, priority=True, tooltip="Move the cell up"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.how = "mean"
        self.centre = False
        self.cell = (0, 1)

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> SentenceResult | None:
        model = snapshot.require_model()
        texts = embedding_lab.SENTENCES + (snapshot.prompt,)
        hidden = []
        for i, text in enumerate(texts):
            if snapshot.cancelled():
                return None
            snapshot.progress(i / len(texts), f"running sentence {i + 1} of {len(texts)} through the model")
            hidden.append(embedding_lab.cached_hidden_states(model, text))
        return SentenceResult(texts, tuple(hidden), model.info.name if model.info else "this model")

    def action_toggle_pool(self) -> None:
        self.how = "last" if self.how == "mean" else "mean"
        self.redraw()

    def action_toggle_centre(self) -> None:
        self.centre = not self.centre
        self.redraw()

    def action_cell(self, dr: int, dc: int) -> None:
        n = len(self.result.texts) if self.result else 1
        self.cell = ((self.cell[0] + dr) % n, (self.cell[1] + dc) % n)
        self.redraw()

    def draw(self, result: SentenceResult | None) -> None:
        if result is None:
            return
        self.update_breadcrumb(f"{self.how} pooling{' · centred' if self.centre else ''}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def _picture(self, r: SentenceResult, width: int) -> Text:
        vecs = sentence_vectors(r.hidden, self.how, self.centre)
        sims = embedding_lab.cosine_matrix(vecs)  # [n, n]
        n = len(r.texts)
        names = [f"S{i + 1}" for i in range(n - 1)] + ["you"]
        out = Text(no_wrap=True, overflow="crop")
        i, j = self.cell
        line = Text(f"cos({names[i]}, {names[j]}) = ")
        line.append(f"{sims[i, j]:+.3f}", style=f"bold {ACCENT}")
        off = sims[~np.eye(n, dtype=bool)]
        line.append(f"   all pairs: {off.min():+.2f} … {off.max():+.2f}\n")
        out.append_text(line)
        data = HeatmapData(sims, tuple(names), tuple(names), palette="diverging", vmin=-1.0, vmax=1.0,
                           row_name="sentence", col_name="sentence", fmt="{:+.3f}")
        heat_w = 5 + 3 * n
        heat = render_heatmap(data, heat_w, n + 3).split("\n")[: n + 1]  # the axis and the rows
        # the heatmap on the left, each row's sentence on its right
        for k, heat_line in enumerate(heat):
            out.append_text(heat_line)
            out.append(" " * max(1, heat_w + 1 - heat_line.cell_len))
            if k >= 1:
                text = r.texts[k - 1]
                room = max(10, width - heat_w - 2)
                out.append(text if len(text) <= room else text[: room - 1] + "…", style="bold" if k - 1 in (i, j) else "")
            out.append("\n")
        out.append_text(dim(f"colour: cosine from -1 (blue) through 0 (grey) to +1 (orange) · {self.how} pooling"
                            f"{' · centred' if self.centre else ''}\n"))
        pairs = f"S1~S2 {sims[0, 1]:+.2f} vs S1~S3 {sims[0, 2]:+.2f} · S3~S4 {sims[2, 3]:+.2f} vs S3~S5 {sims[2, 4]:+.2f}"
        out.append_text(dim(pairs + "\n"))
        verdict = ("the paraphrase pairs are closer than the unrelated pairs" if sims[0, 1] > sims[0, 2]
                   and sims[2, 3] > sims[2, 4] else "the paraphrases are not clearly closer than unrelated sentences")
        out.append_text(para(f"With {self.how} pooling{' and centring' if self.centre else ''}: {verdict}.", width))
        out.append_text(keys_line("o mean/last token · z centre · arrows move the cell"))
        return out
