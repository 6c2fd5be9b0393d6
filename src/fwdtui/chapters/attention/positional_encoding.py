"""Positional encoding: learned tables, sinusoids and rotary positions, the loaded model's own first."""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import (
    NAV_BINDINGS,
    NavMixin,
    dim,
    dim_para,
    para,
    token_labels,
    with_hint,
)
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab, ops
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.heatmap import HeatmapData, render_heatmap
from fwdtui.widgets.palette import ACCENT

VIEWS = ("learned", "sinusoidal", "rotary")
VIEW_NAMES = {"learned": "learned table (GPT-2)", "sinusoidal": "sinusoidal (2017 Transformer)",
              "rotary": "rotary (Llama, SmolLM2)"}
OFFSETS = (0, 1, 4, 16)
STARTS = (0, 7, 100, 1000)


@dataclass(frozen=True)
class PositionResult:
    ids: tuple[int, ...]
    labels: list[str]
    family: str
    n_layer: int
    n_head: int
    n_group: int
    head_dim: int
    wpe: np.ndarray | None  # [n_pos, n_embd] GPT-2's learned table (first rows), None for rotary models
    q: list[np.ndarray]  # per layer [n_head, n_seq, head_dim], before any rotation
    k: list[np.ndarray]  # per layer [n_kv_head, n_seq, head_dim]
    inv_freq: np.ndarray  # the model's own rotary frequencies (or theta 10000 for GPT-2, "as if")
    rope_theta: float
    real_scores: list[np.ndarray] | None  # per layer [n_head, n_seq, n_seq] q_rot.k_rot (Llama only)
    embed_same: tuple[int, int, float] | None  # two positions of one repeated token and the cosine of their inputs


