"""Mixture of experts, small scale: the loaded model's real MLP cut into experts, a router, top-k routing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.modern._common import SCROLL_BINDINGS, Picture, bar_line, token_label
from fwdtui.core import modern_lab
from fwdtui.core.modern_lab import PUBLISHED_MOE, MoEResult
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

EXPERT_COUNTS = (4, 8, 16)


@dataclass(frozen=True)
class MoEView:
    model_name: str
    tokenizer: Any
    ids: tuple[int, ...]
    n_layer: int
    n_inner: int
    routed: MoEResult


@register
class MoEChapter(Picture, Chapter):
    ID = "modern.moe"
    SECTION = "modern"
    TITLE = "Mixture of experts"
    SUMMARY = "A router sends each token to a few experts."
    PICTURE = "moe"
    EXPLANATION = """
A **mixture of experts** (MoE) replaces one big MLP by many smaller ones, the *experts*, and a small
**router** that picks, for each token, the **top-k** experts to run. The model stores all experts but
each token pays for only k of them: many parameters, few FLOPs per token.

**Small-scale demonstration.** The loaded model is dense, so here its *real* MLP of one layer is cut
into E experts (each a slice of its hidden units: "expert slicing"). The router is a linear layer
initialised from each expert's mean gate weights, so it picks the experts whose units this token
switches on most (`r`: an oracle router that knows each expert's real output size). The chosen
experts' outputs are added; with k = E it is exactly the dense MLP. A trained MoE learns its router
and its experts together, and an auxiliary **load-balancing loss** keeps tokens spread over experts.
`l`/`L` layer · `e` experts · `+`/`-` k · `r` router · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (modern_lab.route_tokens, modern_lab.router_weights, modern_lab.moe_forward,
                      modern_lab.balance_loss)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "top_k(1)", "k+", key_display="+/-", tooltip="Route each token to one more expert"),
        Binding("minus", "top_k(-1)", "k-", show=False, tooltip="Route each token to one expert fewer"),
        Binding("e", "experts", "Experts", tooltip="Cut the MLP into 4, 8 or 16 experts"),
        Binding("l", "layer(1)", "Layer", show=False, tooltip="Use the next layer's MLP"),
        Binding("L", "layer(-1)", "Layer -", show=False, tooltip="Use the previous layer's MLP"),
        Binding("r", "router", "Router", show=False, tooltip="Switch between the linear router and the oracle"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.layer_index = 0
        self.n_expert = 8
        self.top_k = 2
        self.router = "linear"
        self._inputs: tuple[Any, ...] | None = None  # (model, ids, [ln2 inputs per layer]) of the last trace

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> MoEView:
        model = snapshot.require_model()
        if model.tokenizer is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        ids = tuple(snapshot.ids)
        cached = self._inputs
        if cached is None or cached[0] is not model or cached[1] != ids:
            snapshot.progress(None, f"Running {model.info.name} on {len(ids)} tokens")
            trace = model.trace(list(ids))
            cached = (model, ids, [trace[f"blocks.{i}.ln2.out"] for i in range(model.config.n_layer)])
            self._inputs = cached
        layer = min(self.layer_index, model.config.n_layer - 1)
        n_expert = min(self.n_expert, model.config.n_inner)
        snapshot.progress(None, f"Routing {len(ids)} tokens through {n_expert} experts of layer {layer}")
        routed = modern_lab.route_tokens(model, cached[2][layer], layer, n_expert, min(self.top_k, n_expert),
                                         self.router)
        return MoEView(model.info.name, model.tokenizer, ids, model.config.n_layer, model.config.n_inner, routed)

    def draw(self, result: MoEView) -> None:
        r = result.routed
        self.update_breadcrumb(f"layer {r.layer} · E={r.n_expert} · k={r.top_k}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    # --- playground -------------------------------------------------------------------------------
    def action_top_k(self, delta: int) -> None:
        self.top_k = max(1, min(self.n_expert, self.top_k + delta))
        self.recompute()

    def action_experts(self) -> None:
        self.n_expert = EXPERT_COUNTS[(EXPERT_COUNTS.index(self.n_expert) + 1) % len(EXPERT_COUNTS)]
        self.top_k = min(self.top_k, self.n_expert)
        self.recompute()

    def action_layer(self, delta: int) -> None:
        n_layer = self.result.n_layer if self.result else 1
        self.layer_index = (self.layer_index + delta) % n_layer
        self.recompute()

    def action_router(self) -> None:
        self.router = "oracle" if self.router == "linear" else "linear"
        self.recompute()

    # --- picture ----------------------------------------------------------------------------------
    def _picture(self, v: MoEView, width: int) -> Text:
        r = v.routed
        out = Text(no_wrap=True, overflow="crop")
        per = v.n_inner // r.n_expert
        out.append(f"Layer {r.layer} MLP of {v.model_name}: {v.n_inner} hidden units cut into {r.n_expert} "
                   f"experts of ~{per}\n", style="bold")
        router = ("linear router (mean gate weights)" if r.router == "linear"
                  else "oracle router (each expert's real output size)")
        out.append(f"{router} · each token goes to its top-{r.top_k}\n", style=DIM)
        out.append("Small-scale demo: this model is dense; the experts are slices of its real MLP.\n\n",
                   style=DIM)
        # one row per token: router probability as shade, chosen experts marked
        cell = 3
        out.append("token       " + "".join(str(e).rjust(cell) for e in range(r.n_expert)) + "   chosen\n",
                   style=DIM)
        for t, token in enumerate(v.ids):
            out.append(f"{token_label(v.tokenizer, token, 10):<11} ")
            probs = r.router_probs[t]
            top = probs.max() or 1.0
            for e in range(r.n_expert):
                colour = SEQUENTIAL[int(round(probs[e] / top * (len(SEQUENTIAL) - 1)))]
                chosen = e in r.chosen[t]
                mark = "●" if chosen else "·"
                out.append(" " * (cell - 1))
                out.append(mark, style=cell_style(ACCENT if chosen else colour, bold=chosen))
            out.append("   " + ",".join(str(int(e)) for e in r.chosen[t]) + "\n")
        out.append("(shade: router probability, ● chosen)\n\n", style=DIM)
        # load per expert
        out.append(f"Load: tokens sent to each expert (top-{r.top_k}, {len(v.ids)} tokens)\n", style="bold")
        vmax = max(1, int(r.load.max()))
        for e, n in enumerate(r.load):
            out.append_text(bar_line(f"expert {e}", n / vmax, f"{int(n)}", width,
                                     style=cell_style(ACCENT if n == vmax else SEQUENTIAL[8])))
        even = len(v.ids) * r.top_k / r.n_expert
        out.append(f"Load-balancing loss {r.balance_loss:.3f}", style=cell_style(ACCENT, bold=True))
        out.append(f"  (1.000 = perfectly even)\nAn even share would be {even:.1f} tokens per expert.\n\n",
                   style=DIM)
        # error vs dense as k grows
        out.append("Output vs the dense MLP as k grows (mean relative error over the prompt)\n", style="bold")
        top_err = max(float(r.errors.max()), 1e-12)
        for k, err in enumerate(r.errors, start=1):
            note = f"{err:6.1%}" + ("  = the dense MLP" if k == r.n_expert else "") + (
                "  ◀ now" if k == r.top_k else "")
            out.append_text(bar_line(f"k = {k}", err / top_err, note, width,
                                     style=cell_style(ACCENT if k == r.top_k else SEQUENTIAL[5])))
        out.append(f"With top-{r.top_k} each token runs {r.top_k}/{r.n_expert} of this MLP's units "
                   f"({r.top_k / r.n_expert:.0%} of its FLOPs).\n", style=DIM)
        out.append("These experts were never trained to work alone, so dropping some costs accuracy;\n"
                   "a trained MoE spreads knowledge so that k experts suffice.\n\n", style=DIM)
        # published configurations
        out.append("Published MoE models\n", style="bold")
        out.append(f"{'model':<19}{'experts':>8}{'active':>7}{'shared':>7}{'total':>8}{'active':>8}\n", style=DIM)
        for m in PUBLISHED_MOE:
            out.append(f"{m.name:<19}{m.n_expert:>8}{m.n_active:>7}{m.n_shared:>7}{m.total_b:>7.1f}B"
                       f"{m.active_b:>7.1f}B\n")
            out.append(f"{'':<4}{m.note} · {m.active_b / m.total_b:.0%} of the weights per token\n", style=DIM)
        return out
