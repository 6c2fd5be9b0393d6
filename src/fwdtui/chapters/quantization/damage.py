"""Quantizing the loaded model: every linear weight through each scheme, and what it does to the
next-token distributions on the user's prompt (KL, top-1 agreement, perplexity, size)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.quantization._common import fmt_num, hbar, note
from fwdtui.core import quant
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL
from fwdtui.widgets.plots import sparkline
from fwdtui.tokenizers import fragment_text

# which weights get quantized: (label, part, which layers: "all" | "first" | "last")
SCOPES = (("all layers", "all", "all"), ("attention only", "attn", "all"), ("MLP only", "mlp", "all"),
          ("first layer", "all", "first"), ("last layer", "all", "last"))
KL_FLOOR, KL_TOP = 1e-5, 10.0  # the KL bars are on a log scale between these (nats)


@dataclass(frozen=True)
class Setup:
    """The original model's logits on the prompt and the weights this scope quantizes."""

    ids: tuple[int, ...]
    ref_logits: np.ndarray  # [n_seq, n_vocab]
    names: tuple[str, ...]
    n_weights: int
    scope: str
    model_name: str
    n_linear_total: int


@dataclass(frozen=True)
class Row:
    scheme: quant.Scheme
    damage: quant.Damage | None
    skipped: str = ""  # why a scheme could not run (rows not whole GGUF blocks)


def scope_names(config, scope_index: int) -> list[str]:
    label, part, which = SCOPES[scope_index % len(SCOPES)]
    layers = None if which == "all" else ([0] if which == "first" else [config.n_layer - 1])
    return quant.linear_weight_names(config, layers, part)


