"""What the quantization chapters share: wrapped notes, a small table renderer, the layer / matrix
picker, the prompt's KL with one matrix replaced and the built-in calibration text."""

from __future__ import annotations

import textwrap
from typing import Any, Sequence

import numpy as np
from rich.text import Text

from fwdtui.core import quant
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

# The matrices a chapter can pick, by family: (short label, name pattern with {L}).
MATRICES = {
    "llama": (("q_proj", "layers.{L}.self_attn.q_proj.weight"), ("k_proj", "layers.{L}.self_attn.k_proj.weight"),
              ("v_proj", "layers.{L}.self_attn.v_proj.weight"), ("o_proj", "layers.{L}.self_attn.o_proj.weight"),
              ("gate_proj", "layers.{L}.mlp.gate_proj.weight"), ("up_proj", "layers.{L}.mlp.up_proj.weight"),
              ("down_proj", "layers.{L}.mlp.down_proj.weight")),
    "gpt2": (("c_attn", "h.{L}.attn.c_attn.weight"), ("attn.c_proj", "h.{L}.attn.c_proj.weight"),
             ("c_fc", "h.{L}.mlp.c_fc.weight"), ("mlp.c_proj", "h.{L}.mlp.c_proj.weight")),
}


def note(text: str, width: int, style: str = DIM) -> Text:
    """A paragraph wrapped to the width, dim by default, ending in a newline."""
    lines = textwrap.wrap(text, max(20, width - 1)) or [""]
    return Text("\n".join(lines) + "\n", style=style)


def heading(text: str) -> Text:
    return Text(text + "\n", style="bold")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, selected: int | None = None,
          right: Sequence[bool] | None = None, styles: Sequence[str] | None = None) -> Text:
    """A plain aligned table: columns as wide as their widest cell, cropped to the width."""
    n = len(headers)
    right = right or [i > 0 for i in range(n)]
    widths = [max(len(str(headers[i])), *(len(str(r[i])) for r in rows)) if rows else len(headers[i]) for i in range(n)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)]
        return " ".join(parts)

    out = Text(no_wrap=True, overflow="crop")
    out.append(("  " + line(headers))[:width] + "\n", style=DIM)
    for i, row in enumerate(rows):
        mark = "▶ " if i == selected else "  "
        style = f"bold {ACCENT}" if i == selected else (styles[i] if styles else "")
        out.append((mark + line(row))[:width] + "\n", style=style)
    return out


def hbar(value: float, vmax: float, width: int, colour: str | None = None) -> Text:
    """One horizontal bar of `width` cells filled to value / vmax (eighth blocks)."""
    from fwdtui.widgets.bar_chart import bar_string

    frac = 0.0 if vmax <= 0 or not np.isfinite(value) else value / vmax
    return Text(bar_string(frac, width), style=cell_style(colour or SEQUENTIAL[-3]))


def fmt_num(x: float) -> str:
    """Short, readable numbers for tables: 0.000123 -> 1.23e-04, 3.14159 -> 3.142."""
    if not np.isfinite(x):
        return "inf" if x > 0 else ("nan" if np.isnan(x) else "-inf")
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{x:.2e}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.4f}" if a < 1 else f"{x:.3f}"


def matrix_choices(config) -> tuple[tuple[str, str], ...]:
    return MATRICES["gpt2" if config.family == "gpt2" else "llama"]


def matrix_name(config, layer_index: int, matrix_index: int) -> tuple[str, str]:
    """(short label, weight name) of matrix `matrix_index` in layer `layer_index` (both wrapped)."""
    choices = matrix_choices(config)
    label, pattern = choices[matrix_index % len(choices)]
    return label, pattern.format(L=layer_index % config.n_layer)


class MatrixPicker:
    """The layer / matrix / bit-width choice of the chapters that quantize one real matrix (AWQ, GPTQ).

    `layer_index` is None until the user picks a layer: the middle layer is shown. The `l`, `t`
    and `n` keys call the actions below; each needs new numbers, so each recomputes.
    """

    layer_index: int | None = None
    matrix_index: int = 0
    bits: int = 4

    def layer_of(self, config: Any) -> int:
        """The chosen layer of a model with this config (the middle one until the user picks one)."""
        return config.n_layer // 2 if self.layer_index is None else self.layer_index % config.n_layer

    def picked_matrix(self, config: Any) -> tuple[str, str]:
        """(short label, weight name) of the chosen matrix in the chosen layer."""
        return matrix_name(config, self.layer_of(config), self.matrix_index)

    def action_next_layer(self) -> None:
        model = self.session.model  # type: ignore[attr-defined]
        self.layer_index = (self.layer_of(model.config) if model is not None else 0) + 1
        self.recompute()  # type: ignore[attr-defined]

    def action_next_matrix(self) -> None:
        model = self.session.model  # type: ignore[attr-defined]
        n = len(matrix_choices(model.config)) if model is not None else 1
        self.matrix_index = (self.matrix_index + 1) % n
        self.recompute()  # type: ignore[attr-defined]

    def action_toggle_bits(self) -> None:
        self.bits = 3 if self.bits == 4 else 4
        self.recompute()  # type: ignore[attr-defined]


def prompt_kl(model: Any, ids: Sequence[int], ref_logits: np.ndarray, name: str,
              w_out_in: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean next-token KL (nats) on the prompt with only matrix `name` replaced by `w_out_in`
    ([n_out, n_in]), and the logits [n_seq, n_vocab] of that variant."""
    replace = {name: quant.weight_from_out_in(model.config, name, w_out_in)}
    logits = model.variant(replace_weights=replace).logits(ids)
    return float(quant.compare_logits(ref_logits, logits)[0].mean()), logits


def calibration_ids(model, n: int) -> list[int]:
    """`n` tokens of the built-in sample text (a page of plain English prose) for calibration."""
    from fwdtui.tokenizers.corpus import SAMPLE_TEXT

    ids = model.tokenizer.encode(SAMPLE_TEXT)
    return ids[: max(1, min(n, len(ids), model.config.n_ctx))]


class TraceCache:
    """The last few Traces a chapter computed, by (model, token ids): moving to another layer or
    matrix reuses them instead of running the model again. Filled from the compute thread (one
    dict assignment, atomic in CPython); a new model or prompt simply misses."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self._items: dict[tuple[int, tuple[int, ...]], Any] = {}

    def trace(self, model: Any, ids: Sequence[int]) -> Any:
        key = (id(model), tuple(int(i) for i in ids))
        found = self._items.get(key)
        if found is None or found[0] is not model:
            found = (model, model.trace(list(ids)))
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = found
        return found[1]
