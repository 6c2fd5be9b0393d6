"""Analogies: vector arithmetic (king - man + woman) on the loaded model's input embeddings, scored honestly."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, para, shown
from fwdtui.core import embedding_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.palette import ACCENT


@dataclass(frozen=True)
class AnalogiesResult:
    results: tuple[embedding_lab.AnalogyResult, ...]  # one per analogy set, in ANALOGIES order
    unit: bool


@register
class AnalogiesChapter(Picture, Chapter):
    ID = "embeddings.analogies"
    PICTURE = "analogies"
    SECTION = "embeddings"
    TITLE = "Analogies"
    SUMMARY = "king - man + woman: vector arithmetic on the model's input embeddings, and where it fails."
    EXPLANATION = """
Word2Vec made a famous observation: if "king" and "queen" differ the way "man" and "woman" do, then
**king − man + woman** should land near **queen**. Here we try it on the loaded model's own input
embeddings: compute the vector, then find the nearest whole-word tokens by cosine, leaving out the
three words we started from (otherwise the nearest is usually one of them, as the line under the
bars shows). Small language models were not trained for this; some analogies work, some do not, and
the screen says which, with the expected word's score and rank.
"""
    CODE_FUNCTIONS = (embedding_lab.analogy, embedding_lab.nearest)

    BINDINGS = [
        Binding("n", "next_set(1)", "Next analogy", tooltip="Try the next analogy"),
        Binding("N", "next_set(-1)", "Prev analogy", show=False, tooltip="Try the previous analogy"),
        Binding("u", "toggle_unit", "Unit vectors", tooltip="Unit-length vectors before the arithmetic, on or off"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.set_index = 0
        self.unit = True

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> AnalogiesResult:
        model = snapshot.require_model()
        snapshot.progress(None, "reading the vocabulary (once per model)")
        embedding_lab.embedding_index(model)
        results = []
        for i, words in enumerate(embedding_lab.ANALOGIES):
            if snapshot.cancelled():
                break
            snapshot.progress(i / len(embedding_lab.ANALOGIES), f"solving {words[1]} - {words[0]} + {words[2]}")
            results.append(embedding_lab.analogy(model, words, unit=self.unit))
        return AnalogiesResult(tuple(results), self.unit)

    def action_next_set(self, delta: int) -> None:
        self.set_index = (self.set_index + delta) % len(embedding_lab.ANALOGIES)
        self.redraw()

    def action_toggle_unit(self) -> None:
        self.unit = not self.unit
        self.recompute()

    def draw(self, result: AnalogiesResult) -> None:
        i = min(self.set_index, len(result.results) - 1)
        self.update_breadcrumb(f"analogy {i + 1} of {len(result.results)}")
        self.picture_canvas().show(lambda width: self._picture(result, i, width))

    def _picture(self, result: AnalogiesResult, i: int, width: int) -> Text:
        r = result.results[i]
        a, b, c, want = r.words
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"{b} − {a} + {c} = ?", style="bold")
        out.append_text(dim(f"   ({a} : {b} :: {c} : {want}) · "
                            f"{'unit vectors' if result.unit else 'raw vectors'}\n"))
        if r.missing:
            names = ", ".join(repr(" " + w) for w in r.missing)
            verb = "is not a single token" if len(r.missing) == 1 else "are not single tokens"
            out.append_text(para(f"Cannot ask this here: {names} {verb} in this vocabulary "
                                 "(each word must be one row of the table).", width))
        else:
            bars = [Bar(shown(n.text, 14), n.cosine, note="◀ expected" if n.text.strip() == want else "")
                    for n in r.top]
            out.append_text(render_bars(bars, width, fmt="{:+.3f}", vmax=1.0, label_width=14))
            out.append("\n")
            verdict = Text()
            if r.expected_rank == 1:
                verdict.append("Solved: ", style=f"bold {ACCENT}")
                verdict.append(f"' {want}' is the nearest word (cosine {r.expected_cos:+.3f}).")
            else:
                verdict.append("Not solved: ", style="bold")
                verdict.append(f"' {want}' scores {r.expected_cos:+.3f}, rank {r.expected_rank:,} of "
                               f"{r.n_candidates:,}; the nearest is '{r.top[0].text}' ({r.top[0].cosine:+.3f}).")
            out.append_text(verdict)
            out.append("\n")
            out.append_text(dim(f"without leaving out the inputs, ' {c}' itself would be #{r.c_rank} "
                                f"(cosine {r.c_cos:+.3f})\n"))
        out.append_text(keys_line("n/N other analogy · u unit vectors on/off"))
        out.append("\nAll analogies on this model\n", style="bold")
        for j, s in enumerate(result.results):
            a, b, c, want = s.words
            mark = "▶" if j == i else " "
            line = f"{mark} {b} − {a} + {c} → {want}"
            if s.missing:
                score = "not single tokens"
            elif s.expected_rank == 1:
                score = f"rank 1 ✓ ({s.expected_cos:+.2f})"
            else:
                score = f"rank {s.expected_rank:,} (top: {s.top[0].text.strip()})"
            out.append(line.ljust(40), style=f"bold {ACCENT}" if j == i else "")
            out.append(score + "\n")
        return out
