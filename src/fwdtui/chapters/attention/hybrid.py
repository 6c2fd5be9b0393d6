"""Hybrid architectures: linear attention (recurrent = parallel), constant memory, and published layer mixes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import NAV_BINDINGS, NavMixin, dim, dim_para, with_hint
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab
from fwdtui.core.quant import fmt_bytes
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, CHIP_FG, cell_style, xterm

DECAYS = (1.0, 0.99, 0.9, 0.5)
LENGTHS = (1024, 8192, 32768, 131072)
LAYER_COLOURS = {"A": xterm(166), "S": xterm(31), "L": xterm(29)}
LAYER_NAMES = {"A": "full attention", "S": "sliding-window attention", "L": "linear / recurrent"}


@dataclass(frozen=True)
class HybridResult:
    ids: tuple[int, ...]
    n_layer: int
    n_head: int
    n_kv_head: int
    head_dim: int
    model_name: str
    layer: int
    head: int
    decay: float
    max_diff: float  # recurrent against parallel
    out_scale: float
    softmax_cos: float  # mean cosine between linear-attention and the model's own softmax output
    state_numbers: int
    n_seq: int


@register
class HybridChapter(NavMixin, Chapter):
    ID = "attention.hybrid"
    SECTION = "attention"
    TITLE = "Hybrid architectures"
    SUMMARY = "Linear attention and state-space layers."
    EXPLANATION = """
Replace softmax's exp(q·k) by a product of features φ(q)·φ(k) and attention can be computed
**as a recurrence**: keep one matrix S = Σ φ(k_j) v_jᵀ, add each new token to it, read it with
the query. The state has a **fixed size** however long the text grows, where a KV cache grows by
one k and v per token; a decay makes it forget (the family that includes RetNet, Mamba-2 and
DeltaNet). Such layers recall less precisely, so **hybrids** keep a few full-attention layers
between many cheap ones. Below: the recurrent form checked equal to the parallel one.
"""
    CODE_FUNCTIONS = (attention_lab.linear_attention_parallel, attention_lab.linear_attention_recurrent,
                      attention_lab.feature_map)

    NAV_RECOMPUTE = ("layer", "head")

    BINDINGS = NAV_BINDINGS + [
        Binding("d", "next_decay", "Decay", tooltip="How fast the recurrent state forgets (1 = never)"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.decay_index = 0

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="hybrid-canvas")

    def compute(self, snapshot: Snapshot) -> HybridResult:
        model = snapshot.require_model()
        cfg = model.config
        ids = list(snapshot.ids)
        layer, head = self.layer_index % cfg.n_layer, self.head_index % cfg.n_head
        trace = model.trace(ids)
        q, k, v = attention_lab.attention_inputs(trace, cfg, layer)
        kv = head // cfg.n_group
        # q and k shrunk by d^(1/4) each, so phi sees the same scale as softmax's q.k/sqrt(d)
        qh = q[head].astype(np.float64) / cfg.head_dim**0.25  # [n_seq, head_dim]
        kh = k[kv].astype(np.float64) / cfg.head_dim**0.25
        vh = v[kv].astype(np.float64)
        decay = DECAYS[self.decay_index]
        parallel = attention_lab.linear_attention_parallel(qh, kh, vh, decay)
        run = attention_lab.linear_attention_recurrent(qh, kh, vh, decay)
        z = trace[f"blocks.{layer}.attn.z"][head].astype(np.float64)  # the model's softmax output, same head
        cos = float(np.mean([attention_lab.cosine(a, b) for a, b in zip(run.out, z)]))
        return HybridResult(tuple(ids), cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.head_dim, model.info.name,
                            layer, head, decay, float(np.max(np.abs(run.out - parallel))),
                            float(np.max(np.abs(parallel))) or 1.0, cos, run.state_numbers, len(ids))

    def action_next_decay(self) -> None:
        self.decay_index = (self.decay_index + 1) % len(DECAYS)
        self.recompute()

    def draw(self, result: HybridResult) -> None:
        self.update_breadcrumb(f"layer {result.layer} · head {result.head} · decay {result.decay:g}")
        self.query_one("#hybrid-canvas", Canvas).show(lambda width: self._picture(result, width))

    def _picture(self, r: HybridResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        line = Text()
        line.append("Small-scale demonstration:", style=f"bold reverse {ACCENT}")
        line.append(f" linear attention on layer {r.layer} head {r.head}'s real q, k, v", style="bold")
        out.append_text(with_hint(line, width, "l/h"))
        out.append("\n")
        out.append_text(dim_para(f"({r.model_name} itself uses softmax attention; decay {r.decay:g}, d: change)",
                                 width))
        out.append("recurrent = parallel: ", style="bold")
        out.append(f"max |Δ| {r.max_diff:.1e}", style=f"bold {ACCENT}")
        out.append_text(dim(f" ({r.n_seq} tokens, outputs up to {r.out_scale:.2f})\n"))
        out.append_text(dim(f"cosine to the head's own softmax output: {r.softmax_cos:.2f}\n"))
        # memory: what one sequence keeps, all layers and heads, 16-bit
        kv_per_token = 2 * r.n_layer * r.n_kv_head * r.head_dim * 2
        state = r.n_layer * r.n_head * (r.head_dim * r.head_dim + r.head_dim) * 2
        out.append("\nMemory per sequence, this model's shape, 16-bit\n", style="bold")
        out.append(f"{'tokens':>8} {'KV cache':>11} {'linear state':>13}\n", style="dim")
        for n in LENGTHS:
            out.append(f"{n:>8} {fmt_bytes(kv_per_token * n):>11} {fmt_bytes(state):>13}\n")
        out.append_text(dim_para(f"the state is {r.head_dim}×{r.head_dim} + {r.head_dim} numbers per head and "
                                 "never grows; the cache passes it after "
                                 f"{-(-state // kv_per_token):,} tokens", width))
        out.append("\nHow published hybrids stack their layers (one repeating unit)\n", style="bold")
        name_w = min(26, max(len(h.name) for h in attention_lab.PUBLISHED_HYBRIDS))
        for h in attention_lab.PUBLISHED_HYBRIDS:
            out.append(f"{h.name[:name_w]:<{name_w}} ")
            for letter in h.unit:
                out.append(f"{letter}", style=cell_style(CHIP_FG, LAYER_COLOURS[letter], bold=True))
            pad = 9 - len(h.unit)
            out.append(" " * pad)
            out.append_text(dim(h.note[: max(0, width - name_w - 11)]))
            out.append("\n")
        legend = Text()
        for letter, name in LAYER_NAMES.items():
            legend.append(f" {letter} ", style=cell_style(CHIP_FG, LAYER_COLOURS[letter], bold=True))
            legend.append(f" {name}  ", style="dim")
        out.append_text(legend)
        return out
