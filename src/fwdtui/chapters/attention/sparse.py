"""Sparse attention: sliding windows, strides, blocks and sinks; applied to the real model, and what they cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll

from fwdtui.chapters.attention._common import dim, dim_para, token_labels
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab, ops
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM, MASKED_FG, SEQUENTIAL, cell_style
from fwdtui.tokenizers import fragment_text

PATTERNS = ("window", "window+sinks", "strided", "dilated", "block")
SINK_CHOICES = (0, 1, 4)
COST_LENGTHS = (32768, 131072)


def pattern_mask(kind: str, n: int, size: int) -> np.ndarray:
    """[n, n] True = hidden, for the pattern picture (size = window, stride or block)."""
    if kind == "window":
        return attention_lab.sliding_window_mask(n, size)
    if kind == "window+sinks":
        return attention_lab.sliding_window_mask(n, size, sinks=1)
    if kind == "strided":
        return attention_lab.strided_mask(n, size)
    if kind == "dilated":
        return attention_lab.dilated_mask(n, size, 2)
    return attention_lab.block_sparse_mask(n, size)


@dataclass(frozen=True)
class SparseResult:
    ids: tuple[int, ...]
    labels: list[str]
    sinks: int
    sweep: tuple[attention_lab.WindowEffect, ...]
    top_text: dict[int, str]  # token id -> text, for the tops in the sweep


@register
class SparseAttentionChapter(Chapter):
    ID = "attention.sparse"
    SECTION = "attention"
    TITLE = "Sparse attention"
    SUMMARY = "Sliding windows, strides, blocks and sinks."
    EXPLANATION = """
