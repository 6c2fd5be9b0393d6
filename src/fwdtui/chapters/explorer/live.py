"""Your model, live: the loaded model drawn like the published ones, its real residual stream flowing through."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.explorer.diagram import FLOW, attention_short, fmt_count, render_block_diagram
from fwdtui.core import architectures as arch_mod
from fwdtui.core.architectures import (
    Architecture,
    ResidualFlow,
    architecture_of,
    count_arch_params,
    differs,
    published_match,
    residual_flow,
)
from fwdtui.core.model import Model
from fwdtui.core.trace import Trace
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.canvas import SCROLL_BINDINGS, Picture
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style
from fwdtui.widgets.token_strip import TokenPiece, pieces_for, short_label


@dataclass(frozen=True)
class LiveResult:
    """One traced forward pass of the loaded model on the prompt, and the flow at the selected token."""

    model: Model
    arch: Architecture
    trace: Trace
    pieces: tuple[TokenPiece, ...]
    flow: ResidualFlow
    tensor_params: int  # the loaded tensors counted one by one


def _n(value: float) -> str:
    """A vector length with three significant figures or so: 0.73, 2.61, 94.5, 666."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _label(model: Model, token: int, width: int = 10) -> str:
    """A token as a short quoted label (spaces shown as ·)."""
    return "'" + short_label(pieces_for(model.tokenizer, [token])[0], width) + "'"


