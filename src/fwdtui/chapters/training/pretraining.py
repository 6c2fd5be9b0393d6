"""Pre-training: the loaded model's real next-token loss on the prompt, token by token, and a tiny byte
bigram model trained live with hand-written gradients and Adam."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.training._common import SCROLL_BINDINGS, Picture, block, labels_for, loss_chips
from fwdtui.core import training_lab as tl
from fwdtui.core.ops import log_softmax
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.corpus import sample_text
from fwdtui.widgets.palette import ACCENT, DIM, cell_style, legend
from fwdtui.widgets.plots import line_plot

STEPS, BATCH, LR = 300, 256, 0.1
SAMPLE_START, SAMPLE_LEN = "The ", 60


@dataclass(frozen=True)
class LossResult:
    model_name: str
    labels: tuple[str, ...]
    losses: np.ndarray  # [n - 1]: loss of predicting token i+1
    guesses: tuple[str, ...]  # the model's top guess at each position
    n_vocab: int


@dataclass(frozen=True)
class RunDone:
    losses: tuple[float, ...]
    after: str
    stopped: bool


@register
class PretrainingChapter(Picture, Chapter):
    ID = "training.pretraining"
    SECTION = "training"
    TITLE = "Pre-training"
    SUMMARY = "Per-token loss, perplexity and a tiny live training run."
    PICTURE = "pretrain"
    EXPLANATION = """