Full causal attention scores every pair of tokens: n(n+1)/2 per layer, quadratic in the length.
**Sparse** patterns score only some pairs: a **sliding window** (Mistral, Gemma's local layers)
sees the last w tokens; **strided** and **dilated** patterns add far tokens at a spacing;
**block-sparse** patterns see whole blocks. Models given a window also keep the first tokens
visible (**attention sinks**): heads park spare weight there, and hiding it hurts. On the right the
loaded model itself runs with shrinking windows (through its own mask) and we measure the change.
"""
    CODE_FUNCTIONS = (ops.causal_mask, attention_lab.window_sweep, attention_lab.visible_pairs,
                      attention_lab.strided_mask, attention_lab.block_sparse_mask)

    BINDINGS = [
        Binding("v", "next_pattern", "Pattern", tooltip="Window, sinks, strided, dilated or block-sparse"),
        Binding("s", "next_sinks", "Sinks", tooltip="How many first tokens stay visible in the model's windows"),
        Binding("plus,equals_sign", "size(1)", "Size+", show=False, key_display="+", tooltip="Larger window/stride/block"),
        Binding("minus", "size(-1)", "Size-", show=False, key_display="-", tooltip="Smaller window/stride/block"),
    ]

    DEFAULT_CSS = """
    SparseAttentionChapter #sparse-left { width: 30; height: 1fr; }
    SparseAttentionChapter #sparse-right { width: 1fr; height: 1fr; padding-left: 1; }
    """

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.pattern = 0
        self.sinks_index = 0
        self.span = 4

    def compose_visual(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="sparse-left"):
                yield Canvas(id="sparse-mask")
            with VerticalScroll(id="sparse-right"):
                yield Canvas(id="sparse-model")

    def compute(self, snapshot: Snapshot) -> SparseResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)
        n = len(ids)
        # a window of n sees everything; a spread of smaller ones, finer near the small end
        candidates = {round(n * f) for f in (0.75, 0.5, 0.35, 0.25)} | {8, 4, 2, 1}
        windows = sorted((w for w in candidates if 1 <= w < n), reverse=True)[:8]
        sinks = SINK_CHOICES[self.sinks_index]
        sweep = attention_lab.window_sweep(model, ids, windows, sinks, snapshot.cancelled, snapshot.progress)
        tops = {e.top: fragment_text(model.tokenizer, [e.top]) for e in sweep}
        return SparseResult(tuple(ids), token_labels(model, ids, 6), sinks, tuple(sweep), tops)

    def action_next_pattern(self) -> None:
        self.pattern = (self.pattern + 1) % len(PATTERNS)
        self.redraw()

    def action_next_sinks(self) -> None:
        self.sinks_index = (self.sinks_index + 1) % len(SINK_CHOICES)
        self.recompute()

    def action_size(self, delta: int) -> None:
        self.span = max(2, min(16, self.span + delta))
        self.redraw()

    def draw(self, result: SparseResult) -> None:
        self.update_breadcrumb(f"{PATTERNS[self.pattern]} · sinks {result.sinks}")
        left = self.query_one("#sparse-mask", Canvas)
        left.show(lambda width: self._mask_picture(result, width, left.room()))
        self.query_one("#sparse-model", Canvas).show(lambda width: self._model_picture(result, width))

    def _mask_picture(self, r: SparseResult, width: int, room: int) -> Text:
        kind = PATTERNS[self.pattern]
        n = max(1, min(len(r.ids), room - 4, width - 8))
        mask = pattern_mask(kind, n, self.span)
        out = Text(no_wrap=True, overflow="crop")
        size_name = {"block": "block", "strided": "stride"}.get(kind, "window")
        out.append(f"{kind} ({size_name} {self.span})\n", style="bold")
        future = np.arange(n)[None, :] > np.arange(n)[:, None]
        for i in range(n):
            out.append(f"{r.labels[i][:6]:>6} ", style=DIM)
            for j in range(n):
                if future[i, j]:
                    out.append(" ")
                elif mask[i, j]:
                    out.append("·", style=cell_style(MASKED_FG))
                else:
                    out.append("■", style=cell_style(SEQUENTIAL[-2]))
            out.append("\n")
        seen = int((~mask).sum())
        full = n * (n + 1) // 2
        out.append_text(dim(f"■ scored {seen} of {full} pairs\n"))
        out.append_text(dim("v pattern · +/- size"))
        return out

    def _model_picture(self, r: SparseResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append("The loaded model with a sliding window\n", style="bold")
        out.append_text(dim(f"first {r.sinks} tokens kept visible (s: sinks)\n"))
        out.append(f"{'window':>6} {'KL bits':>8} {'top':<10} {'p(top)':>6}\n", style="dim")
        for e in r.sweep:
            name = "full" if e.window is None else str(e.window)
            word = repr(r.top_text.get(e.top, "?"))[:10]
            style = "" if e.top1_same else f"bold {ACCENT}"
            out.append(f"{name:>6} {e.kl:8.4f} {word:<10} {e.p_full_top:6.1%}\n", style=style)
        out.append_text(dim("p(top) = chance given to full attention's top\n"))
        changed = [e.window for e in r.sweep if not e.top1_same]
        if changed:
            out.append_text(dim_para(f"the top token changes from window {max(changed)} down", width))
        else:
            out.append_text(dim_para("the top token survives every window here", width))
        out.append("\nPairs scored per layer (cost)\n", style="bold")
        out.append(f"{'':<12}" + "".join(f"{_short(n) + ' tok':>12}" for n in COST_LENGTHS[-2:]) + "\n", style="dim")
        for label, kind, kw in (("full", "full", {}), ("window 4096", "window", {"window": 4096}),
                                ("stride 128", "strided", {"stride": 128}), ("block 128", "block", {"block": 128})):
            cells = []
            for n in COST_LENGTHS[-2:]:
                c = attention_lab.visible_pairs(kind, n, **kw)
                frac = c / attention_lab.visible_pairs("full", n)
                share = "" if kind == "full" else (f" {frac:.0%}" if frac >= 0.01 else f" {frac:.1%}")
                cells.append(f"{_short(c) + share:>12}")
            out.append(f"{label:<12}" + "".join(cells) + "\n")
        out.append_text(dim_para("full grows with n², the sparse ones with n: at 128k tokens a 4096 window "
                                 "scores about 6% of the pairs.", width))
        return out


def _short(n: int) -> str:
    """1234567 -> '1.2M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
