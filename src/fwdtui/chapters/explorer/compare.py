"""Architectures compared: published configs side by side, counted from their shapes, one block diagram at a time."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.explorer.diagram import (
    GROUP_ORDER,
    fmt_bytes,
    fmt_count,
    render_block_diagram,
    render_recipe,
    render_table,
    table_groups,
)
from fwdtui.core import architectures as arch_mod
from fwdtui.core.architectures import (
    ARCHITECTURES,
    Architecture,
    count_arch_params,
    differences_from_gpt2,
    flops_per_token,
    kv_cache_bytes,
    params_breakdown,
)
from fwdtui.core.config import count_params
from fwdtui.session import Snapshot
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.canvas import SCROLL_BINDINGS, Picture
from fwdtui.widgets.palette import ACCENT, DIM, cell_style

VIEWS = ("table", "diagram", "recipe")


@dataclass(frozen=True)
class CompareResult:
    """The architectures to show: the published ones (and the loaded model, when it is not one of them)."""

    archs: tuple[Architecture, ...]
    loaded: str  # name of the loaded model's row, "" when none


def _wrap(text: str, width: int, indent: str = "", style: str = "") -> Text:
    lines = textwrap.wrap(text, max(20, width - 1), initial_indent=indent, subsequent_indent=" " * len(indent))
    return Text("\n".join(lines) + "\n", style=style)


@register
class CompareChapter(Picture, Chapter):
    ID = "explorer.compare"
    PICTURE = "explorer"  # #explorer-scroll holding #explorer-canvas
    SECTION = "explorer"
    TITLE = "Architectures compared"
    SUMMARY = "GPT-2, LLaMA 3, Mistral, Gemma 2, Phi-3 and Qwen 2.5: configs and parameter counts."
    EXPLANATION = """
