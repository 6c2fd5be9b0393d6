"""PagedAttention: the real KV cache of three interleaved requests in fixed-size pages, read back through
block tables, with the same attention output and far less memory reserved."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, bar, colour, fmt_bytes, heading, note, piece
from fwdtui.core import engine_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import cell_style

PAGE_SIZES = (2, 4, 8, 16)
N_NEW = (9, 5, 7)  # tokens each request adds to the shared prompt
ARRIVE = (0, 2, 4)  # the decode step at which each request arrives (its prefill)
MAX_NEW = 64  # the longest answer a request may ask for: what contiguous allocation reserves room for
N_MIX = 16
FILL = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class PagedView:
    """The run's cache paged with one page size, and each sequence's attention check."""

    block_size: int
    paged: engine_lab.PagedKVCache
    checks: tuple[engine_lab.PagedCheck, ...]  # per sequence


@dataclass(frozen=True)
class PagedResult:
    run: engine_lab.InterleavedRun
    view: PagedView
    pieces: tuple[tuple[str, ...], ...]  # per sequence, its tokens as text
    bytes_per_token: int
    model_name: str


def build_view(run: engine_lab.InterleavedRun, block_size: int) -> PagedView:
    """Page the run's cache and check every sequence's attention over its pages."""
    paged = engine_lab.page_run(run, block_size)
    return PagedView(block_size, paged, tuple(engine_lab.check_paged(run, paged, name) for name in run.names))


@register
class PagedAttentionChapter(Picture, Chapter):
    ID = "engine.paged-attention"
    PICTURE = "paged"
    SECTION = "engine"
    TITLE = "PagedAttention"
    SUMMARY = "The KV cache in fixed-size pages with a block table per request: same attention, less waste."
    EXPLANATION = """
