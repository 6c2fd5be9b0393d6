"""Long context: RoPE angles past the trained length and the rules that stretch them, KV-cache memory,
and the loaded model's loss measured as its context grows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.modern._common import SCROLL_BINDINGS, Picture, bar_line
from fwdtui.core import architectures, modern_lab
from fwdtui.core.modern_lab import ContextLoss
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.corpus import sample_text
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

FACTORS = (2.0, 4.0, 8.0, 16.0)
TEXT_LENGTHS = (128, 256, 512, 1024)
CONTEXTS = (4096, 32768, 131072)
PUBLISHED = ("gpt2", "llama3-8b", "mistral-7b", "qwen2.5-7b", "gemma2-9b")


@dataclass(frozen=True)
class LongContextView:
    model_name: str
    n_ctx: int
    head_dim: int
    inv_freq: np.ndarray | None  # None: learned positions (GPT-2)
    wpe_shape: tuple[int, ...] | None
    kv_bytes_fp32: int  # this model's cache per token, as our engine holds it
    arch: architectures.Architecture
    loss: ContextLoss


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _turns(x: float) -> str:
    """A turn count in at most 6 columns: 5.2k, 309, 17.4, 0.332."""
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.3g}" if x >= 0.001 else "0"


def _tokens(n: float) -> str:
    return f"{n / 1024:.0f}k" if n >= 1024 else f"{n:.0f}"


@register
class LongContextChapter(Picture, Chapter):
    ID = "modern.long-context"
    SECTION = "modern"
    TITLE = "Long context"
    SUMMARY = "Stretching positions and memory."
    PICTURE = "long"
    EXPLANATION = """