Every model here is GPT-2's stack (embed; N × [norm → attention → add, norm → MLP → add]; unembed)
with a few parts swapped for cost or stability. Every number is computed from the model's published
`config.json` and checked against its model card. `↑↓` model · `enter` block diagram (◆ = differs
from GPT-2) · `t` more columns (shape, recipe, cost) · `r` which model uses which idea.
"""
    CODE_FUNCTIONS = (count_params, arch_mod.count_arch_params, arch_mod.params_breakdown,
                      arch_mod.kv_cache_bytes, arch_mod.flops_per_token, arch_mod.differences_from_gpt2)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "toggle_diagram", "Diagram", tooltip="Open or close the selected model's block diagram"),
        Binding("t", "toggle_columns", "Columns", tooltip="Show the next group of columns: shape, recipe, cost"),
        Binding("r", "toggle_recipe", "Recipe", tooltip="Which model uses which ingredient of the modern recipe"),
        Binding("up", "select(-1)", "Prev model", show=False, priority=True, tooltip="Select the previous model"),
        Binding("down", "select(1)", "Next model", show=False, priority=True, tooltip="Select the next model"),
        *SCROLL_BINDINGS,
        Binding("home", "select_first", "GPT-2", show=False, tooltip="Back to GPT-2, the first row"),
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.selected = 4  # Llama 3 8B: the modern recipe's reference point, right after the GPT-2 sizes
        self.view = "table"
        self.columns = "shape"

    # --- frame hooks ---------------------------------------------------------------------------
    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> CompareResult:
        archs = list(ARCHITECTURES)
        loaded = ""
        model = snapshot.model
        if model is not None:
            # the loaded model joins the table unless it is one of the published rows already
            if arch_mod.published_match(model.config) is None:
                loaded = f"▸{model.info.name}"
                archs.append(arch_mod.architecture_of(model.config, loaded))
        return CompareResult(tuple(archs), loaded)

    def draw(self, result: CompareResult) -> None:
        self.selected = max(0, min(self.selected, len(result.archs) - 1))
        arch = result.archs[self.selected]
        crumb = {"table": f"{arch.name}", "diagram": f"{arch.name} · diagram", "recipe": "the recipe"}[self.view]
        self.update_breadcrumb(crumb)
        self.picture_canvas().show(lambda width: self._picture(result, width))

    # --- actions --------------------------------------------------------------------------------
    def action_select(self, delta: int) -> None:
        n = len(self.result.archs) if self.result else len(ARCHITECTURES)
        self.selected = (self.selected + delta) % n
        self.redraw()

    def action_select_first(self) -> None:
        self.selected = 0
        self.redraw()

    def action_toggle_diagram(self) -> None:
        self.view = "table" if self.view == "diagram" else "diagram"
        self._scroll_home()
        self.redraw()

    def action_toggle_recipe(self) -> None:
        self.view = "table" if self.view == "recipe" else "recipe"
        self._scroll_home()
        self.redraw()

    def action_toggle_columns(self) -> None:
        self.columns = GROUP_ORDER[(GROUP_ORDER.index(self.columns) + 1) % len(GROUP_ORDER)]
        if self.view != "table":
            self.view = "table"
            self._scroll_home()
        self.redraw()

    def _scroll_home(self) -> None:
        self.picture_scroll().scroll_home(animate=False)

    # --- pictures -------------------------------------------------------------------------------
    def _room(self) -> int:
        scroll = self.picture_scroll()
        return max(6, scroll.size.height or 12)

    def _picture(self, result: CompareResult, width: int) -> Text:
        arch = result.archs[self.selected]
        if self.view == "diagram":
            return self._diagram_view(arch, width)
        if self.view == "recipe":
            return self._recipe_view(result, width)
        return self._table_view(result, arch, width)

    def _table_view(self, result: CompareResult, arch: Architecture, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        # keep the selected row and the two lines under the table on screen at any height
        shown = table_groups(self.columns, width)
        legend = Text()
        if "recipe" in shown:
            legend = _wrap("RMS×2: a norm before and after each sublayer · RoPE θ (+: stretched for long context; "
                           "su: LongRoPE) · SWA: sliding window · L/G: local and global layers alternate",
                           width, style=DIM)
        # keep the selected row and the lines under the table on screen at any height
        out.append_text(render_table(list(result.archs), self.selected, self.columns, width,
                                     max_rows=max(3, self._room() - 4 - len(legend.plain.splitlines()))))
        total = count_arch_params(arch)
        line = Text()
        line.append(f"▶ {arch.name}", style=cell_style(ACCENT, bold=True))
        line.append(f": {total:,} parameters from the config")
        if arch.published_params:
            line.append(f"; card {arch.published_label}", style="")
        out.append_text(line)
        out.append("\n")
        hint = "↑↓ model · enter diagram · r recipe"
        if len(shown) < len(GROUP_ORDER):
            later = [g for g in GROUP_ORDER if g not in shown]
            hint += f" · t {'/'.join(later)} columns"
        out.append(hint + "\n", style=DIM)
        out.append_text(legend)
        out.rstrip()
        return out

    def _diagram_view(self, arch: Architecture, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        title = Text()
        title.append(f"{arch.name}", style="bold")
        if arch.note:
            title.append(f" ({arch.note})", style=DIM)
        title.append("   ◆ differs from GPT-2", style=cell_style(ACCENT))
        title.append(" · n = tokens", style=DIM)
        out.append_text(title)
        out.append("\n")
        out.append_text(render_block_diagram(arch, width))
        diffs = differences_from_gpt2(arch)
        if diffs:
            out.append("\nWhat changed from GPT-2, and why\n", style="bold")
            for d in diffs:
                out.append_text(_wrap(f"◆ {d.what}: {d.why}.", width, style=""))
        elif arch.key == "gpt2":
            out.append_text(_wrap("GPT-2 is the reference point: every other diagram marks with ◆ where it "
                                  "departs from this one.", width, style=DIM))
        out.append("\nWhere the parameters are\n", style="bold")
        parts = params_breakdown(arch)
        total = sum(parts.values())
        bars = [Bar(name, count / total, note=fmt_count(count)) for name, count in parts.items() if count]
        out.append_text(render_bars(bars, width, fmt="{:6.1%}", label_width=12))
        out.append("\n")
        out.append(f"{'total':>11} {total:,} computed", style="bold")
        if arch.published_params:
            out.append(f" · card {arch.published_label} ({100 * (total / arch.published_params - 1):+.2f}%)", style="")
        out.append("\n\nCost of context (16-bit cache)\n", style="bold")
        cfg = arch.config
        lengths = sorted({1024, 4096, 32768, cfg.n_ctx})
        for n in lengths:
            if n > cfg.n_ctx:
                continue
            out.append(f"{n:>8,} tokens  KV cache {fmt_bytes(kv_cache_bytes(arch, n)):>10}   "
                       f"{flops_per_token(arch, n) / 1e9:6.2f} GFLOP for the next token\n")
        out.append_text(_wrap("A sliding-window layer keeps only its last W tokens, so its cache stops growing; "
                              "FLOPs are 2 per weight the token meets plus the attention dot products.", width,
                              style=DIM))
        out.append("\n↑↓ other model · enter back to the table · j/k scroll", style=DIM)
        return out

    def _recipe_view(self, result: CompareResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append("The modern recipe: who uses what (✓)\n", style="bold")
        out.append_text(render_recipe(list(result.archs), width))
        out.append("\nr back to the table", style=DIM)
        return out