@register
class LiveChapter(Picture, Chapter):
    ID = "explorer.live"
    PICTURE = "live"  # #live-scroll holding #live-canvas
    SECTION = "explorer"
    TITLE = "Your models, live"
    SUMMARY = "The locally available models through the same diagram."
    EXPLANATION = """
Your prompt flowing through the loaded model. Per block, at the selected token: the size ‖x‖ of the
residual stream, how much **attention** and the **MLP** add to it (their output's size next to the
stream's), and the **logit lens**: the guess if the model stopped there. `↑↓` layer · `←→` token.
"""
    CODE_FUNCTIONS = (arch_mod.residual_flow, Model.logit_lens)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "layer(-1)", "Layer", key_display="↑↓", priority=True, tooltip="Select the previous layer"),
        Binding("down", "layer(1)", "Layer +", show=False, priority=True, tooltip="Select the next layer"),
        Binding("left", "token(-1)", "Token", key_display="←→", priority=True, tooltip="Select the previous token"),
        Binding("right", "token(1)", "Token +", show=False, priority=True, tooltip="Select the next token"),
        *SCROLL_BINDINGS,
        Binding("end", "last_token", "Last token", show=False, tooltip="Back to the last token of the prompt"),
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.layer_index = 0
        self.token_index = -1  # -1: the last token, until the user picks one
        self._flows: dict[int, ResidualFlow] = {}  # position -> flow, for the current trace
        self._flows_of: LiveResult | None = None  # the result those flows were read from

    # --- frame hooks ---------------------------------------------------------------------------
    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> LiveResult:
        model = snapshot.require_model()
        if model.tokenizer is None:
            raise PromptError("This model has no tokenizer, so it cannot read a prompt.",
                              "Choose a model with tokenizer files (press m).")
        snapshot.progress(None, f"Running {model.info.name} on {len(snapshot.ids)} tokens")
        trace = model.trace(list(snapshot.ids))
        position = self._position(len(snapshot.ids))
        flow = residual_flow(model, trace, position)
        arch = architecture_of(model.config, model.info.name)
        published = published_match(model.config)
        if published is not None:
            arch = replace(published, key=model.info.name)  # the same recipe, drawn with its published details
        return LiveResult(model, arch, trace, tuple(pieces_for(model.tokenizer, snapshot.ids)), flow, model.n_params)

    def draw(self, result: LiveResult) -> None:
        if self._flows_of is not result:  # a new trace: flows read off the old one are stale
            self._flows_of = result
            self._flows = {result.flow.position: result.flow}
        self.layer_index = min(self.layer_index, result.model.config.n_layer - 1)
        flow = self._flows.get(self._position(len(result.pieces)), result.flow)
        self.update_breadcrumb(f"token #{flow.position} · layer {self.layer_index}")
        self.picture_canvas().show(lambda width: self._picture(result, flow, width))

    # --- actions --------------------------------------------------------------------------------
    def _position(self, n_tok: int) -> int:
        return max(0, min(n_tok - 1, self.token_index if self.token_index >= 0 else n_tok + self.token_index))

    def action_layer(self, delta: int) -> None:
        if self.result is None:
            return
        n_layer = self.result.model.config.n_layer
        self.layer_index = max(0, min(n_layer - 1, self.layer_index + delta))
        self.redraw()

    def action_token(self, delta: int) -> None:
        if self.result is None:
            return
        n_tok = len(self.result.pieces)
        self.token_index = max(0, min(n_tok - 1, self._position(n_tok) + delta))
        self._show_position()

    def action_last_token(self) -> None:
        self.token_index = -1
        self._show_position()

    def _show_position(self) -> None:
        result = self.result
        position = self._position(len(result.pieces))
        if position in self._flows:
            self.redraw()
            return
        # a new position needs the logit lens run again there: one small matmul per layer, off the UI thread
        model, trace = result.model, result.trace

        def done(flow: ResidualFlow) -> None:
            if self.result is result:
                self._flows[flow.position] = flow
                self.redraw()

        self.run_in_thread(lambda: residual_flow(model, trace, position), done, group="lens")

    # --- pictures -------------------------------------------------------------------------------
    def _room(self) -> int:
        return max(8, self.picture_scroll().size.height or 14)

    def _picture(self, r: LiveResult, flow: ResidualFlow, width: int) -> Text:
        model, arch = r.model, r.arch
        cfg = model.config
        out = Text(no_wrap=True, overflow="crop")
        token = r.pieces[flow.position]
        head = Text()
        head.append(f"{model.info.name}", style="bold")
        head.append(f" · {cfg.n_layer} blocks · d {cfg.n_embd} · {attention_short(arch)} · {arch.mlp}", style=DIM)
        out.append_text(head)
        out.append("\n")
        # the path through the model, with the measured stream in the block rows
        out.append("   • tokens      ", style=cell_style(FLOW))
        out.append(f"{len(r.pieces)} tokens; token #{flow.position} ", style="")
        out.append(f"'{short_label(token, 12)}'", style=cell_style(ACCENT, bold=True))
        out.append("  ←→\n", style=DIM)
        embed_what = "token + position vectors" if arch.position == "learned" else "token vector"
        out.append("   ▼ embedding   ", style=cell_style(FLOW))
        out.append(f"{embed_what}: ‖x‖ {_n(flow.embed_norm)} · lens {_label(model, flow.embed_top)} "
                   f"{flow.embed_prob:.0%}\n")
        recipe = f"{arch.norm} → attention → ⊕ → {arch.norm} → MLP → ⊕"
        box_w = max(20, min(width - 1, 78))
        top = (" ┌─ " + f"{cfg.n_layer} blocks: {recipe} ").ljust(box_w, "─")[:box_w]
        out.append(top + "\n", style=cell_style(FLOW))
        out.append_text(self._layer_rows(r, flow, width, max_rows=max(3, self._room() - 10)))
        out.append(" └" + "─" * (box_w - 2) + "\n", style=cell_style(FLOW))
        out.append("   ▼ final norm  ", style=cell_style(FLOW))
        out.append(f"{arch.norm}, then the {'tied ' if cfg.tie_word_embeddings else ''}unembedding\n")
        out.append("   • logits      ", style=cell_style(FLOW))
        out.append("next token ")
        out.append(_label(model, flow.final_top, 14), style=cell_style(ACCENT, bold=True))
        out.append(f" {flow.final_top_prob:.1%}\n")
        out.append_text(self._what_to_look_for(r, flow, width))
        # the selected block in detail: the same diagram the published models get, with measured numbers
        layer = flow.layers[self.layer_index]
        out.append("\n")
        out.append(f"Block {layer.layer} at token #{flow.position}, measured", style="bold")
        out.append("   ◆ differs from GPT-2\n" if differs(arch) else "\n", style=cell_style(ACCENT))
        notes = {
            "tokens": f"#{flow.position} '{short_label(token, 10)}'",
            "embed": f"‖x‖ {_n(flow.embed_norm)}",
            "ln1": f"in: ‖x‖ {_n(layer.norm_in)}",
            "attn": f"adds ‖{_n(layer.attn_out)}‖ = {layer.attn_ratio:.0%}",
            "resid1": f"‖x‖ {_n(layer.norm_mid)}",
            "ln2": f"in: ‖x‖ {_n(layer.norm_mid)}",
            "mlp": f"adds ‖{_n(layer.mlp_out)}‖ = {layer.mlp_ratio:.0%}",
            "resid2": f"‖x‖ {_n(layer.norm_out)} · lens {_label(model, layer.lens_top)} {layer.lens_prob:.0%}",
            "final_norm": f"in: ‖x‖ {_n(flow.layers[-1].norm_out)}",
            "logits": f"{_label(model, flow.final_top)} {flow.final_top_prob:.0%}",
        }
        out.append_text(render_block_diagram(arch, width, notes=notes, compare=False,
                                             block_title=f"block {layer.layer} of 0-{cfg.n_layer - 1}"))
        out.append_text(self._trust(r, arch, width))
        return out

    def _layer_rows(self, r: LiveResult, flow: ResidualFlow, width: int, max_rows: int) -> Text:
        """One line per block: stream size in and out, what attention and the MLP added, the logit lens."""
        model = r.model
        n = len(flow.layers)
        start = 0
        if n > max_rows:
            start = max(0, min(self.layer_index - max_rows // 2, n - max_rows))
        stop = min(n, start + max_rows)
        bar_w = 5 if width < 90 else 10
        out = Text(no_wrap=True, overflow="crop")
        out.append(" │ ", style=cell_style(FLOW))
        out.append(f"{'block':>7} {'‖x‖ in':>7}  {'+attn':<{bar_w + 5}} {'+MLP':<{bar_w + 5}} {'‖x‖ out':>7}  "
                   f"{'logit lens':<15} {'P(final)':>8}\n", style="bold")
        colour = SEQUENTIAL[-3]
        for i in range(start, stop):
            layer = flow.layers[i]
            chosen = i == self.layer_index
            style = cell_style(ACCENT, bold=True) if chosen else ""
            out.append(" │ ", style=cell_style(FLOW))
            out.append(f"{'▶' if chosen else ' '}{layer.layer:>6} {_n(layer.norm_in):>7}  ", style=style)
            for ratio in (layer.attn_ratio, layer.mlp_ratio):
                out.append(f"{ratio:>4.0%} ", style=style)
                out.append(bar_string(min(ratio, 1.0), bar_w), style=cell_style(colour))
                out.append(" ")
            out.append(f"{_n(layer.norm_out):>7}  ", style=style)
            guess = _label(model, layer.lens_top, 9)
            out.append(f"{guess:<11}{layer.lens_prob:>4.0%} ", style=style)
            out.append(f"{layer.final_prob:>8.0%}", style=style if layer.lens_top == flow.final_top else DIM)
            out.append("\n")
        if start or stop < n:
            out.append(" │ ", style=cell_style(FLOW))
            out.append(f"blocks {start}-{stop - 1} of 0-{n - 1} (↑↓)\n", style=DIM)
        return out

    def _what_to_look_for(self, r: LiveResult, flow: ResidualFlow, width: int) -> Text:
        """Name what the rows show, in words, for this prompt and token."""
        model, layers = r.model, flow.layers
        notes = []
        first, last = flow.embed_norm, layers[-1].norm_out
        if last > 2 * first:
            notes.append(f"The stream grows from ‖x‖ {_n(first)} to {_n(last)}: blocks add to it rather than "
                         "replace it, which is why a norm comes before every sublayer and before the unembedding.")
        biggest = max(((l.attn_ratio, "attention", l.layer) for l in layers),
                      key=lambda t: t[0]), max(((l.mlp_ratio, "MLP", l.layer) for l in layers), key=lambda t: t[0])
        ratio, part, layer = max(biggest)
        notes.append(f"The biggest single change is block {layer}'s {part} ({ratio:.0%} of the stream)"
                     + (": early MLPs often act as a second embedding." if part == "MLP" and layer <= 1 else "."))
        agree = next((l.layer for l in layers if l.lens_top == flow.final_top), None)
        final = _label(model, flow.final_top)
        if agree is not None and agree < len(layers) - 1:
            notes.append(f"The final answer {final} first tops the lens after block {agree} of 0-{len(layers) - 1}; "
                         "the blocks after it refine how sure it is.")
        else:
            notes.append(f"The final answer {final} tops the lens only after the last block: "
                         "the decision is made late.")
        out = Text()
        out.append("\nWhat to look for\n", style="bold")
        for note in notes:
            out.append("\n".join(textwrap.wrap("• " + note, max(20, width - 1), subsequent_indent="  ")) + "\n")
        return out

    def _trust(self, r: LiveResult, arch: Architecture, width: int) -> Text:
        """Where the numbers come from, and the parameter count checked against the tensors."""
        out = Text(no_wrap=True, overflow="crop")
        computed = count_arch_params(arch)
        out.append("\nWhere these numbers come from\n", style="bold")
        same = "the same" if computed == r.tensor_params else "they differ"
        if arch.published_params:
            same += f" (model card: {arch.published_label}, the {arch.name} row of the comparison chapter)"
        out.append("\n".join(textwrap.wrap(f"parameters from the config {computed:,} ({fmt_count(computed)}); "
                                           f"counted in the loaded tensors {r.tensor_params:,}: {same}.",
                                           max(20, width - 1))) + "\n")
        for line in (
            "‖x‖ is the length of the residual vector at this token; '+attn 35%' means attention's output "
            "is 35% as long as the stream it is added to.",
            "logit lens: the stream after that block run through the model's own final norm and unembedding "
            "(Model.logit_lens), so the last block's row is exactly the model's output. P(final): the "
            "probability it already gives the model's final answer.",
        ):
            out.append("\n".join(textwrap.wrap(line, max(20, width - 1))) + "\n", style=DIM)
        return out
