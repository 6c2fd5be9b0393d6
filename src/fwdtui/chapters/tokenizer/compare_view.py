"""Comparing tokenizers: the same text through GPT-2, GPT-4, GPT-4o, SmolLM2 and ours, cuts aligned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.tokenizer.common import last_trained
from fwdtui.session import Snapshot
from fwdtui.tokenizers.compare import (
    Tokenization,
    boundary_agreement,
    candidates,
    char_byte_starts,
    common_boundaries,
    split_chars,
    token_of_char,
    tokenize,
)
from fwdtui.tokenizers.corpus import sample_text
from fwdtui.tokenizers.trainer import train
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, CHIP_BACKGROUNDS, CHIP_FG, DIM, cell_style
from fwdtui.widgets.token_strip import visible_text

MAX_CHARS = 1000
VIEWS = ("aligned", "summary")
LABEL_W = 14
_SPLIT = Style(color=ACCENT, underline=True, bold=True)  # a character spread over tokens


@dataclass(frozen=True)
class Row:
    """One tokenizer's cut of the text, ready to draw."""

    label: str
    vocab: int
    tok: Tokenization
    token_of_char: tuple[int, ...]  # [n_chars]
    split: tuple[bool, ...]  # [n_chars] the character is spread over tokens


@dataclass(frozen=True)
class Comparison:
    text: str
    rows: tuple[Row, ...]
    missing: tuple[tuple[str, str], ...]  # (label, why)
    agreed: tuple[bool, ...]  # [n_chars] every tokenizer starts a token at this character
    trained_now: bool  # ours was trained here (no tokenizer from the BPE chapter yet)


