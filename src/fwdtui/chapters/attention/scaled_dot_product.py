"""Scaled dot-product attention on the real q, k, v of one head: dots, scale, mask, softmax, sum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import NAV_BINDINGS, NAV_HINT, NavMixin, dim, token_labels, with_hint
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab, ops
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, SEQUENTIAL, cell_style
from fwdtui.widgets.vector_strip import render_vector


@dataclass(frozen=True)
class SdpResult:
    ids: tuple[int, ...]
    labels: list[str]
    trace: Any
    family: str
    n_layer: int
    n_head: int
    n_group: int
    head_dim: int


@register
class ScaledDotProductChapter(NavMixin, Chapter):
    ID = "attention.scaled-dot-product"
    SECTION = "attention"
    TITLE = "Scaled dot-product attention"
    SUMMARY = "Real q, k, v numbers: dot products, scale, causal mask, softmax, weighted sum."
    EXPLANATION = """
Each token makes three vectors per head: a **query** (what it looks for), a **key** (what it
offers) and a **value** (what it hands over). The score of key j is **q·k_j / √d_head**; keys
in the future are set to −∞ (the **causal mask**); **softmax** turns scores into weights that
sum to 1; the output **z** is the weighted sum of the values. The numbers below are the loaded
model's own, recomputed step by step and checked against its Trace. Try `s` to drop the
1/√d scale (the weights pile onto one key: entropy falls) and `u` to lift the mask.
"""
    CODE_FUNCTIONS = (ops.attention, ops.softmax, ops.causal_mask, attention_lab.attention_row)

    BINDINGS = NAV_BINDINGS + [
        Binding("s", "toggle_scale", "Scale", tooltip="Remove or restore the 1/sqrt(d_head) scale"),
        Binding("u", "toggle_mask", "Unmask", tooltip="Lift or restore the causal mask"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.use_scale = True
        self.causal = True

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="sdp-canvas")

    def compute(self, snapshot: Snapshot) -> SdpResult:
        model = snapshot.require_model()
        cfg = model.config
        trace = model.trace(list(snapshot.ids))
        return SdpResult(tuple(snapshot.ids), token_labels(model, snapshot.ids, 10), trace, cfg.family, cfg.n_layer,
                         cfg.n_head, cfg.n_group, cfg.head_dim)

    def action_toggle_scale(self) -> None:
        self.use_scale = not self.use_scale
        self.redraw()

    def action_toggle_mask(self) -> None:
        self.causal = not self.causal
        self.redraw()

    def draw(self, result: SdpResult) -> None:
        layer, head, token = self.clamp_nav(result.n_layer, result.n_head, len(result.ids))
        self.update_breadcrumb(f"layer {layer} · head {head} · query #{token}")
        self.query_one("#sdp-canvas", Canvas).show(lambda width: self._picture(result, layer, head, token, width))

    def _picture(self, r: SdpResult, layer: int, head: int, query: int, width: int) -> Text:
        q, k, v = attention_lab.attention_inputs(r.trace, _Cfg(r.family), layer)
        kv = head // r.n_group
        row = attention_lab.attention_row(q[head], k[kv], v[kv], query, self.use_scale, self.causal)
        exact = attention_lab.attention_row(q[head], k[kv], v[kv], query)  # what the model computed
        out = Text(no_wrap=True, overflow="crop")
        head_line = Text()
        head_line.append(f"Layer {layer}, head {head}", style="bold")
        if r.n_group > 1:
            head_line.append(f" (kv head {kv})")
        head_line.append(" · query ")
        head_line.append(f"#{query} '{r.labels[query]}'", style=f"bold {ACCENT}")
        rot = ", rotated" if r.family == "llama" else ""
        head_line.append_text(dim(f" · d_head {r.head_dim}{rot}"))
        out.append_text(with_hint(head_line, width))
        out.append("\n")
        top = int(np.argmax(row.weights))
        scale = float(max(np.abs(q[head, query]).max(), np.abs(k[kv, top]).max())) or 1.0
        out.append_text(render_vector(q[head, query], width, f"q #{query:<3}", scale=scale, stats=False))
        out.append("\n")
        out.append_text(render_vector(k[kv, top], width, f"k #{top:<3}", scale=scale, stats=False))
        out.append_text(dim("  ← the key it weights most\n"))
        # the table: one line per key, the most-weighted first
        factor = f"÷√{r.head_dim}" if self.use_scale else "(no scale)"
        out.append_text(dim(f"{'key':>14} {'q·k':>8} {factor:>10} {'weight':>7}\n"))
        n_k = len(row.weights)
        order = np.argsort(-row.weights, kind="stable")[:6]
        bar_w = max(4, width - 44)
        for j in order:
            label = f"#{j} {r.labels[j]}"[:14]
            future = j > query
            masked = self.causal and future
            out.append(f"{label:>14} ", style="bold" if j == top else "")
            out.append(f"{row.dots[j]:8.2f} ")
            out.append(f"{'−∞' if masked else f'{row.scaled[j]:.2f}':>10} ")
            out.append(f"{row.weights[j]:7.1%} ")
            out.append(bar_string(float(row.weights[j]), bar_w), style=cell_style(SEQUENTIAL[-3]))
            if future:
                out.append(" future!" if not self.causal else "", style=f"bold {ACCENT}")
            out.append("\n")
        hidden = max(0, n_k - 1 - query) if self.causal else 0
        rest = n_k - len(order)
        if rest > 0:
            out.append_text(dim(f"{'':>14} … {rest} more keys share {1 - row.weights[order].sum():.1%}"
                                + (f"; {hidden} future keys masked to −∞ (weight 0)" if hidden else "") + "\n"))
        elif hidden:
            out.append_text(dim(f"{'':>14} {hidden} future keys masked to −∞ (weight 0)\n"))
        out.append("entropy ", style="bold")
        out.append(f"{row.entropy:.2f} bits", style=f"bold {ACCENT}")
        out.append_text(dim(f" (with the scale and mask: {exact.entropy:.2f}; spread evenly: "
                            f"{np.log2(query + 1 if self.causal else n_k):.2f})\n"))
        z_model = r.trace[f"blocks.{layer}.attn.z"][head, query]
        out.append_text(render_vector(row.z, width, "z = Σ w·v", stats=False))
        out.append("\n")
        diff = float(np.max(np.abs(row.z - z_model)))
        if self.use_scale and self.causal:
            out.append_text(dim(f"equals the model's own z in its Trace: max |difference| {diff:.1e}"))
        else:
            changed = " and ".join(part for part, on in (("no scale", not self.use_scale),
                                                           ("no mask", not self.causal)) if on)
            out.append(f"with {changed} z moves {diff:.3f} away from what the model computed", style=ACCENT)
            if not self.causal:
                out.append_text(dim(" (it would read the answer from the future)"))
        out.append_text(dim(f"\nkeys: {NAV_HINT} · s scale · u mask"))
        return out


@dataclass(frozen=True)
class _Cfg:
    """The one config field attention_inputs reads, kept in the result instead of the whole model."""

    family: str
