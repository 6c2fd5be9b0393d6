"""Grouped-query attention: query heads sharing key/value heads, the cache it saves, and pooling MHA into GQA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import dim_para
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab, ops
from fwdtui.core.quant import fmt_bytes
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, CHIP_BACKGROUNDS, CHIP_FG, cell_style
from fwdtui.tokenizers import fragment_text


@dataclass(frozen=True)
class GqaResult:
    ids: tuple[int, ...]
    name: str
    family: str
    n_head: int
    n_kv_head: int
    head_dim: int
    n_layer: int
    own: attention_lab.PublishedAttention
    pooling: tuple[attention_lab.PoolingResult, ...]  # one per kv-head count the model can pool to
    base_probs: np.ndarray  # [n_vocab]
    pooled_probs: dict[int, np.ndarray]  # n_kv_head -> [n_vocab]
    decode: Any


@register
class GroupedQueryChapter(Chapter):
    ID = "attention.gqa"
    SECTION = "attention"
    TITLE = "Grouped-query attention"
    SUMMARY = "Fewer key/value heads, a smaller KV cache."
    EXPLANATION = """
During generation every layer keeps the keys and values of all earlier tokens (the **KV cache**),
and at long contexts that cache, not the weights, fills the memory. **Multi-head** attention (MHA)
keeps one k and v per query head; **multi-query** (MQA) one k and v for all heads; **grouped-query**
(GQA) one per group of query heads. SmolLM2 runs 9 query heads over 3 kv heads. Below: the loaded
model's grouping, cache bytes per token for published models, and what averaging the loaded
model's kv heads into fewer does to its next-token distribution (`k` picks a row).
"""
    CODE_FUNCTIONS = (ops.attention, attention_lab.pool_kv_weights, attention_lab.pooling_damage,
                      attention_lab.PublishedAttention.kv_bytes_per_token)

    BINDINGS = [
        Binding("k", "next_pool", "KV heads", tooltip="Choose how many kv heads the pooled model keeps"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.pool_index = 1  # which row of the pooling table is detailed

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="gqa-canvas")

    def compute(self, snapshot: Snapshot) -> GqaResult:
        model = snapshot.require_model()
        cfg = model.config
        ids = list(snapshot.ids)
        base = attention_lab.next_token_probs(model, ids)
        options = attention_lab.kv_head_options(cfg)
        pooling, pooled_probs = [], {}
        for i, n_kv in enumerate(options):
            if snapshot.cancelled():
                break
            snapshot.progress(i / len(options), f"pooling into {n_kv} kv heads")
            pooled = attention_lab.pooled_model(model, n_kv)
            probs = attention_lab.next_token_probs(pooled, ids)
            top = int(np.argmax(base))
            pooled_probs[n_kv] = probs
            pooling.append(attention_lab.PoolingResult(n_kv, attention_lab.kl_bits(base, probs),
                                                       top == int(np.argmax(probs)), top, int(np.argmax(probs)),
                                                       float(probs[top])))
        name = model.info.name
        return GqaResult(tuple(ids), name, cfg.family, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.n_layer,
                         attention_lab.attention_of(cfg, "▶ this model"), tuple(pooling), base, pooled_probs,
                         lambda t: fragment_text(model.tokenizer, [t]))

    def action_next_pool(self) -> None:
        n = len(self.result.pooling) if self.result else 1
        self.pool_index = (self.pool_index + 1) % max(1, n)
        self.redraw()

    def draw(self, result: GqaResult) -> None:
        self.pool_index = min(self.pool_index, max(0, len(result.pooling) - 1))
        kind = result.own.kind
        self.update_breadcrumb(f"{kind} {result.n_head}:{result.n_kv_head}")
        self.query_one("#gqa-canvas", Canvas).show(lambda width: self._picture(result, width))

    def _picture(self, r: GqaResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"{r.name}: {r.n_head} query heads over {r.n_kv_head} kv heads ({r.own.kind})\n", style="bold")
        out.append_text(self._grouping(r.n_head, r.n_kv_head, width))
        out.append("\n")
        out.append("Pooling this model's kv heads (averaging their k and v weights)\n", style="bold")
        out.append(f"{'kv heads':>9} {'cache/token':>12} {'KL bits':>9}  {'top token kept':<15}\n", style="dim")
        for i, p in enumerate(r.pooling):
            cache = 2 * r.n_layer * p.n_kv_head * r.head_dim * 2
            marker = "▶" if i == self.pool_index else " "
            style = f"bold {ACCENT}" if i == self.pool_index else ""
            own = " (as trained)" if p.n_kv_head == r.n_kv_head else ""
            out.append(f"{marker}{p.n_kv_head:>8} {fmt_bytes(cache):>12} {p.kl:9.4f}  "
                       f"{'yes' if p.top1_same else 'no':<4}{own}\n", style=style)
        if r.pooling:
            p = r.pooling[self.pool_index]
            probs = r.pooled_probs.get(p.n_kv_head)
            if probs is not None:
                top = np.argsort(-r.base_probs)[:4]
                cells = [f"{r.decode(t)!r} {r.base_probs[t]:.1%}→{probs[t]:.1%}" for t in top]
                out.append_text(dim_para(f"with {p.n_kv_head} kv heads: " + " · ".join(cells), width))
        out.append_text(dim_para("Averaging without retraining is crude: published GQA models are trained "
                                 "that way (or briefly 'uptrained' after pooling), which recovers most of the "
                                 "quality.", width))
        # KV cache per token of context, 16-bit values, over all layers
        rows = [r.own] + list(attention_lab.PUBLISHED_ATTENTION)
        bars = [Bar(p.name, p.kv_bytes_per_token() / 1024,
                    note=f"{p.kind} {p.n_head}:{p.n_kv_head}" if p.kind != "MLA" else "MLA latent")
                for p in rows]
        out.append("\nKV cache per token of context (16-bit values, all layers)\n", style="bold")
        out.append_text(render_bars(bars, width, fmt="{:7.1f} KiB", label_width=18))
        out.append("\n")
        out.append_text(dim_para("e.g. Llama 3 8B at 8k tokens: "
                                 f"{fmt_bytes(131072 * 8192)} of cache; as MHA it would be 4× that.", width))
        return out

    def _grouping(self, n_head: int, n_kv: int, width: int) -> Text:
        """Query heads coloured by the kv head they read."""
        group = n_head // n_kv
        out = Text()
        out.append(" query heads ", style="dim")
        cell = 3 if n_head * 3 + 14 <= width else 2
        for h in range(n_head):
            bg = CHIP_BACKGROUNDS[(h // group) % len(CHIP_BACKGROUNDS)]
            out.append(f"{h}".center(cell), style=cell_style(CHIP_FG, bg))
        out.append("\n    kv heads ", style="dim")
        for g in range(n_kv):
            bg = CHIP_BACKGROUNDS[g % len(CHIP_BACKGROUNDS)]
            out.append(f"kv{g}".center(cell * group), style=cell_style(CHIP_FG, bg, bold=True))
        return out
