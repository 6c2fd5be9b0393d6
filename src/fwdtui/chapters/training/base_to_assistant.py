"""From base model to assistant: the whole recipe in order, and the loaded model asked the same question
as plain text and in its chat template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.training._common import SCROLL_BINDINGS, Picture, block
from fwdtui.core import training_lab as tl
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import chat_format, encode_chat
from fwdtui.widgets.palette import ACCENT, DIM, cell_style
from fwdtui.tokenizers import fragment_text

QUESTIONS = ("What colour is the sky on a clear day?", "Give me a word that rhymes with cat.")
MAX_NEW = 20
# (stage, what goes in, what comes out, the chapter that shows it), in our own words
RECIPE = (
    ("1 Pre-training", "trillions of tokens of web text, books, code",
     "a base model: continues any text", "training.pretraining"),
    ("2 SFT", "tens of thousands of written conversations",
     "follows the chat template, answers", "training.sft"),
    ("3 Preferences", "pairs of answers ranked by people (RLHF, DPO)",
     "answers people prefer, safer", "training.rlhf / training.dpo"),
    ("4 RL on checkable tasks", "maths and code with automatic checks (GRPO)",
     "longer, more careful reasoning", "training.grpo"),
)


@dataclass(frozen=True)
class Comparison:
    model_name: str
    prompt_format: str
    question: str
    plain: str  # what the model writes after the question as plain text
    chat: str  # what it writes after the question in its chat template
    plain_loss: float  # mean loss of the question's own tokens as plain text (how web-like it is)


@register
class BaseToAssistantChapter(Picture, Chapter):
    ID = "training.base-to-assistant"
    SECTION = "training"
    TITLE = "From base model to assistant"
    SUMMARY = "The whole recipe."
    PICTURE = "recipe"
    EXPLANATION = """
An assistant is built in stages on one network. **Pre-training** makes a base model that continues any
text. **SFT** teaches the chat template and the habit of answering. **Preference tuning** (RLHF or DPO)
moves it towards answers people rank higher. **RL on checkable tasks** (GRPO) rewards correct results.
The weights change in every stage but the architecture never does: the same forward pass runs
throughout. Below: the recipe, then the loaded model asked one question twice, as plain text and in
its chat template (greedy, ≤ 20 tokens); a base model rambles on, an instruct model answers and stops.
`n` next question · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (encode_chat, tl.token_losses)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "question", "Question", tooltip="Ask the next question"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.question_index = 0

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> Comparison:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        question = QUESTIONS[self.question_index]
        plain_ids = tok.encode(question)
        chat_ids = encode_chat(tok, [{"role": "user", "content": question}])
        if len(chat_ids) + MAX_NEW > model.config.n_ctx:
            raise PromptError(f"The question and answer need {len(chat_ids) + MAX_NEW} tokens; {model.info.name} "
                              f"has a context of {model.config.n_ctx}.", "Load a model with a longer context (press m).")
        stops = {i for name, i in getattr(tok, "special_tokens", {}).items() if name in ("<|im_end|>", "<|eot_id|>")}

        def greedy(ids: list[int], label: str) -> str:
            out: list[int] = []
            for token in model.generate(ids, MAX_NEW, temperature=0.0):
                if token in stops or token == model.config.eos_token_id or snapshot.cancelled():
                    break
                out.append(int(token))
                snapshot.progress(len(out) / MAX_NEW, f"{label}: token {len(out)}")
            return fragment_text(tok, out)

        plain = greedy(plain_ids, "as plain text")
        chat = greedy(chat_ids, "in the chat template")
        loss, _ = tl.perplexity(tl.token_losses(model, plain_ids))
        return Comparison(model.info.name, chat_format(getattr(tok, "chat_template", None)), question, plain, chat,
                          loss)

    def draw(self, result: Comparison) -> None:
        self.update_breadcrumb(f"question {self.question_index + 1}/{len(QUESTIONS)}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_question(self) -> None:
        self.question_index = (self.question_index + 1) % len(QUESTIONS)
        self.recompute()

    def _picture(self, r: Comparison, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        out.append("1. The recipe\n", style="bold")
        for stage, data, result, chapter in RECIPE:
            out.append(f"  {stage}\n", style=cell_style(ACCENT, bold=True))
            block(out, f"in: {data} · out: {result} · see {chapter}", w - 2, DIM)
        kind = ("has a chat template: it went through SFT at least" if r.prompt_format != "plain"
                else "has no chat template: a base model (or a test model)")
        out.append(f"\n2. {r.model_name} {kind}\n", style="bold")
        out.append(f"  Q: {r.question}\n", style=DIM)

        def answer(label: str, text: str) -> None:
            out.append(f"  {label}", style=DIM)
            line = text.replace("\n", "↵").strip() or "(it ended at once: its first token was an end marker)"
            room = max(10, w - len(label) - 3)
            out.append((line if len(line) <= room else line[: room - 1] + "…") + "\n")

        answer("as plain text:     ", r.plain)
        answer("in chat template:  ", r.chat)
        out.append(f"  (the question's own loss as plain text: {r.plain_loss:.2f} nats per token)\n", style=DIM)
        block(out, "As plain text, the model continues the page the question might come from; in the template, "
                   "an instruct model recognises its turn, answers and writes its end-of-turn marker. That "
                   "difference is what stages 2 to 4 taught it.", w, DIM)
        return out