@register
class PositionalEncodingChapter(NavMixin, Chapter):
    ID = "attention.positional-encoding"
    SECTION = "attention"
    TITLE = "Positional encoding"
    SUMMARY = "Learned, sinusoidal and rotary positions, with the model's own highlighted."
    EXPLANATION = """
Attention by itself is blind to order: shuffle the keys and every weight stays the same. So
position is put in. **GPT-2** adds a learned vector per position to each token's embedding
(1024 of them). The **original Transformer** added fixed sine waves of many wavelengths.
**Rotary** (Llama, SmolLM2) adds nothing: it turns each pair of q and k dimensions by an angle
proportional to the position, so q·k depends only on how far apart the two tokens are.
`v` switches scheme (the loaded model's own is marked ★).
"""
    CODE_FUNCTIONS = (ops.rope_frequencies, ops.rope, attention_lab.rotary_offset_table, attention_lab.sinusoidal_table)

    BINDINGS = NAV_BINDINGS + [
        Binding("v", "next_view", "Scheme", tooltip="Learned, sinusoidal or rotary positions"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.view: str | None = None  # None: the loaded model's own scheme

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="pos-canvas")

    def compute(self, snapshot: Snapshot) -> PositionResult:
        model = snapshot.require_model()
        cfg = model.config
        ids = list(snapshot.ids)
        trace = model.trace(ids)
        llama = cfg.family == "llama"
        inv_freq = model.inv_freq if llama else ops.rope_frequencies(cfg.head_dim, 10000.0)
        wpe = model.weights["wpe.weight"][:256] if not llama else None
        real = None
        if llama:
            real = [trace[f"blocks.{i}.attn.q_rot"] @ np.repeat(trace[f"blocks.{i}.attn.k_rot"], cfg.n_group, axis=0)
                    .transpose(0, 2, 1) for i in range(cfg.n_layer)]
        embed_same = None
        seen: dict[int, int] = {}
        for pos, t in enumerate(ids):
            if t in seen:
                x = trace["blocks.0.resid_pre"]
                embed_same = (seen[t], pos, attention_lab.cosine(x[seen[t]], x[pos]))
                break
            seen[t] = pos
        return PositionResult(
            tuple(ids), token_labels(model, ids, 10), cfg.family, cfg.n_layer, cfg.n_head, cfg.n_group, cfg.head_dim,
            wpe, [trace[f"blocks.{i}.attn.q"] for i in range(cfg.n_layer)],
            [trace[f"blocks.{i}.attn.k"] for i in range(cfg.n_layer)], inv_freq,
            cfg.rope_theta if llama else 10000.0, real, embed_same,
        )

    def own_view(self, family: str) -> str:
        return "learned" if family == "gpt2" else "rotary"

    def action_next_view(self) -> None:
        family = self.result.family if self.result else "gpt2"
        current = self.view or self.own_view(family)
        self.view = VIEWS[(VIEWS.index(current) + 1) % len(VIEWS)]
        self.redraw()

    def draw(self, result: PositionResult) -> None:
        layer, head, token = self.clamp_nav(result.n_layer, result.n_head, len(result.ids))
        view = self.view or self.own_view(result.family)
        self.update_breadcrumb(VIEW_NAMES[view].split(" (")[0])
        canvas = self.query_one("#pos-canvas", Canvas)
        canvas.show(lambda width: self._picture(result, view, layer, head, token, width, canvas.room()))

    def _picture(self, r: PositionResult, view: str, layer: int, head: int, token: int, width: int,
                 room: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        own = self.own_view(r.family)
        for v in VIEWS:
            name = VIEW_NAMES[v].split(" (")[0]
            style = f"bold reverse {ACCENT}" if v == view else ("bold" if v == own else "")
            out.append(f" {name}{' ★' if v == own else ''} ", style=style)
            out.append(" ")
        out.append_text(dim(" (v: next; ★ = this model)\n"))
        if view == "learned":
            out.append_text(self._learned(r, width, room - 1))
        elif view == "sinusoidal":
            out.append_text(self._sinusoidal(width, room - 1))
        else:
            out.append_text(self._rotary(r, layer, head, token, width))
        return out

    def _learned(self, r: PositionResult, width: int, height: int) -> Text:
        out = Text()
        if r.wpe is None:
            out.append("This model has no table of positions.\n", style="bold")
            out.append_text(para("Its input vector is the token's embedding alone; position enters later, "
                                 "inside attention, by rotating q and k (press v for rotary).", width))
            if r.embed_same:
                a, b, c = r.embed_same
                out.append_text(para(f"Your prompt has the token '{r.labels[a]}' at positions {a} and {b}: "
                                     f"the cosine of their input vectors is {c:.3f}; identical, nothing in them "
                                     "says where they are.", width))
            return out
        n = int(max(8, min(len(r.wpe), (width - 14), 2 * (height - 5))))
        cos = attention_lab.cosine_matrix(r.wpe[:n])
        data = HeatmapData(cos, tuple(str(i) for i in range(n)), tuple(str(i) for i in range(n)), palette="diverging",
                           vmin=-1.0, vmax=1.0, title=f"cosine between GPT-2's learned position vectors 0-{n - 1}",
                           row_name="position", col_name="position", fmt="{:.2f}")
        out.append_text(render_heatmap(data, width, height - 2))
        out.append("\n")
        near = float(np.mean([cos[i, i + 1] for i in range(n - 1)]))
        far = float(np.mean([cos[i, i + n // 2] for i in range(n - n // 2)]))
        out.append_text(dim_para(f"Neighbouring positions: cosine {near:.2f} on average; {n // 2} apart: {far:.2f}. "
                                 "Learned from data, nothing forces this shape.", width))
        if r.embed_same:
            a, b, c = r.embed_same
            out.append_text(dim_para(f"'{r.labels[a]}' at {a} and {b}: input cosine {c:.3f} (same token, "
                                     "different position vectors added)", width))
        return out

    def _sinusoidal(self, width: int, height: int) -> Text:
        out = Text()
        out.append("PE(p, 2i) = sin(p / 10000^(2i/d))   PE(p, 2i+1) = cos(p / 10000^(2i/d))\n", style="bold")
        d = 64
        n = int(max(8, min(128, 2 * (height - 6))))
        table = attention_lab.sinusoidal_table(n, d)
        data = HeatmapData(table, tuple(str(i) for i in range(n)), tuple(str(i) for i in range(d)),
                           palette="diverging", vmin=-1.0, vmax=1.0, row_name="position", col_name="dimension (d=64)")
        out.append_text(render_heatmap(data, width, height - 3))
        out.append("\n")
        out.append_text(dim_para("Left columns wave fast (wavelength 2π), right ones barely move (up to "
                                 "10000·2π): together they give each position its own fingerprint. Nothing "
                                 "is learned.", width))
        return out

    def _rotary(self, r: PositionResult, layer: int, head: int, token: int, width: int) -> Text:
        out = Text()
        kv = head // r.n_group
        key = max(0, token - 1)
        q = r.q[layer][head, token]
        k = r.k[layer][kv, key]
        line = Text()
        line.append(f"q of '{r.labels[token]}' (#{token}) and k of '{r.labels[key]}' (#{key}), layer {layer} head {head}",
                    style="bold")
        out.append_text(with_hint(line, width))
        out.append("\n")
        if r.family != "llama":
            out.append_text(dim_para("GPT-2 does not rotate: these are its real q and k, rotated here as if it did.",
                                     width))
        table = attention_lab.rotary_offset_table(q, k, r.inv_freq, OFFSETS, STARTS)
        out.append_text(dim("score q·k after rotating q to position s+Δ and k to s\n"))
        out.append(f"{'offset Δ':>9} " + "".join(f"{'s=' + str(s):>10}" for s in STARTS) + "   spread\n", style="bold")
        for d, row in zip(OFFSETS, table):
            out.append(f"{d:>9} " + "".join(f"{v:10.4f}" for v in row))
            out.append(f"   {np.ptp(row):.0e}\n", style=ACCENT)
        out.append_text(dim_para("Each row is one number: the score sees only the offset Δ, never where the "
                                 "pair sits.", width))
        if r.real_scores is not None:
            real = float(r.real_scores[layer][head, token, key])
            out.append_text(dim_para(f"At their real positions ({token}, {key}) the model's own q_rot·k_rot is "
                                     f"{real:.4f}: the Δ={token - key} row.", width))
        half = len(r.inv_freq)
        pairs = sorted({0, 1, half // 4, half // 2, half - 1})
        degrees = np.degrees(r.inv_freq[pairs])
        out.append(f"Turn per token (θ={r.rope_theta:g}), fast pairs to slow:\n", style="bold")
        out.append_text(para(" · ".join(f"pair {p} {deg:.3g}°" for p, deg in zip(pairs, degrees)), width))
        return out
