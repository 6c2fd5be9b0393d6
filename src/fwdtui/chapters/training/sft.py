"""Supervised fine-tuning: a chat turn in the model's own template, the loss mask that keeps only the
assistant's tokens, and the real per-token loss with and without the mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.training._common import SCROLL_BINDINGS, Picture, block, labels_for, loss_chips
from fwdtui.core import training_lab as tl
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import FORMAT_NAMES, chat_format, encode_chat
from fwdtui.widgets.palette import ACCENT, DIM, cell_style, legend

# (user, assistant) pairs in our own words; the last choice uses the user's prompt as the question
EXAMPLES = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many legs has a spider?", "A spider has eight legs."),
)
OWN_ANSWER = "I am not sure, but I will try to help."


@dataclass(frozen=True)
class SftResult:
    model_name: str
    prompt_format: str
    user: str
    answer: str
    labels: tuple[str, ...]
    n_prompt: int  # tokens before the assistant's first token
    losses: np.ndarray  # [n - 1] real loss of predicting token i+1
    mask: np.ndarray  # [n - 1] True where token i+1 is the assistant's


@register
class SftChapter(Picture, Chapter):
    ID = "training.sft"
    SECTION = "training"
    TITLE = "Supervised fine-tuning"
    SUMMARY = "Chat templates and loss masking."
    PICTURE = "sft"
    EXPLANATION = """
**Supervised fine-tuning** (SFT) turns a text predictor into a chat partner by training it further on
written conversations. Each one is laid out in the model's **chat template** (markers for who speaks),
and the loss is the same -log p(next token) as in pre-training, with one change: a **loss mask** keeps
only the positions that predict the **assistant's** tokens (including its end-of-turn marker, so it
learns to stop). The template and the user's words are context, never targets: the model should learn
to answer, not to imitate users. Below: the real loss of the loaded model on each token, grey where
the mask drops it. `n` next example · `l` mask on/off · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (tl.assistant_mask, tl.token_losses, tl.perplexity, encode_chat)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "example", "Example", tooltip="Next conversation (the last uses your prompt as the question)"),
        Binding("l", "mask", "Mask on/off", tooltip="Show the loss with or without the assistant-only mask"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.example_index = 0
        self.masked = True

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> SftResult:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        if self.example_index < len(EXAMPLES):
            user, answer = EXAMPLES[self.example_index]
        else:
            user, answer = (snapshot.prompt.strip()[:200] or EXAMPLES[0][0]), OWN_ANSWER
        head = encode_chat(tok, [{"role": "user", "content": user}], add_generation_prompt=True)
        full = encode_chat(tok, [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                           add_generation_prompt=False)
        if len(full) > model.config.n_ctx:
            raise PromptError(f"The conversation needs {len(full)} tokens; {model.info.name} has a context of "
                              f"{model.config.n_ctx}.", "Use a shorter prompt (press p) or press n for a preset.")
        # the assistant part starts where the prompt-with-generation-marker stops matching the full text
        n_prompt = 0
        while n_prompt < min(len(head), len(full)) and head[n_prompt] == full[n_prompt]:
            n_prompt += 1
        snapshot.progress(None, "one forward pass over the conversation")
        losses = tl.token_losses(model, full)
        return SftResult(model.info.name, chat_format(getattr(tok, "chat_template", None)), user, answer,
                         tuple(labels_for(tok, full, 12)), n_prompt, losses, tl.assistant_mask(n_prompt, len(full)))

    def draw(self, result: SftResult) -> None:
        self.update_breadcrumb(f"example {self.example_index + 1}/{len(EXAMPLES) + 1} · "
                               f"mask {'on' if self.masked else 'off'}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_example(self) -> None:
        self.example_index = (self.example_index + 1) % (len(EXAMPLES) + 1)
        self.recompute()

    def action_mask(self) -> None:
        self.masked = not self.masked
        self.redraw()

    def _picture(self, r: SftResult, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        fmt = ("plain transcript (this model has no chat template)" if r.prompt_format == "plain"
               else f"chat template ({FORMAT_NAMES.get(r.prompt_format, r.prompt_format)})")
        n = len(r.labels)
        out.append(f"1. The conversation in {r.model_name}'s {fmt}: {n} tokens\n", style="bold")
        out.append(f"  template + user: {r.n_prompt} tokens · assistant: {n - r.n_prompt} tokens\n", style=DIM)
        all_mean, _ = tl.perplexity(r.losses)
        asst_mean, asst_ppl = tl.perplexity(r.losses, r.mask)
        out.append(f"  loss with the mask (assistant only): mean {asst_mean:.3f} over {int(r.mask.sum())} "
                   f"tokens (perplexity {asst_ppl:,.1f})\n",
                   style=cell_style(ACCENT, bold=True) if self.masked else DIM)
        out.append(f"  loss without (every prediction):   mean {all_mean:.3f} over {r.losses.size} tokens\n",
                   style=DIM if self.masked else cell_style(ACCENT, bold=True))
        vmax = max(float(r.losses.max()) if r.losses.size else 1.0, 1.0)
        keep = [False] + r.mask.tolist() if self.masked else None
        out.append(loss_chips(r.labels, [None, *r.losses.tolist()], w, vmax, keep=keep))
        out.append("  ")
        out.append(legend(0.0, vmax, fmt="{:.1f}"))
        out.append("  grey: masked out, not trained on\n\n" if self.masked else "  mask off: every token counts\n\n",
                   style=DIM)
        block(out, "Without the mask, part of every gradient would go into predicting the template's fixed "
                   "markers and system text (the same in every example) and the user's words (not the model's "
                   "job). With it, all the learning goes into the answer, including the end-of-turn marker "
                   "that tells the model to stop.", w, DIM)
        return out