A model is trained on sequences up to some length L. Going further meets two walls. **Positions**:
with RoPE each pair of q/k dimensions turns by position × frequency; slow pairs never complete a turn
within L, so past L they reach angles never seen in training. Rules that stretch the frequencies fix
this: **position interpolation** slows every pair (blurring nearby positions), **NTK-aware** raises
the base (slows slow pairs, keeps fast ones), **YaRN** and **Llama 3.1** slow only the pairs that
never turned. GPT-2's learned positions cannot stretch at all. **Memory**: the KV cache grows with
every token. Below: the rules on this model's real frequencies, cache sizes, and this model's measured
loss as it sees more of a text. `f` stretch factor · `n` text length · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (modern_lab.rope_schemes, modern_lab.ntk_aware, modern_lab.yarn, modern_lab.llama3_scaling,
                      modern_lab.context_loss)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "factor", "Factor", tooltip="Stretch to 2, 4, 8 or 16 times the trained length"),
        Binding("n", "length", "Text length", tooltip="Measure the loss on 128, 256, 512 or 1024 tokens"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.factor = 4.0
        self.text_length = 256

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> LongContextView:
        model = snapshot.require_model()
        if model.tokenizer is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        cfg = model.config
        ids = model.tokenizer.encode(sample_text())[: min(self.text_length, cfg.n_ctx)]
        loss = modern_lab.context_loss(model, ids, chunk=32, progress=snapshot.progress, cancelled=snapshot.cancelled)
        wpe = model.weights.get("wpe.weight")
        kv = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4  # our engine keeps float32 keys and values
        arch = architectures.architecture_of(cfg, model.info.name)
        return LongContextView(model.info.name, cfg.n_ctx, cfg.head_dim, model.inv_freq,
                               None if wpe is None else tuple(wpe.shape), kv, arch, loss)

    def draw(self, result: LongContextView) -> None:
        self.update_breadcrumb(f"L={_tokens(result.n_ctx)} ×{self.factor:g}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_factor(self) -> None:
        self.factor = FACTORS[(FACTORS.index(self.factor) + 1) % len(FACTORS)]
        self.redraw()  # the rules are cheap: no new forward pass

    def action_length(self) -> None:
        self.text_length = TEXT_LENGTHS[(TEXT_LENGTHS.index(self.text_length) + 1) % len(TEXT_LENGTHS)]
        self.recompute()

    # --- picture ----------------------------------------------------------------------------------
    def _picture(self, v: LongContextView, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._positions(v, width))
        out.append_text(self._memory(v, width))
        out.append_text(self._loss(v, width))
        return out

    def _positions(self, v: LongContextView, width: int) -> Text:
        out = Text()
        new_len = int(self.factor * v.n_ctx)
        out.append(f"1. Positions past the trained length L = {v.n_ctx} (to {_tokens(new_len)} = ×{self.factor:g})\n",
                   style="bold")
        if v.inv_freq is None:
            rows = v.wpe_shape[0] if v.wpe_shape else v.n_ctx
            out.append(f"{v.model_name} learns one position vector per position: its wpe matrix is "
                       f"{' × '.join(map(str, v.wpe_shape or ()))}.\n")
            out.append(f"Position {rows} has no row at all, so the model cannot even be run past {rows} tokens;\n"
                       "stretching rules for RoPE do not apply. Load a Llama-family model (m) to see them.\n\n",
                       style=DIM)
            return out
        schemes = modern_lab.rope_schemes(v.inv_freq, v.n_ctx, self.factor)
        out.append(f"{len(v.inv_freq)} rotating pairs, this model's real frequencies (base "
                   f"{modern_lab.rope_base(v.inv_freq):,.0f}).\nTurns each pair makes by the last position under "
                   "each rule; ✗ = an angle the pair\nnever reached in training (it never finished a turn "
                   "within L).\n", style=DIM)
        names = ("none", "PI", "NTK", "YaRN", "Ll3.1")
        out.append(f"{'pair':>4} {'wavelength':>10} {'turns≤L':>8} │" + "".join(f"{n:>8}" for n in names) + "\n",
                   style=DIM)
        n_pair = len(v.inv_freq)
        trained = v.n_ctx * v.inv_freq / (2 * np.pi)
        for i in sorted(set(np.linspace(0, n_pair - 1, 9).round().astype(int).tolist())):
            wave = 2 * np.pi / v.inv_freq[i]
            out.append(f"{i:>4} {wave:>10,.0f} {_turns(trained[i]):>8} │")
            for s in schemes:
                turns = s.max_angle[i] / (2 * np.pi)
                bad = trained[i] < 1 and s.max_angle[i] > v.n_ctx * v.inv_freq[i] * (1 + 1e-9)
                out.append(f"{_turns(turns):>7}" + ("✗" if bad else " "),
                           style=cell_style(ACCENT, bold=True) if bad else "")
            out.append("\n")
        out.append(f"{'pairs with unseen angles':>24} │", style=DIM)
        for s in schemes:
            out.append(f"{s.unseen:>7} ", style=cell_style(ACCENT, bold=True) if s.unseen else "")
        out.append("\n")
        out.append(f"PI keeps every angle in range but makes neighbours {self.factor:g}× harder to tell\n"
                   f"apart; YaRN also multiplies attention logits by {modern_lab.yarn_temperature(self.factor):.3f}. "
                   "Each rule still\nneeds some fine-tuning at the new length to work well.\n\n", style=DIM)
        return out

    def _memory(self, v: LongContextView, width: int) -> Text:
        out = Text()
        out.append("2. KV-cache memory (keys + values of every layer)\n", style="bold")
        out.append(f"{'model':<22}" + "".join(f"{_tokens(n):>10}" for n in CONTEXTS) + "\n", style=DIM)
        rows: list[tuple[str, list[int], str]] = [
            (f"{v.model_name} fp32", [v.kv_bytes_fp32 * n for n in CONTEXTS], "as this app holds it"),
            (f"{v.model_name} fp16", [architectures.kv_cache_bytes(v.arch, n) for n in CONTEXTS], ""),
        ]
        for key in PUBLISHED:
            arch = architectures.architecture(key)
            rows.append((arch.name, [architectures.kv_cache_bytes(arch, n) for n in CONTEXTS],
                         "sliding window" if any(arch.window(i) for i in range(arch.config.n_layer)) else ""))
        for name, sizes, note in rows:
            out.append(f"{name[:21]:<22}" + "".join(f"{_bytes(s):>10}" for s in sizes))
            out.append(f"  {note}\n" if note else "\n", style=DIM)
        out.append("fp16 unless said; per sequence, so a server with many users multiplies it.\n"
                   "Contexts beyond a model's own training length are shown for the memory alone.\n\n", style=DIM)
        return out

    def _loss(self, v: LongContextView, width: int) -> Text:
        loss = v.loss
        out = Text()
        out.append(f"3. Measured: {v.model_name}'s loss on the built-in text, {loss.n_tokens} tokens\n", style="bold")
        out.append("Mean negative log-likelihood of the tokens at each span of positions\n(lower = better "
                   "predicted). More context lets the model predict better,\nup to its trained length.\n", style=DIM)
        if not loss.buckets:
            out.append("(the text is too short to measure)\n", style=DIM)
            return out
        top = max(b[2] for b in loss.buckets) or 1.0
        best = min(b[2] for b in loss.buckets)
        for lo, hi, value in loss.buckets:
            label = f"{lo}" if lo == hi else f"{lo}-{hi}"
            out.append_text(bar_line(label, value / top, f"{value:.2f} nats", width,
                                     style=cell_style(ACCENT if value == best else SEQUENTIAL[6])))
        if not loss.complete:
            out.append("(cancelled part-way: only the tokens read so far)\n", style=DIM)
        tail = loss.nll[len(loss.nll) // 2:]
        out.append(f"Whole text {float(loss.nll.mean()):.2f} nats/token; second half {float(tail.mean()):.2f} "
                   f"(perplexity {np.exp(tail.mean()):.1f}).\n`n` reads a longer text (slower).\n", style=DIM)
        return out