@register
class CompareChapter(Chapter):
    ID = "tokenizer.compare"
    SECTION = "tokenizer"
    TITLE = "Comparing tokenizers"
    SUMMARY = "The same text through GPT-2, GPT-4, GPT-4o, SmolLM2 and the one you trained."
    EXPLANATION = """
Every model reads through its own tokenizer, so the **same text is a different sequence** for
each: a different length (cost, context use) and different cuts. Below, your prompt goes through
**GPT-2** (50k), GPT-4's **cl100k_base** (100k), GPT-4o's **o200k_base** (200k), **SmolLM2** (49k)
and **ours**. Each row colours its tokens in turn, aligned character by character; an underlined
character is split over tokens; `▲` marks where all of them cut.

`←`/`→` page through a long text, `v` shows the counts and how often the cuts agree.
"""
    CODE_FUNCTIONS = (tokenize, token_of_char, common_boundaries, boundary_agreement)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "next_view", "View", tooltip="Aligned cuts, or a summary table"),
        Binding("right", "page(1)", "Page", key_display="→", tooltip="The next part of the text"),
        Binding("left", "page(-1)", "Page back", key_display="←", show=False, tooltip="The previous part"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.view = "aligned"
        self.page = 0

    def compose_visual(self) -> ComposeResult:
        yield Canvas(id="compare-view", fill=True, min_width=8)

    # --- work ---------------------------------------------------------------------------------
    def compute(self, snapshot: Snapshot) -> Comparison:
        text = snapshot.prompt[:MAX_CHARS]
        trained = last_trained(self.session)
        trained_now = trained is None
        if trained is None:
            snapshot.progress(None, "Training ours: 1,024 tokens on the sample text")
            trained = train(sample_text(), 1024)
        rows: list[Row] = []
        missing: list[tuple[str, str]] = []
        for cand in candidates(snapshot.model, trained):
            if snapshot.cancelled():
                break
            if cand.tokenizer is None:
                missing.append((cand.label, cand.missing))
                continue
            snapshot.progress(None, f"Encoding with {cand.label}")
            tok = tokenize(cand.tokenizer, text, cand.label)
            rows.append(Row(cand.label, int(cand.tokenizer.n_vocab), tok,
                            tuple(int(x) for x in token_of_char(tok)), tuple(bool(x) for x in split_chars(tok))))
        common = common_boundaries([r.tok for r in rows if r.tok.exact])
        starts = char_byte_starts(text)[:-1]
        agreed = tuple(bool(int(s) in common) for s in starts)
        return Comparison(text, tuple(rows), tuple(missing), agreed, trained_now)

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, result: Comparison) -> None:
        self.update_breadcrumb(f"{len(result.rows)} tokenizers · view: {self.view}")
        self.query_one("#compare-view", Canvas).paint_with(lambda w, h: self.paint(result, w, h))

    def paint(self, cmp: Comparison, width: int, height: int) -> Text:
        if self.view == "summary":
            return self._paint_summary(cmp, width, height)
        out = Text(no_wrap=True, overflow="crop")
        text_w = max(8, width - LABEL_W)
        segments = _segments(cmp.text, text_w)
        block_h = len(cmp.rows) + 1  # one line per tokenizer, then the agreement marks
        n_blocks = max(1, (height - 2) // (block_h + 1))
        n_pages = max(1, -(-len(segments) // n_blocks))
        self.page = max(0, min(self.page, n_pages - 1))
        out.append(f"{len(cmp.text)} characters", style="bold")
        out.append(f" · page {self.page + 1}/{n_pages} (←/→)" if n_pages > 1 else "", style=DIM)
        out.append(" · underlined: a character split over tokens\n", style=DIM)
        first = self.page * n_blocks
        for lo, hi in segments[first : first + n_blocks]:
            for row in cmp.rows:
                out.append(_label(row), style="bold")
                for c in range(lo, hi):
                    k = row.token_of_char[c]
                    style = cell_style(CHIP_FG, CHIP_BACKGROUNDS[k % len(CHIP_BACKGROUNDS)])
                    if row.split[c]:
                        style = style + _SPLIT
                    out.append(visible_text(cmp.text[c]), style=style)
                out.append("\n")
            out.append(" " * (LABEL_W - 9) + "all cut: ", style=DIM)
            for c in range(lo, hi):
                mark = "▲" if cmp.agreed[c] and c > 0 else " "
                out.append(mark.ljust(cell_len(visible_text(cmp.text[c]))), style=ACCENT)
            out.append("\n")
        if cmp.missing:
            out.append("not here: " + "; ".join(f"{label}" for label, _ in cmp.missing), style=DIM)
        return out

    def _paint_summary(self, cmp: Comparison, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        base = cmp.rows[0] if cmp.rows else None
        head = f"{'tokenizer':<22}{'vocab':>9}{'tokens':>8}{'bytes/tok':>10}{'chars/tok':>10}"
        if base is not None:
            head += f"  same cuts as {base.label[:8]}"
        out.append(head + "\n", style="bold")
        fewest = min((r.tok.n_tokens for r in cmp.rows), default=0)
        for row in cmp.rows:
            t = row.tok
            style = f"bold {ACCENT}" if t.n_tokens == fewest else ""
            line = (f"{row.label[:21]:<22}{row.vocab:>9,}{t.n_tokens:>8}{t.bytes_per_token:>10.2f}"
                    f"{t.n_chars / max(1, t.n_tokens):>10.2f}")
            if base is not None:
                line += f"  {boundary_agreement(base.tok, t):>5.0%}"
            out.append(line + "\n", style=style)
        for label, why in cmp.missing:
            out.append(f"{label}: ", style="bold")
            out.append(f"{why}\n", style=DIM)
        if cmp.trained_now:
            out.append("ours: 1,024 tokens trained now on the sample; train your own in "
                       "'BPE from raw bytes'\n", style=DIM)
        out.append("same cuts: cut points in common / cut points of either (1 = identical)", style=DIM)
        return out

    # --- playground ---------------------------------------------------------------------------
    def action_next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.redraw()

    def action_page(self, delta: int) -> None:
        self.page = max(0, self.page + delta)
        self.redraw()


def _label(row: Row) -> str:
    """'GPT-2      14 ' : the tokenizer's short name and its token count, LABEL_W columns."""
    name = row.label.split(" (")[0]
    count = str(row.tok.n_tokens)
    name = name[: LABEL_W - len(count) - 2]
    return f"{name:<{LABEL_W - len(count) - 1}}{count} "


def _segments(text: str, width: int) -> list[tuple[int, int]]:
    """Cut the text into runs of characters that fit `width` columns (a newline ends a run too)."""
    out: list[tuple[int, int]] = []
    lo, used = 0, 0
    for c, ch in enumerate(text):
        w = cell_len(visible_text(ch))
        if used + w > width and c > lo:
            out.append((lo, c))
            lo, used = c, 0
        used += w
        if ch == "\n":
            out.append((lo, c + 1))
            lo, used = c + 1, 0
    if lo < len(text):
        out.append((lo, len(text)))
    return out or [(0, 0)]

