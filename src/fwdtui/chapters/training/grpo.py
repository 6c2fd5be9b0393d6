"""GRPO: a group of real samples from the loaded model to a question with a checkable answer, a rule-based
reward for each, and the group-relative advantages that say which samples training would push up or down."""

from __future__ import annotations

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
from fwdtui.widgets.palette import ACCENT, DIM, cell_style
from fwdtui.tokenizers import fragment_text

# (question, the number a correct answer starts with)
QUESTIONS = (("What is 3 + 4? Reply with the number only.", 7.0),
             ("How many days are in a week? Reply with the number only.", 7.0),
             ("What is 10 minus 6? Reply with the number only.", 4.0))
GROUP_SIZES = (4, 8, 12)
MAX_NEW, TEMPERATURE = 24, 0.8
UP, DOWN = "#87d787", "#ff8787"


@dataclass(frozen=True)
class GrpoResult:
    model_name: str
    question: str
    expected: float
    texts: tuple[str, ...]
    rewards: np.ndarray  # [G]
    advantages: np.ndarray  # [G]
    seed: int
    complete: bool


@register
class GrpoChapter(Picture, Chapter):
    ID = "training.grpo"
    SECTION = "training"
    TITLE = "GRPO"
    SUMMARY = "Group-relative advantages on real samples."
    PICTURE = "grpo"
    EXPLANATION = """
**GRPO** (group relative policy optimisation) trains on questions whose answers a program can check.
For each question the model samples a **group** of answers; a rule scores each (here: 1 if the first
number is right, 0.5 if it comes later, 0.1 for a wrong number, 0 for none). Instead of a learned value model, the baseline is
the group itself: **advantage = (reward - group mean) / group std**. Samples above the mean get their
tokens' log-probabilities pushed **up**, those below pushed **down**; a group that all scored the same
teaches nothing. Below: a real group sampled from the loaded model (temperature 0.8, ≤ 24 tokens).
`r` resample · `g` group size · `n` next question · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (tl.answer_reward, tl.first_number, tl.group_advantages, tl.sample_group)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "resample", "Resample", tooltip="Sample a new group with the next seed"),
        Binding("g", "group", "Group size", tooltip="Cycle the group size (4, 8, 12)"),
        Binding("n", "question", "Question", show=False, tooltip="Next question"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.question_index = 0
        self.group_index = 0
        self.seed = 0

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> GrpoResult:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        question, expected = QUESTIONS[self.question_index]
        group, seed = GROUP_SIZES[self.group_index], self.seed
        ids = encode_chat(tok, [{"role": "user", "content": question}])
        if len(ids) + MAX_NEW > model.config.n_ctx:
            raise PromptError(f"The question and answers need {len(ids) + MAX_NEW} tokens; {model.info.name} has "
                              f"a context of {model.config.n_ctx}.", "Load a model with a longer context (press m).")
        stops = [i for name, i in getattr(tok, "special_tokens", {}).items() if name in ("<|im_end|>", "<|eot_id|>")]
        snapshot.progress(0.0, f"sampling answer 1 of {group}")

        def on_sample(g: int) -> None:
            snapshot.progress((g + 1) / group, f"sampled {g + 1} of {group} answers")

        answers = tl.sample_group(model, ids, group, MAX_NEW, TEMPERATURE, seed * 1000, stops, on_sample,
                                  snapshot.cancelled)
        texts = tuple(fragment_text(tok, a) for a in answers)
        rewards = np.array([tl.answer_reward(t, expected) for t in texts])
        return GrpoResult(model.info.name, question, expected, texts, rewards, tl.group_advantages(rewards),
                          seed, len(answers) == group)

    def draw(self, result: GrpoResult) -> None:
        self.update_breadcrumb(f"question {self.question_index + 1}/{len(QUESTIONS)} · G={len(result.texts)} · "
                               f"seed {result.seed}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_resample(self) -> None:
        self.seed += 1
        self.recompute()

    def action_group(self) -> None:
        self.group_index = (self.group_index + 1) % len(GROUP_SIZES)
        self.recompute()

    def action_question(self) -> None:
        self.question_index = (self.question_index + 1) % len(QUESTIONS)
        self.recompute()

    def _picture(self, r: GrpoResult, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"1. {r.model_name} answers {len(r.texts)} times (seed {r.seed}): {r.question}\n", style="bold")
        mean, std = (float(r.rewards.mean()), float(r.rewards.std())) if r.rewards.size else (0.0, 0.0)
        out.append(f"  rewards: mean {mean:.2f} · std {std:.2f} · correct {int((r.rewards == 1).sum())}"
                   f"/{len(r.texts)} (expected {r.expected:g})\n", style=DIM)
        half = 6  # columns on each side of the advantage bar's centre
        text_w = max(8, w - 2 * half - 20)
        out.append("  #  reward  " + "down".rjust(half) + "|" + "up".ljust(half) + "  answer\n", style=DIM)
        scale = max(1.0, float(np.abs(r.advantages).max()) if r.advantages.size else 1.0)
        for i, (text, reward, adv) in enumerate(zip(r.texts, r.rewards, r.advantages)):
            colour = UP if adv > 0 else (DOWN if adv < 0 else DIM)
            out.append(f"  {i + 1:<2} {reward:5.1f}  ", style=DIM)
            cells = max(1, round(min(1.0, abs(adv) / scale) * half)) if adv != 0 else 0  # whole cells: both sides alike
            left = "█" * cells if adv < 0 else ""
            right = "█" * cells if adv > 0 else ""
            out.append(left.rjust(half)[:half], style=cell_style(DOWN))
            out.append("|", style=DIM)
            out.append(right.ljust(half)[:half], style=cell_style(UP))
            out.append(f" {adv:+.2f} ", style=cell_style(colour, bold=adv != 0))
            line = text.replace("\n", "↵").strip() or "(nothing)"
            out.append((line if len(line) <= text_w else line[: text_w - 1] + "…") + "\n")
        if not r.complete:
            out.append("  (cancelled before the whole group was sampled)\n", style=DIM)
        out.append("\n2. What training does with this group\n", style="bold")
        if r.advantages.size and np.all(r.advantages == 0):
            out.append("  all rewards equal: every advantage is 0, nothing to learn\n",
                       style=cell_style(ACCENT, bold=True))
        else:
            ups, downs = int((r.advantages > 0).sum()), int((r.advantages < 0).sum())
            out.append(f"  {ups} answers pushed up, {downs} pushed down\n", style=cell_style(ACCENT, bold=True))
        block(out, "Each token of sample i gets the gradient of its log-probability times its advantage, so a "
                   "right answer becomes more likely and a wrong one less. A KL penalty against a reference "
                   "model keeps the policy from drifting far. No reward model is trained: the rule is the "
                   "reward, which is why GRPO suits maths and code, where answers can be checked.", w, DIM)
        return out
