"""Multi-head latent attention, computed for real at small scale: the latent cache and weight absorption."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.attention._common import dim, dim_para, para
from fwdtui.chapters.base import Chapter, register
from fwdtui.core import attention_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT

LATENTS = (4, 8, 16, 32, 64)
N_HEAD, D_NOPE, D_ROPE = 4, 16, 8


@dataclass(frozen=True)
class MlaResult:
    ids: tuple[int, ...]
    n_embd: int
    n_seq: int
    layer: int
    d_latent: int
    plain: attention_lab.MLAOutput
    absorbed: attention_lab.MLAOutput
    cache_table: list[tuple[str, int]]
    kv_energy: np.ndarray  # [rank] fraction of the loaded model's K/V projection kept by a rank-r latent
    kv_rows: int  # rows of the stacked k/v projection (its full rank at most)
    model_name: str


@register
class LatentAttentionChapter(Chapter):
    ID = "attention.mla"
    SECTION = "attention"
    TITLE = "Multi-head latent attention"
    SUMMARY = "Keys and values through a small latent."
    EXPLANATION = """
DeepSeek-V2 and V3 cache neither keys nor values. Each token is squeezed into one small
**latent** vector c = x·W_dkv (512 numbers in DeepSeek-V3), and every head rebuilds its keys and
values from it with up-projections W_uk, W_uv. Rotary does not commute with that trick, so a small
**decoupled rotary key** (64 numbers, shared by all heads) is cached beside it. At serving time
W_uk is folded into the query and W_uv into the output (**weight absorption**): heads attend
straight over the cached latents and keys are never rebuilt.
"""
    CODE_FUNCTIONS = (attention_lab.mla_plain, attention_lab.mla_absorbed, attention_lab.random_mla)

    BINDINGS = [
        Binding("plus,equals_sign", "latent(1)", "Latent+", key_display="+", tooltip="A wider latent"),
        Binding("minus", "latent(-1)", "Latent-", key_display="-", tooltip="A narrower latent"),
        Binding("l", "layer(1)", "Layer", show=False, tooltip="Take the inputs from the next layer"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.latent_index = 2
        self.layer_index = 0

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="mla-canvas")

    def compute(self, snapshot: Snapshot) -> MlaResult:
        model = snapshot.require_model()
        cfg = model.config
        layer = self.layer_index % cfg.n_layer
        ids = list(snapshot.ids)
        trace = model.trace(ids)
        x = trace[f"blocks.{layer}.ln1.out"]  # [n_seq, n_embd]: the real normed hidden states as input
        d_latent = LATENTS[self.latent_index]
        w = attention_lab.random_mla(seed=0, d_model=cfg.n_embd, n_head=N_HEAD, d_latent=d_latent,
                                     d_nope=D_NOPE, d_rope=D_ROPE)
        plain, absorbed = attention_lab.mla_plain(x, w), attention_lab.mla_absorbed(x, w)
        # How much of the loaded model's own key/value projection a rank-r latent could keep:
        # singular values of [W_k; W_v] (rows = every kv head's k and v dimensions).
        if cfg.family == "gpt2":
            w_attn = model.weights[f"h.{layer}.attn.c_attn.weight"]  # [n_embd, 3*n_embd]
            w_kv = w_attn[:, cfg.n_embd:].T  # [2*n_embd, n_embd]
        else:
            p = f"layers.{layer}.self_attn."
            w_kv = np.concatenate([model.weights[p + "k_proj.weight"], model.weights[p + "v_proj.weight"]])
        sv = np.linalg.svd(w_kv.astype(np.float64), compute_uv=False)
        energy = np.cumsum(sv**2) / np.sum(sv**2)
        return MlaResult(tuple(ids), cfg.n_embd, len(ids), layer, d_latent, plain, absorbed,
                         attention_lab.mla_cache_table(w, max(1, N_HEAD // 2)), energy, w_kv.shape[0],
                         model.info.name)

    def action_latent(self, delta: int) -> None:
        self.latent_index = max(0, min(len(LATENTS) - 1, self.latent_index + delta))
        self.recompute()

    def action_layer(self, delta: int) -> None:
        self.layer_index += delta
        self.recompute()

    def draw(self, result: MlaResult) -> None:
        self.update_breadcrumb(f"latent {result.d_latent} · small-scale demo")
        self.query_one("#mla-canvas", Canvas).show(lambda width: self._picture(result, width))

    def _picture(self, r: MlaResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append("Small-scale demonstration\n", style=f"bold reverse {ACCENT}")
        out.append_text(dim_para(f"{r.model_name} has no MLA, so these are seeded random MLA weights "
                                 f"({N_HEAD} heads) run on its real layer-{r.layer} hidden states (l: next layer).",
                                 width))
        out.append(f"x [{r.n_seq}, {r.n_embd}] → c = x·W_dkv [{r.n_seq}, {r.d_latent}] ", style="bold")
        out.append("cached", style=ACCENT)
        out.append(f" + k_rope [{r.n_seq}, {D_ROPE}] ", style="bold")
        out.append("cached\n", style=ACCENT)
        out.append_text(dim("  plain:    k_h = c·W_uk,h, v_h = c·W_uv,h rebuilt per head\n"
                            "  absorbed: (q_h·W_uk,hᵀ)·c, then (Σ w·c)·(W_uv,h·W_o,h)\n"))
        diff_out = float(np.max(np.abs(r.plain.out - r.absorbed.out)))
        diff_p = float(np.max(np.abs(r.plain.pattern - r.absorbed.pattern)))
        scale = float(np.max(np.abs(r.plain.out))) or 1.0
        out.append("absorbed = plain: ", style="bold")
        out.append(f"max |Δ output| {diff_out:.1e}", style=f"bold {ACCENT}")
        out.append_text(dim(f" (of {scale:.2f}) · weights {diff_p:.1e}\n"))
        out.append(f"\nCached per token per layer ({N_HEAD} heads of {D_NOPE + D_ROPE} dims)\n", style="bold")
        bars = [Bar(name, float(n), note="numbers") for name, n in r.cache_table]
        out.append_text(render_bars(bars, width, fmt="{:6.0f}", label_width=26))
        out.append("\n")
        out.append_text(dim_para("DeepSeek-V3: 512 + 64 = 576 numbers per token per layer, where 128 heads of "
                                 "MHA with 128-dim heads would keep 32,768.", width))
        kept = float(r.kv_energy[min(r.d_latent, len(r.kv_energy)) - 1])
        out.append_text(para(f"Could {r.model_name} be squeezed this way? A rank-{r.d_latent} latent keeps "
                             f"{kept:.0%} of the energy of its layer-{r.layer} key/value projection "
                             f"({r.kv_rows} rows); +/- change the rank. MLA models learn the latent in "
                             "training instead.", width))
        return out
