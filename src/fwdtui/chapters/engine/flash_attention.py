"""FlashAttention: attention over tiles of keys with a running max and sum, on a real layer's q, k, v."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, fmt_bytes, heading, note
from fwdtui.core import engine_lab, ops
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import SEQUENTIAL, cell_style

BLOCKS = (4, 8, 16)


@dataclass(frozen=True)
class FlashResult:
    layer: int
    block: int
    n_seq: int
    n_head: int
    head_dim: int
    max_diff: float  # flash output against the model's own z
    steps: tuple[engine_lab.TileStep, ...]  # for the recorded head
    head: int
    n_ctx: int


@register
class FlashAttentionChapter(Picture, Chapter):
    ID = "engine.flash-attention"
    PICTURE = "flash"
    SECTION = "engine"
    TITLE = "FlashAttention"
    SUMMARY = "Tiled attention with an online softmax: the same numbers without the full score matrix."
    EXPLANATION = """
Plain attention writes the whole n × n matrix of scores to memory, softmaxes it, and reads it back
to mix the values. **FlashAttention** never builds it: it walks the keys in **tiles**, and for each
query row keeps three things, a running **max** m of the scores, a running **sum** l of exp(s − m),
and a running weighted sum of values. When a new tile has a larger max, the old sum and mix are
scaled by exp(m_old − m_new), so the end result is exactly the softmax. Tiles wholly in the causal
future are skipped. Here on the real q, k, v of a layer of the loaded model, in numpy. `←`/`→` walk
the tiles, `b` tile size, `l` layer, `h` head.
"""
    CODE_FUNCTIONS = (engine_lab.flash_attention, ops.attention)
    BINDINGS = [
        Binding("right", "walk(1)", "Next tile", key_display="→", tooltip="Step to the next tile"),
        Binding("left", "walk(-1)", "Prev tile", key_display="←", show=False, tooltip="Step back one tile"),
        Binding("b", "block", "Tile size", tooltip="Tiles of 4, 8 or 16 queries x keys"),
        Binding("l", "layer", "Layer", show=False, tooltip="Use the next layer's q, k, v"),
        Binding("h", "head", "Head", show=False, tooltip="Record the next head's tiles"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.block_index = 1
        self.layer_index = 0
        self.head_index = 0
        self.step = 0

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> FlashResult:
        model = snapshot.require_model()
        cfg = model.config
        layer, head = self.layer_index % cfg.n_layer, self.head_index % cfg.n_head
        snapshot.progress(None, f"q, k, v of layer {layer}")
        q, k, v, z = engine_lab.layer_qkv(model, snapshot.ids, layer)
        block = BLOCKS[self.block_index]
        out, steps = engine_lab.flash_attention(q, k, v, block, block, record_head=head)
        return FlashResult(layer, block, q.shape[1], cfg.n_head, cfg.head_dim, float(np.max(np.abs(out - z))),
                           tuple(steps), head, cfg.n_ctx)

    def draw(self, result: FlashResult) -> None:
        self.step = int(np.clip(self.step, 0, len(result.steps) - 1))
        self.update_breadcrumb(f"layer {result.layer} · head {result.head} · tile {self.step + 1}/{len(result.steps)}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_walk(self, delta: int) -> None:
        self.step += delta
        self.redraw()

    def action_block(self) -> None:
        self.block_index = (self.block_index + 1) % len(BLOCKS)
        self.step = 0
        self.recompute()

    def action_layer(self) -> None:
        self.layer_index += 1
        self.recompute()

    def action_head(self) -> None:
        self.head_index += 1
        self.recompute()

    def _picture(self, r: FlashResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(note(f"layer {r.layer}, {r.n_head} heads, {r.n_seq} tokens, tiles of {r.block} queries × "
                             f"{r.block} keys · largest difference from the model's own attention output: "
                             f"{r.max_diff:.1e}", width, style=f"bold {ACCENT}"))
        steps = r.steps
        cur = steps[self.step]
        n_qt = -(-r.n_seq // r.block)
        n_kt = n_qt
        index = {(s.q_start // r.block, s.k_start // r.block): i for i, s in enumerate(steps)}
        out.append(f"head {r.head}: query tiles ↓ × key tiles →   ", style=DIM)
        out.append("██", style=cell_style(ACCENT))
        out.append(" now  ", style=DIM)
        out.append("██", style=cell_style(SEQUENTIAL[-4]))
        out.append(" done  ", style=DIM)
        out.append("··", style=DIM)
        out.append(" skipped (future)\n", style=DIM)
        show_kt = min(n_kt, max(1, (width - 8) // 2))
        for qi in range(n_qt):
            out.append(f"q{qi * r.block:>4} ", style=DIM)
            for kj in range(show_kt):
                i = index.get((qi, kj))
                if i is None:
                    out.append("  ")
                elif steps[i].skipped:
                    out.append("··", style=DIM)
                elif i == self.step:
                    out.append("██", style=cell_style(ACCENT))
                elif i < self.step:
                    out.append("██", style=cell_style(SEQUENTIAL[-4]))
                else:
                    out.append("░░", style=DIM)
            out.append("\n")
            if qi >= 11 and n_qt > 13:
                out.append(f"      … {n_qt - qi - 1} more query tiles\n", style=DIM)
                break
        out.append("\n")
        out.append(f"tile {self.step + 1}/{len(steps)}: queries {cur.q_start}–{cur.q_stop - 1}, keys "
                   f"{cur.k_start}–{cur.k_stop - 1}" + (" · skipped: every key is after every query\n"
                                                         if cur.skipped else "\n"), style="bold")
        rows = min(len(cur.running_max), 6)
        out.append("  query  running max m   running sum l   (after this tile)\n", style=DIM)
        for j in range(rows):
            m, l = float(cur.running_max[j]), float(cur.running_sum[j])
            m_txt = "-inf (no key yet)" if not np.isfinite(m) else f"{m:>14.4f}"
            out.append(f"  {cur.q_start + j:>5}  {m_txt:>14}  {l:>14.4f}\n")
        full, tile = engine_lab.attention_memory(r.n_head, r.n_seq, r.n_seq, r.head_dim, r.block, r.block)
        big, big_tile = engine_lab.attention_memory(r.n_head, r.n_ctx, r.n_ctx, r.head_dim, 128, 128)
        out.append("\n")
        out.append_text(heading("Memory for the scores of one layer"))
        out.append(f"plain: {r.n_head} heads × {r.n_seq} × {r.n_seq} × 4 bytes = {fmt_bytes(full)}"
                   f"   tiled: {fmt_bytes(tile)} at a time"[:width] + "\n")
        out.append(f"at the full context of {r.n_ctx}: {fmt_bytes(big)} against {fmt_bytes(big_tile)} "
                   f"(tiles of 128)"[:width] + "\n")
        out.append_text(note("On a GPU the tile lives in fast on-chip memory and the n × n matrix never touches "
                             "the slow memory: fewer bytes moved is what makes it faster, not fewer FLOPs. The "
                             "numpy here shows the arithmetic, not the speed.", width))
        return out