A server does not know how long an answer will be. Giving each request one contiguous stretch of
memory means reserving room for the longest answer allowed, and most of it stays empty.
**PagedAttention** (vLLM) borrows the idea of virtual memory: the cache is a pool of fixed-size
**pages** (blocks of a few positions); a request takes one more page only when its last is full,
and its **block table** says which physical page holds each stretch of its tokens. Pages of one
request end up scattered among the others', so attention **gathers** them through the table
before the usual dot products. Below, the real keys and values of three requests on your prompt,
written in the order a server interleaves them. `b` page size, `s` another request.
"""
    CODE_FUNCTIONS = (engine_lab.PagedKVCache.append, engine_lab.PagedKVCache.gather, engine_lab.paged_attention,
                      engine_lab.check_paged, engine_lab.Allocation, engine_lab.serve_interleaved)
    BINDINGS = [
        Binding("b", "page_size", "Page size", tooltip="Pages of 2, 4, 8 or 16 positions"),
        Binding("s", "select", "Request", tooltip="Show the next request's block table and check"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.page_index = 1
        self.selected = 0
        # after a page-size change: the run it was paged from and the new view
        self.view: tuple[engine_lab.InterleavedRun, PagedView] | None = None

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> PagedResult:
        model = snapshot.require_model()
        run = engine_lab.serve_interleaved(model, snapshot.ids, N_NEW, ARRIVE, snapshot.progress, snapshot.cancelled)
        view = build_view(run, PAGE_SIZES[self.page_index])
        pieces = tuple(tuple(piece(model.tokenizer, t, 10) for t in seq) for seq in run.ids)
        cache = model.new_cache()
        return PagedResult(run, view, pieces, cache.bytes_per_token, model.info.name)

    def draw(self, result: PagedResult) -> None:
        view = self.view[1] if self.view is not None and self.view[0] is result.run else result.view
        self.selected %= len(result.run.names)
        self.update_breadcrumb(f"pages of {view.block_size}")
        self.picture_canvas().show(lambda width: self._picture(result, view, width))

    def action_page_size(self) -> None:
        self.page_index = (self.page_index + 1) % len(PAGE_SIZES)
        if self.result is None:
            return
        run, size = self.result.run, PAGE_SIZES[self.page_index]
        self.run_in_thread(lambda: (run, build_view(run, size)), self._paged, group="page")

    def _paged(self, view: tuple[engine_lab.InterleavedRun, PagedView]) -> None:
        self.view = view
        self.redraw()

    def action_select(self) -> None:
        self.selected += 1
        self.redraw()

    # --- the picture -------------------------------------------------------------------------------
    def _picture(self, r: PagedResult, v: PagedView, width: int) -> Text:
        run = r.run
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"Three requests on your prompt ({run.n_prompt} tokens), {r.model_name}"))
        for i, (name, seq) in enumerate(zip(run.names, run.ids)):
            mark = "▶ " if i == self.selected else "  "
            out.append(mark)
            out.append(f" {name} ", style=cell_style("#000000", colour(i)))
            new = "".join(r.pieces[i][run.n_prompt:])
            out.append(f" {len(seq):>3} tokens, arrives at step {ARRIVE[i]}: prompt + ")
            out.append(new + "\n", style=f"bold {colour(i)}")
        out.append("\n")
        out.append_text(self._pool(r, v, width))
        out.append("\n")
        out.append_text(self._tables(r, v, width))
        out.append("\n")
        out.append_text(self._check(r, v, width))
        out.append("\n")
        out.append_text(self._memory(r, v, width))
        return out

    def _pool(self, r: PagedResult, v: PagedView, width: int) -> Text:
        """The physical pages in pool order: the owner's letter, the bar height how full it is."""
        run, paged = r.run, v.paged
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"The pool: {paged.n_blocks} physical pages of {v.block_size} positions"))
        owner: dict[int, tuple[int, int]] = {}  # page -> (sequence index, positions used)
        for i, name in enumerate(run.names):
            table, length = paged.tables[name], paged.lengths[name]
            for j, page in enumerate(table):
                owner[page] = (i, min(v.block_size, length - j * v.block_size))
        per_row = max(1, (width - 6) // 3)
        for start in range(0, paged.n_blocks, per_row):
            out.append(f"{start:>4} ", style=DIM)
            for page in range(start, min(start + per_row, paged.n_blocks)):
                if page not in owner:
                    out.append("·· ", style=DIM)
                    continue
                i, used = owner[page]
                glyph = FILL[max(0, int(np.ceil(used / v.block_size * len(FILL))) - 1)]
                bold = i == self.selected % len(run.names)
                out.append(run.names[i] + glyph, style=cell_style(colour(i), bold=bold))
                out.append(" ")
            out.append("\n")
        out.append_text(note("Letter: the request that owns the page; bar: how full it is; ··: free. Each request's "
                             "prompt went in with its prefill, its later tokens one step at a time, so its pages "
                             "are mixed with the others'.", width))
        return out

    def _tables(self, r: PagedResult, v: PagedView, width: int) -> Text:
        run, paged = r.run, v.paged
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading("Block tables: logical block → physical page"))
        for i, name in enumerate(run.names):
            table = paged.tables[name]
            used = paged.lengths[name] - (len(table) - 1) * v.block_size
            mark = "▶ " if i == self.selected else "  "
            out.append(mark + f"{name}: ", style=f"bold {colour(i)}")
            out.append(" ".join(str(p) for p in table))
            out.append(f"   last page {used}/{v.block_size} used\n", style=DIM)
        i = self.selected % len(run.names)
        name = run.names[i]
        out.append(f"\n{name}, block by block:\n", style=f"bold {colour(i)}")
        table, pieces = paged.tables[name], r.pieces[i]
        shown = min(len(table), 8)
        for j in range(shown):
            toks = pieces[j * v.block_size:(j + 1) * v.block_size]
            out.append(f"  block {j:>2} → page {table[j]:>3} │", style=DIM)
            out.append("".join(toks) + "\n")
        if len(table) > shown:
            out.append(f"  … {len(table) - shown} more blocks\n", style=DIM)
        return out

    def _check(self, r: PagedResult, v: PagedView, width: int) -> Text:
        run = r.run
        i = self.selected % len(run.names)
        name, check = run.names[i], v.checks[i]
        n_layer = len(check.vs_contiguous)
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"Attention of {name}'s newest token over its gathered pages"))
        out.append_text(note(f"against the same query over {name}'s contiguous cache, every one of {n_layer} "
                             f"layers: largest difference {check.vs_contiguous.max():.1e}", width,
                             style=f"bold {ACCENT}"))
        out.append_text(note(f"against the model's own attention output in a full forward pass of {name}: "
                             f"{check.vs_model.max():.1e} (float32 rounding)", width, style=""))
        out.append_text(note("Paging moves the numbers, not their values: gathered through the table they are the "
                             "same keys and values in the same order, so the softmax and the weighted sum are "
                             "identical. On a GPU the kernel reads the pages in place instead of copying them.", width))
        return out

    def _memory(self, r: PagedResult, v: PagedView, width: int) -> Text:
        run = r.run
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading("Memory reserved: contiguous up front against page by page"))
        mix = engine_lab.request_mix(N_MIX, 0)
        sets = (
            (f"these {len(run.ids)} requests",
             engine_lab.Allocation(tuple(len(s) for s in run.ids), run.n_prompt + MAX_NEW, v.block_size),
             f"room for prompt + {MAX_NEW} new tokens each"),
            (f"a mix of {N_MIX} requests",
             engine_lab.Allocation(tuple(q.prompt_len + q.output_len for q in mix), 64 + 96, v.block_size),
             "prompts up to 64 and answers up to 96 tokens: room for 160 each"),
        )
        bar_w = max(0, width - 44)
        for title, alloc, why in sets:
            out.append(f"{title}: {alloc.used} positions used", style="bold")
            out.append(f" · {why}"[: max(0, width - len(title) - 24)] + "\n", style=DIM)
            for kind, reserved, style in (("contiguous", alloc.contiguous_reserved, DIM),
                                          (f"pages of {v.block_size}", alloc.paged_reserved, ACCENT)):
                waste = alloc.waste(reserved)
                out.append(f"  {kind:<12}{reserved:>6} pos {fmt_bytes(reserved * r.bytes_per_token):>9} "
                           f"{waste:>4.0%} idle ")
                if bar_w >= 4:
                    out.append_text(bar(reserved, alloc.contiguous_reserved, bar_w, style))
                out.append("\n")
        out.append_text(note("Paging wastes at most one partly filled page per request, so bigger pages waste a "
                             "little more; smaller pages mean longer block tables and more scattered reads. vLLM "
                             "uses 16 positions per page by default. The memory saved holds more requests at "
                             "once: a larger batch (see Batching).", width))
        return out
