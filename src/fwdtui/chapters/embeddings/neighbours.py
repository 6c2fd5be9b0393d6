"""Similar tokens cluster: nearest neighbours by cosine in the real embedding table, and a 2-D PCA map."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, label, scatter, shown
from fwdtui.core import embedding_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.palette import ACCENT

PRESET_WORDS = ("Paris", "king", "blue", "Monday", "seven", "dog")


@dataclass(frozen=True)
class NeighboursResult:
    query_label: str
    query_id: int
    source: str  # "the prompt's token #3" or "a preset word"
    neighbours: tuple[embedding_lab.Neighbour, ...]
    n_candidates: int
    words_only: bool
    word_map: embedding_lab.WordMap
    n_prompt: int  # tokens in the prompt, for the arrow keys


@register
class NeighboursChapter(Picture, Chapter):
    ID = "embeddings.neighbours"
    PICTURE = "neighbours"
    SECTION = "embeddings"
    TITLE = "Similar tokens cluster"
    SUMMARY = "Nearest neighbours by cosine in the real embedding table, and a 2-D map of word groups."
    EXPLANATION = """
Nobody tells the model that Monday and Tuesday are alike. But tokens used in similar places get
similar gradients during training, so their rows in the embedding table end up pointing in similar
directions. **Cosine similarity** measures that: 1 is the same direction, 0 unrelated. Below, the
closest whole-word tokens to a chosen token in the loaded model's own table. The map (`v`) squeezes
a few hundred dimensions into two with **PCA** (the two directions along which these words differ
most), so it keeps only part of the picture: the share of variance says how much.
"""
    CODE_FUNCTIONS = (embedding_lab.nearest, embedding_lab.pca_2d, embedding_lab.embedding_index)

    BINDINGS = [
        Binding("n", "next_word", "Word", tooltip="Use the next preset word (Paris, king, blue, ...)"),
        Binding("v", "toggle_view", "Map", tooltip="Switch between the neighbour list and the 2-D map"),
        Binding("right", "token(1)", "Token+", show=False, priority=True, tooltip="Use the next prompt token"),
        Binding("left", "token(-1)", "Token-", show=False, priority=True, tooltip="Use the previous prompt token"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.word_index = 0  # a preset word, or -1: a token of the prompt
        self.token_index = -1
        self.show_map = False

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> NeighboursResult:
        model = snapshot.require_model()
        snapshot.progress(None, "reading the vocabulary (once per model)")
        index = embedding_lab.embedding_index(model)
        table = embedding_lab.embedding_matrix(model)
        query_id = None
        if self.word_index >= 0:
            word = PRESET_WORDS[self.word_index % len(PRESET_WORDS)]
            query_id = embedding_lab.single_token(model, word)
            source = "a preset word"
            if query_id is None:
                source = f"' {word}' is not one token here; the prompt's last token instead"
        if query_id is None:
            ids = snapshot.ids or tuple(model.tokenizer.encode(" "))
            pos = self.token_index % len(ids)
            query_id = int(ids[pos])
            source = source if self.word_index >= 0 else f"the prompt's token #{pos}"
        neighbours = embedding_lab.nearest(model, table[query_id], 10, exclude=[query_id])
        return NeighboursResult(label(model.tokenizer, query_id, 16), query_id, source, tuple(neighbours),
                                len(index.candidates), index.words_only, embedding_lab.word_map(model),
                                max(1, len(snapshot.ids)))

    def action_next_word(self) -> None:
        self.word_index = (self.word_index + 1) % len(PRESET_WORDS)
        self.recompute()

    def action_token(self, delta: int) -> None:
        n = self.result.n_prompt if self.result else 1
        if self.word_index >= 0:  # the first arrow press switches from preset words to the prompt
            self.word_index = -1
            self.token_index = -1
        else:
            self.token_index = max(0, min(n - 1, self.token_index % n + delta))
        self.recompute()

    def action_toggle_view(self) -> None:
        self.show_map = not self.show_map
        self.redraw()

    def draw(self, result: NeighboursResult) -> None:
        view = "2-D map" if self.show_map else f"neighbours of '{result.query_label}'"
        self.update_breadcrumb(view)
        canvas = self.picture_canvas()
        if self.show_map:
            canvas.paint_with(lambda width, height: self._map(result, width, canvas.room()))
        else:
            canvas.show(lambda width: self._list(result, width))

    def _list(self, r: NeighboursResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append("Nearest to ")
        out.append(f"'{r.query_label}'", style=f"bold {ACCENT}")
        out.append(f" (id {r.query_id}, {r.source})\n")
        bars = [Bar(shown(n.text, 14), n.cosine, note=f"id {n.token_id}") for n in r.neighbours]
        out.append_text(render_bars(bars, width, fmt="{:+.3f}", vmax=1.0, label_width=14))
        out.append("\n")
        pool = "whole-word tokens (a space, then letters)" if r.words_only else \
            "printable tokens (this vocabulary has too few whole words)"
        out.append_text(dim(f"cosine of input embeddings, searched over {r.n_candidates:,} {pool}\n"))
        out.append_text(keys_line("n next preset word · ←/→ a token of your prompt · v the 2-D map"))
        return out

    def _map(self, r: NeighboursResult, width: int, height: int) -> Text:
        m = r.word_map
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"PCA of {len(m.words)} words' input embeddings", style="bold")
        out.append_text(dim(f"  x: {m.share[0]:.0%} of the variance · y: {m.share[1]:.0%}\n"))
        out.append_text(scatter(m.coords, list(m.words), list(m.groups), width, max(8, height - 5)))
        out.append("\n")
        if m.missing:
            out.append_text(dim(f"not one token in this vocabulary, left out: {', '.join(m.missing[:8])}"
                                f"{' …' if len(m.missing) > 8 else ''}\n"))
        out.append_text(dim(f"two directions keep {m.share.sum():.0%} of the spread: groups that overlap here "
                            "can still lie apart in the others\n"))
        out.append_text(keys_line("v back to the list"))
        return out
