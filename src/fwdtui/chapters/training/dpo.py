"""Direct preference optimisation: real sequence log-probabilities of a chosen and a rejected answer under
the loaded model, and the exact DPO loss as the policy moves away from the reference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.training._common import SCROLL_BINDINGS, Picture, block
from fwdtui.core import training_lab as tl
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import encode_chat
from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.palette import ACCENT, DIM, cell_style
from fwdtui.widgets.plots import line_plot

# (question, chosen, rejected), written for this course
PAIRS = (
    ("How do I boil an egg?", "Put it in boiling water for about eight minutes.", "Eggs are round."),
    ("Is the sun a star?", "Yes, the sun is a star.", "No, it is a planet."),
    ("Say something kind.", "You are doing well; keep going.", "Go away."),
)
BETAS = (0.05, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class DpoResult:
    model_name: str
    question: str
    chosen: str
    rejected: str
    logp_chosen: float  # log p(chosen | prompt) under the loaded model
    logp_rejected: float
    n_chosen: int
    n_rejected: int


@register
class DpoChapter(Picture, Chapter):
    ID = "training.dpo"
    SECTION = "training"
    TITLE = "DPO"
    SUMMARY = "Preference optimisation from log-probability ratios."
    PICTURE = "dpo"
    EXPLANATION = """
**DPO** learns from pairs: for one prompt, an answer people preferred (**chosen**) and one they did not
(**rejected**). No reward model, no sampling: it compares how much the policy π has raised each answer's
log-probability relative to a frozen **reference** copy: loss = -log σ(β·[(log π(c) - log ref(c)) -
(log π(r) - log ref(r))]). β sets how far the policy may drift. At step 0 the policy *is* the reference,
so the margin is 0 and the loss is log 2 ≈ 0.693. Below: the real log-probabilities of both answers
under the loaded model; `←`/`→` move the policy's log-ratio for the chosen answer, as training would.
`←`/`→` shift · `b` β · `n` next pair · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (tl.dpo_loss, tl.log_sigmoid, tl.sequence_logprob, tl.token_losses)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "shift(1)", "Shift +", tooltip="Raise the policy's log-ratio of the chosen answer by 0.5"),
        Binding("left", "shift(-1)", "Shift -", show=False, tooltip="Lower it by 0.5"),
        Binding("b", "beta", "β", tooltip="Cycle β (0.05, 0.1, 0.3, 1)"),
        Binding("n", "pair", "Pair", show=False, tooltip="Next preference pair"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.pair_index = 0
        self.beta_index = 1
        self.shift = 0.0  # how far the policy raised log p(chosen) above the reference, in nats

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> DpoResult:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        question, chosen, rejected = PAIRS[self.pair_index]
        prompt = encode_chat(tok, [{"role": "user", "content": question}])
        c_ids, r_ids = tok.encode(chosen), tok.encode(rejected)
        need = len(prompt) + max(len(c_ids), len(r_ids))
        if need > model.config.n_ctx:
            raise PromptError(f"The pair needs {need} tokens; {model.info.name} has a context of "
                              f"{model.config.n_ctx}.", "Load a model with a longer context (press m).")
        snapshot.progress(0.0, "log p(chosen | prompt)")
        lc = tl.sequence_logprob(model, prompt, c_ids)
        snapshot.progress(0.5, "log p(rejected | prompt)")
        lr = tl.sequence_logprob(model, prompt, r_ids)
        return DpoResult(model.info.name, question, chosen, rejected, lc, lr, len(c_ids), len(r_ids))

    def draw(self, result: DpoResult) -> None:
        self.update_breadcrumb(f"pair {self.pair_index + 1}/{len(PAIRS)} · β {BETAS[self.beta_index]} · "
                               f"shift {self.shift:+.1f}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_shift(self, direction: int) -> None:
        self.shift = max(-20.0, min(20.0, self.shift + 0.5 * direction))
        self.redraw()

    def action_beta(self) -> None:
        self.beta_index = (self.beta_index + 1) % len(BETAS)
        self.redraw()

    def action_pair(self) -> None:
        self.pair_index = (self.pair_index + 1) % len(PAIRS)
        self.shift = 0.0
        self.recompute()

    def _picture(self, r: DpoResult, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        beta = BETAS[self.beta_index]
        out.append(f"1. Prompt: {r.question}\n", style="bold")
        out.append("  chosen:   ", style=DIM)
        out.append(r.chosen[: w - 12] + "\n", style=cell_style("#87d787"))
        out.append("  rejected: ", style=DIM)
        out.append(r.rejected[: w - 12] + "\n", style=cell_style("#ff8787"))
        out.append(f"\n2. Real log-probabilities under {r.model_name} (reference = policy at step 0)\n", style="bold")
        out.append(f"  log ref(chosen)   = {r.logp_chosen:9.2f}  ({r.n_chosen} tokens, "
                   f"{r.logp_chosen / max(1, r.n_chosen):.2f} per token)\n")
        out.append(f"  log ref(rejected) = {r.logp_rejected:9.2f}  ({r.n_rejected} tokens, "
                   f"{r.logp_rejected / max(1, r.n_rejected):.2f} per token)\n")
        pi_c = r.logp_chosen + self.shift  # the policy after some training: only the chosen answer moved
        loss, margin = tl.dpo_loss(pi_c, r.logp_rejected, r.logp_chosen, r.logp_rejected, beta)
        out.append(f"\n3. The policy moves: log π(chosen) = ref {self.shift:+.1f} = {pi_c:.2f}\n", style="bold")
        out.append(f"  margin = ({self.shift:+.2f}) - (0.00) = {margin:+.2f} · β = {beta}\n")
        out.append(f"  DPO loss = -log σ({beta}·{margin:+.2f}) = ", style="")
        out.append(f"{loss:.4f}", style=cell_style(ACCENT, bold=True))
        out.append(f"   (log 2 = {math.log(2):.4f})\n" if self.shift == 0 else "\n", style=DIM)
        push = 1.0 / (1.0 + math.exp(min(700.0, beta * margin)))  # σ(-β·margin): the gradient's weight
        bar_w = max(8, min(30, w - 40))
        out.append("  still pushing  ", style=DIM)
        out.append(bar_string(push, bar_w), style=cell_style(ACCENT))
        out.append(f" {push:.2f} = σ(-β·margin)\n", style=DIM)
        shifts = np.linspace(-10, 10, 81)
        curve = [tl.dpo_loss(r.logp_chosen + s, r.logp_rejected, r.logp_chosen, r.logp_rejected, beta)[0]
                 for s in shifts]
        plot = line_plot(curve, max(20, min(w - 4, 60)), 5, label=f"loss as the shift goes -10 … +10 (β {beta})",
                         fmt="{:.2f}")
        for line in plot.split("\n"):
            out.append("  ")
            out.append(line)
            out.append("\n")
        block(out, "The loss only falls when the chosen answer gains log-probability relative to the reference "
                   "faster than the rejected one; once the margin is large the weight σ(-β·margin) fades, so "
                   "DPO stops pushing. A larger β makes the same margin count more, which keeps the policy "
                   "closer to the reference.", w, DIM)
        return out
