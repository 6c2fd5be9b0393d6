"""The layer diagram: the path from text to next token through the loaded model's blocks, current stage lit.

Three lines: the main path (text … sample), the stack of blocks with the current layer marked,
and the inside of one block (norm, attention, residual add, norm, MLP, residual add) named as the
model's family names them. Stages already passed are drawn in the flow colour, the current one
reversed, the rest dim: the data visibly flows left to right as the user steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widget import Widget

from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

FLOW = SEQUENTIAL[8]

# the main path; "blocks" stands for every stage inside the blocks
MAIN_STAGES = ("text", "tokens", "embed", "pos", "blocks", "final_norm", "logits", "probs", "sample", "append")
BLOCK_STAGES = ("ln1", "attn", "resid1", "ln2", "mlp", "resid2")


def main_labels(family: str) -> dict[str, str]:
    return {
        "text": "text",
        "tokens": "tokens",
        "embed": "embed",
        "pos": "positions" if family == "gpt2" else "rotary",
        "blocks": "blocks",
        "final_norm": "norm",
        "logits": "logits",
        "probs": "probs",
        "sample": "sample",
        "append": "append",
    }


def block_labels(family: str) -> dict[str, str]:
    norm = "LayerNorm" if family == "gpt2" else "RMSNorm"
    return {
        "ln1": norm,
        "attn": "attention" if family == "gpt2" else "attention+RoPE",
        "resid1": "⊕",
        "ln2": norm,
        "mlp": "MLP (GELU)" if family == "gpt2" else "MLP (SwiGLU)",
        "resid2": "⊕",
    }


@dataclass(frozen=True)
class DiagramState:
    """Where the journey is: a stage key (a main stage or a block stage) and, in blocks, the layer."""

    family: str
    n_layer: int
    stage: str
    layer: int = 0


def _main_position(stage: str) -> int:
    return MAIN_STAGES.index("blocks") if stage in BLOCK_STAGES else MAIN_STAGES.index(stage)


def _append_path(out: Text, labels: list[str], current: int, sep: str) -> None:
    """Stages joined by `sep`: those passed (and the joins up to `current`) in the flow colour, the
    current one reversed, the rest dim."""
    for i, label in enumerate(labels):
        if i:
            out.append(sep, style=cell_style(FLOW) if i <= current else DIM)
        if i == current:
            out.append(label, style=cell_style("#000000", ACCENT, bold=True))
        elif i < current:
            out.append(label, style=cell_style(FLOW))
        else:
            out.append(label, style=DIM)


def render_diagram(state: DiagramState, width: int) -> Text:
    """The three lines of the diagram for `state`."""
    out = Text(no_wrap=True, overflow="crop")
    here = _main_position(state.stage)
    labels = main_labels(state.family)
    wide = sum(len(labels[k]) for k in MAIN_STAGES) + 3 * (len(MAIN_STAGES) - 1) <= width
    _append_path(out, [labels[key] for key in MAIN_STAGES], here, " ▸ " if wide else "▸")
    out.append("\n")
    # the stack of blocks: one cell per layer
    in_blocks = state.stage in BLOCK_STAGES
    passed_all = here > MAIN_STAGES.index("blocks")
    out.append("blocks ", style=DIM)
    cells = min(state.n_layer, max(4, width - 30))
    for layer in range(cells):
        if in_blocks and layer == state.layer:
            out.append("▣", style=cell_style(ACCENT, bold=True))
        elif passed_all or (in_blocks and layer < state.layer):
            out.append("■", style=cell_style(FLOW))
        else:
            out.append("□", style=DIM)
    if cells < state.n_layer:
        out.append("…", style=DIM)
    if in_blocks:
        out.append(f"  layer {state.layer} of 0-{state.n_layer - 1}", style="bold")
    else:
        out.append(f"  {state.n_layer} layers", style=DIM)
    out.append("\n")
    # inside one block
    inner = block_labels(state.family)
    current = BLOCK_STAGES.index(state.stage) if in_blocks else (len(BLOCK_STAGES) if passed_all else -1)
    out.append("block  ", style=DIM)
    out.append("x ─ ", style=DIM)
    _append_path(out, [inner[key] for key in BLOCK_STAGES], current, " ─ ")
    out.append(" ─▸", style=DIM)
    return out


class LayerDiagram(Widget):
    """The model's path with the current stage lit; `update(state)` redraws."""

    DEFAULT_CSS = "LayerDiagram { height: 3; text-wrap: nowrap; text-overflow: clip; }"

    def __init__(self, state: DiagramState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def update(self, state: DiagramState) -> None:
        self.state = state
        self.refresh()

    def render(self) -> Text:
        if self.state is None:
            return Text("")
        return render_diagram(self.state, self.size.width)