Pre-training has one goal: at every position, give the **actual next token** a high probability.
The loss at a position is **-log p(next token)**: 0 when the model was sure and right, large when it
was surprised. Training averages this over trillions of tokens and nudges every weight downhill
(the gradient). **Perplexity** = e^(mean loss): "as unsure as a uniform pick among that many tokens".
Above: the loaded model's real loss on your prompt (bright = surprising). Below: a tiny model
learning live, a 256x256 table of byte-to-next-byte logits trained with hand-written gradients and
Adam on the built-in text (a small-scale demo). `t` train again · `s` stop · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (tl.token_losses, tl.perplexity, tl.bigram_loss_and_grad, tl.adam_step, tl.train_bigram)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "train", "Train", tooltip="Train the tiny byte model again from scratch"),
        Binding("s", "stop", "Stop", tooltip="Stop the running training run"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.run_losses: list[float] = []  # appended by the training thread, read by the UI timer
        self.run_stop = False
        self.run_seed = 0
        self.before = ""
        self.after = ""
        self.run_state = "not started"
        self.run_dirty = False  # set when a run ended and the picture has not shown it yet

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def on_mount(self) -> None:
        self.set_interval(0.2, self._tick)
        self.call_after_refresh(self.action_train)  # once mounted, so the worker may start

    def compute(self, snapshot: Snapshot) -> LossResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)
        if len(ids) < 2:
            raise PromptError("The loss needs at least two tokens: one to predict from, one to predict.",
                              "Type a longer prompt (press p).")
        snapshot.progress(None, "one forward pass over the prompt")
        logits = model.logits(ids)
        losses = -log_softmax(logits.astype(np.float64))[np.arange(len(ids) - 1), ids[1:]]
        guesses = labels_for(model.tokenizer, [int(i) for i in logits[:-1].argmax(-1)], 10)
        return LossResult(model.info.name, tuple(labels_for(model.tokenizer, ids, 12)), losses,
                          tuple(guesses), model.config.vocab_size)

    def draw(self, result: LossResult) -> None:
        self.update_breadcrumb(f"{len(result.labels)} tokens · tiny run: {self.run_state}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    # --- the live training run ---------------------------------------------------------------------
    def action_train(self) -> None:
        self.run_stop = True  # a run in flight ends at its next step
        self.run_seed += 1
        seed = self.run_seed
        text = sample_text()
        self.before = tl.bigram_sample(tl.BigramLM.new(seed).W, SAMPLE_START, SAMPLE_LEN, seed=seed)
        self.after = ""
        losses: list[float] = []
        self.run_losses = losses
        self.run_state = "training"
        self.run_stop = False

        def stop() -> bool:
            return self.run_stop or self.run_seed != seed

        def on_step(step: int, loss: float) -> None:
            losses.append(loss)
            time.sleep(0.004)  # let the curve grow visibly; the whole run still takes about 2 s

        def work() -> RunDone:
            lm, done = tl.train_bigram(text, STEPS, BATCH, LR, seed, on_step, stop)
            after = tl.bigram_sample(lm.W, SAMPLE_START, SAMPLE_LEN, seed=seed)
            result = RunDone(tuple(done), after, len(done) < STEPS)
            # finish here too, not only in on_done: the frame drops on_done when the prompt or model
            # changed meanwhile (the model loading at start-up), but this run does not depend on them
            self._run_done(seed, result)
            return result

        self.run_in_thread(work, lambda done: self._run_done(seed, done), group="train")
        self._tick()

    def _run_done(self, seed: int, done: RunDone) -> None:
        if seed != self.run_seed:
            return  # an older run finishing after a newer one started
        self.after = done.after
        self.run_state = f"stopped at step {len(done.losses)}" if done.stopped else f"done, {STEPS} steps"
        self.run_dirty = True  # the UI timer redraws (this may run in the training thread)

    def action_stop(self) -> None:
        if self.run_state == "training":
            self.run_stop = True

    def _tick(self) -> None:
        if (self.run_state == "training" or self.run_dirty) and self.result is not None:
            self.run_dirty = False
            self.redraw()

    # --- picture -----------------------------------------------------------------------------------
    def _picture(self, r: LossResult, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        mean, ppl = tl.perplexity(r.losses)
        vmax = max(float(r.losses.max()), 1.0)
        out.append(f"1. {r.model_name}: -log p(next token) on your prompt\n", style="bold")
        out.append(loss_chips(r.labels, [None, *r.losses.tolist()], w, vmax))
        out.append("  ")
        out.append(legend(0.0, vmax, fmt="{:.1f}"))
        out.append("  (loss shown on the token being predicted)\n", style=DIM)
        out.append(f"  mean loss {mean:.3f} nats · perplexity {ppl:,.1f}", style=cell_style(ACCENT, bold=True))
        out.append(f" · uniform guess: ln {r.n_vocab} = {math.log(r.n_vocab):.2f}\n", style=DIM)
        order = np.argsort(-r.losses)[:3]
        out.append("  most surprising: ", style=DIM)
        out.append(" · ".join(f"{r.labels[i + 1]} ({r.losses[i]:.1f}, p={math.exp(-r.losses[i]):.3f}, "
                              f"guessed {r.guesses[i]})" for i in order)[: max(10, w - 19)] + "\n")
        out.append(f"\n2. A tiny model learns live: byte bigram, Adam lr {LR}, batch {BATCH} "
                   f"({self.run_state})\n", style="bold")
        losses = list(self.run_losses)
        plot = line_plot(losses, max(20, min(w - 2, 64)), 7,
                         label=f"loss per step · step {len(losses)}/{STEPS} · {self.run_state}", fmt="{:.2f}")
        for line in plot.split("\n"):
            out.append("  ")
            out.append(line)
            out.append("\n")
        if losses:
            out.append(f"  started at {losses[0]:.2f} ≈ ln 256 (all bytes equally likely); min {min(losses):.2f}\n",
                       style=DIM)
        out.append("  sample before: ", style=DIM)
        out.append(self._one_line(self.before, w - 17) + "\n")
        out.append("  sample after:  ", style=DIM)
        out.append((self._one_line(self.after, w - 17) if self.after else "(when the run ends)") + "\n",
                   style=cell_style(ACCENT) if self.after else DIM)
        block(out, "The bigram sees only the previous byte, so it learns spelling habits (which letters follow "
                   "which), not words. A real model conditions on the whole context, with billions of weights, "
                   "but the loop is the same: loss, gradient, optimiser step.", w, DIM)
        return out

    @staticmethod
    def _one_line(text: str, width: int) -> str:
        line = text.replace("\n", "↵")
        return line if len(line) <= width else line[: max(1, width - 1)] + "…"