@register
class DamageChapter(Chapter):
    ID = "quantization.damage"
    SECTION = "quantization"
    TITLE = "Quantizing this model"
    SUMMARY = "Quantize the loaded model's weights with each scheme and measure the damage on your prompt."
    EXPLANATION = """
Here every linear weight of the loaded model (attention and MLP matrices; embeddings and norms
stay as they are) is quantized with one scheme, turned back into float32, and the prompt is run
again through that copy. **KL** is how far its next-token distribution drifts from the original's,
averaged over every position (0 = identical; above ~0.1 nats the change shows in the text);
**top-1** is how often the most likely next token stays the same; **ppl** is the prompt's
perplexity. Rows fill in one scheme at a time. `↑/↓` pick a row, `s` which weights to quantize.
"""
    CODE_FUNCTIONS = (quant.measure_damage, quant.quantized_weights, quant.fake_quantize, quant.compare_logits,
                      quant.perplexity)

    BINDINGS = [
        Binding("s", "next_scope", "Scope", tooltip="Quantize all layers, attention or MLP only, the first or last layer"),
        Binding("down", "select(1)", "Next row", show=False, tooltip="Detail the next scheme"),
        Binding("up", "select(-1)", "Prev row", show=False, tooltip="Detail the previous scheme"),
    ]

    SCHEME_NAMES: ClassVar[tuple[str, ...]] = tuple(s.name for s in quant.SCHEMES)

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.scope_index = 0
        self.selected = 0
        self.rows: dict[str, Row] = {}
        self._setup: Setup | None = None

    def compose_visual(self) -> ComposeResult:
        with VerticalScroll():
            yield Canvas(id="damage-canvas", min_width=30)

    def compute(self, snapshot: Snapshot) -> Setup:
        model = snapshot.require_model()
        snapshot.progress(None, "running the original model on the prompt")
        names = scope_names(model.config, self.scope_index)
        return Setup(snapshot.ids, model.logits(snapshot.ids), tuple(names),
                     int(sum(model.weights[n].size for n in names)), SCOPES[self.scope_index][0],
                     model.info.name, len(quant.linear_weight_names(model.config)))

    def draw(self, result: Setup) -> None:
        if result is not self._setup:  # a new prompt, model or scope: start the table again
            self._setup = result
            self.rows = {}
            self._run_next()
        self.update_breadcrumb(f"{result.scope} · {len(self.rows)}/{len(self.schemes())} schemes")
        self.query_one("#damage-canvas", Canvas).show(lambda width: self._picture(result, width))

    def schemes(self) -> list[quant.Scheme]:
        return [quant.SCHEMES_BY_NAME[n] for n in self.SCHEME_NAMES]

    # --- one scheme at a time in a thread, so rows appear as they are measured ---------------
    def _run_next(self) -> None:
        setup, model = self._setup, self.session.model
        todo = [s for s in self.schemes() if s.name not in self.rows]
        if setup is None or model is None or not todo:
            return
        scheme = todo[0]

        def work() -> Row:
            try:
                damage = quant.measure_damage(model, setup.ids, scheme, setup.names, setup.ref_logits)
            except ValueError as err:  # e.g. rows that are not whole GGUF blocks
                return Row(scheme, None, str(err))
            return Row(scheme, damage)

        def done(row: Row) -> None:
            if setup is not self._setup:
                return  # measured for a scope or prompt that is gone
            self.rows[row.scheme.name] = row
            self.redraw()
            self._run_next()

        self.run_in_thread(work, done, group="scheme")

    def action_next_scope(self) -> None:
        self.scope_index = (self.scope_index + 1) % len(SCOPES)
        self._setup = None
        self.rows = {}
        self.recompute()

    def action_select(self, step: int) -> None:
        self.selected = (self.selected + step) % len(self.schemes())
        self.redraw()

    # --- the picture ---------------------------------------------------------------------------
    def _picture(self, s: Setup, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        fp32 = s.n_weights * 4
        out.append_text(note(f"{s.scope}: {len(s.names)} of {s.n_linear_total} matrices, {_count(s.n_weights)} "
                             f"weights ({quant.fmt_bytes(fp32)} in FP32); prompt of {len(s.ids)} tokens", width, style="bold"))
        out.append_text(self._table(s, width))
        row = self.rows.get(self.schemes()[self.selected].name)
        if row is not None and row.damage is not None:
            out.append("\n")
            out.append_text(self._detail(s, row.damage, width))
        out.append_text(self._notes(s, width))
        return out

    def _table(self, s: Setup, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        ppl_ref = quant.perplexity(s.ref_logits, s.ids)
        ppl_head = f"ppl {ppl_ref:.2f}" if np.isfinite(ppl_ref) else "ppl"
        head = f"  {'scheme':<13}{'bits/w':>7}{'size':>10}{'KL nats':>9}{'top-1':>6}{ppl_head:>12}{'w err':>7}"
        bar_w = max(0, width - len(head) - 2)
        out.append(head + ("  KL (log)" if bar_w >= 9 else "") + "\n", style=DIM)
        kls = [r.damage.kl.mean() for r in self.rows.values() if r.damage is not None]
        top = max([KL_TOP] + kls)  # a fixed scale, so bars keep their length as rows arrive
        pending = True
        for i, scheme in enumerate(self.schemes()):
            row = self.rows.get(scheme.name)
            mark = "▶ " if i == self.selected else "  "
            style = f"bold {ACCENT}" if i == self.selected else ""
            if row is None:
                what = "measuring…" if pending else ""
                pending = False
                out.append(f"{mark}{scheme.name:<13}{'':>7}{'':>10} {what}\n", style=style or DIM)
                continue
            if row.damage is None:
                out.append(f"{mark}{scheme.name:<13} skipped: {row.skipped}"[:width] + "\n", style=DIM)
                continue
            d = row.damage
            kl = float(d.kl.mean())
            ppl = f"{d.ppl:.2f}" if np.isfinite(d.ppl) and d.ppl < 1e5 else ("huge" if np.isfinite(d.ppl) else "-")
            out.append(f"{mark}{scheme.name:<13}{d.bits_per_weight:>7.2f}{quant.fmt_bytes(d.weight_bytes):>10}"
                       f"{fmt_num(kl):>9}{d.top1_agree:>6.0%}{ppl:>12}{d.rel_error:>7.1%}", style=style)
            if bar_w >= 9:
                frac_top = np.log10(top / KL_FLOOR)
                val = np.log10(max(kl, KL_FLOOR) / KL_FLOOR)
                out.append("  ")
                colour = SEQUENTIAL[-1] if kl > 0.1 else SEQUENTIAL[-5]
                out.append_text(hbar(val, frac_top, bar_w, colour))
            out.append("\n")
        return out

    def _detail(self, s: Setup, d: quant.Damage, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"{d.scheme}: KL at each of the {len(d.kl)} positions (max {d.kl.max():.3f})  ", style="bold")
        out.append_text(sparkline(d.kl, max(4, min(len(d.kl), width - 50)), vmin=0.0))
        out.append("\n")
        model = self.session.model
        if model is None:
            return out
        ref_p = _softmax(s.ref_logits[-1])
        new_p = _softmax(d.last_logits)
        top = np.argsort(-ref_p)[:4]
        cells = [f"{fragment_text(model.tokenizer, [t])!r} {ref_p[t]:.0%}→{new_p[t]:.0%}" for t in top]
        out.append("next token after the prompt: " + " · ".join(cells)[: max(10, width - 30)] + "\n")
        new_top = int(np.argmax(new_p))
        if new_top != int(top[0]):
            out.append(f"the quantized model now picks {fragment_text(model.tokenizer, [new_top])!r} ({new_p[new_top]:.0%})\n",
                       style="bold red")
        return out

    def _q41_note(self, width: int) -> Text:
        """Said when the measurement shows it: Q4_1 gives the loaded weights back unchanged."""
        q41 = self.rows.get("Q4_1")
        if q41 is not None and q41.damage is not None and q41.damage.rel_error < 1e-6:
            return note("Q4_1 gives back exactly the same weights: this model was loaded from a Q4_1 GGUF "
                        "file, so its matrices already sit on Q4_1's grid. Every other row is the damage "
                        "added on top of that.", width, style="bold")
        return Text("")

    def _notes(self, s: Setup, width: int) -> Text:
        out = self._q41_note(width)
        out.append_text(note("Size counts the quantized matrices only, scales included. Weight-only quantization "
                             "as here is what GPTQ, AWQ and GGUF files do; activations stay in float.", width))
        return out


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else (f"{n / 1e3:.1f}K" if n >= 1e3 else str(n))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()
