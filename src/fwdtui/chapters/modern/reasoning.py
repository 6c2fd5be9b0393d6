"""Reasoning chains: one question asked plainly and with "Let's think step by step.", both answers generated
greedily by the loaded model, every token coloured by the probability the model gave it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.modern._common import SCROLL_BINDINGS, Picture, wrap_lines
from fwdtui.core import modern_lab
from fwdtui.core.modern_lab import FinalAnswer, Generation
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import FORMAT_NAMES, chat_format, encode_chat
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style, colour_index, xterm
from fwdtui.widgets.plots import sparkline
from fwdtui.tokenizers import fragment_text

# short questions with one number as the answer (short so that they fit a tiny model's 128 byte positions)
QUESTIONS = (("What is 15 + 27?", "42"),
             ("I had 5 apples and ate 2. How many are left?", "3"),
             ("Tom is 12. Ann is 3 years younger. How old is Ann?", "9"),
             ("How many days are in 3 weeks?", "21"))
CUE = "Let's think step by step."
# where the cue goes: appended to the question, or written by us as the first words of the model's reply
# (the original zero-shot chain-of-thought recipe put it at the start of the answer)
CUE_PLACES = ("question", "reply")
MAX_NEW = 48
STOP_NAMES = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>")
BAD = "#ff5f5f"


@dataclass(frozen=True)
class Attempt:
    title: str
    n_prompt: int
    prefill: str  # words we wrote at the start of the reply ("" when none)
    gen: Generation
    pieces: tuple[bytes, ...]  # each generated token's bytes (end tokens as b"")
    limit: int  # the most tokens it was allowed
    seconds: float
    answer: FinalAnswer

    @property
    def probs(self) -> np.ndarray:
        return np.exp(np.asarray(self.gen.logprobs, dtype=np.float64))  # [n_new]

    @property
    def ended(self) -> bool:
        """It wrote an end token (rather than being cut at the limit)."""
        return bool(self.pieces) and self.pieces[-1] == b""

    @property
    def answer_prob(self) -> float | None:
        """Probability of the whole answer number: the product over the tokens that spell it."""
        a, b = self.answer.span
        return float(np.exp(sum(self.gen.logprobs[a:b]))) if b > a else None


@dataclass(frozen=True)
class ReasoningView:
    model_name: str
    prompt_format: str
    question: str
    known: str | None  # None for the user's own prompt
    cue_place: str
    attempts: tuple[Attempt, ...]  # (plain, step by step)


def _fg_on(colour_idx: int) -> str:
    return xterm(16) if colour_idx >= 8 else xterm(255)  # dark text on the bright end of the ramp


@register
class ReasoningChapter(Picture, Chapter):
    ID = "modern.reasoning"
    SECTION = "modern"
    TITLE = "Reasoning chains"
    SUMMARY = "Thinking out loud before answering."
    PICTURE = "reason"
    EXPLANATION = """
A model spends the same fixed amount of computation on every token it writes: one pass through all its
layers. A question whose answer needs several steps cannot fit into the single token that states it,
but it can fit into many tokens: written-out intermediate steps become context that later tokens read.
Asking "**Let's think step by step.**" nudges a model into writing such a **chain of thought** first.
**Reasoning models** (OpenAI o1, DeepSeek-R1, Qwen3 thinking) go much further: they are trained with
**reinforcement learning**, rewarded when the final answer checks out, and learn to write long chains,
check themselves and backtrack before answering: more tokens, more computation per answer. Below, the
loaded model answers greedily both ways; each token's colour is the probability it gave that token
(dark = unsure, bright = confident). A small model often gets it wrong both ways: that is shown, not
hidden. `n` question (the last is your prompt) · `t` where the cue goes · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (modern_lab.greedy_with_logprobs, modern_lab.final_answer, modern_lab.answer_matches,
                      encode_chat)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "question", "Question", tooltip="Ask the next question (the last one is your prompt)"),
        Binding("t", "cue_place", "Cue place", tooltip="Put the cue after the question or at the start of the reply"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.question_index = 0
        self.cue_index = 0
        self._plain_cache: dict[tuple[int, str, tuple[int, ...]], Attempt] = {}  # the last plain attempt

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def _question(self, prompt: str) -> tuple[str, str | None]:
        if self.question_index < len(QUESTIONS):
            return QUESTIONS[self.question_index]
        return (prompt.strip() or QUESTIONS[0][0]), None

    def compute(self, snapshot: Snapshot) -> ReasoningView:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        question, known = self._question(snapshot.prompt)
        place = CUE_PLACES[self.cue_index]
        stops = [i for name, i in getattr(tok, "special_tokens", {}).items() if name in STOP_NAMES]
        end_ids = set(stops) | {model.config.eos_token_id}

        def piece(t: int) -> bytes:
            return b"" if t in end_ids else tok.token_bytes(t)

        plans = [("A. asked plainly", question, "")]
        if place == "question":
            plans.append(("B. + step by step", f"{question}\n{CUE}", ""))
        else:
            plans.append(("B. reply starts with the cue", question, CUE))
        attempts = []
        for n, (title, content, prefill) in enumerate(plans):
            ids = encode_chat(tok, [{"role": "user", "content": content}]) + (tok.encode(prefill) if prefill else [])
            limit = min(MAX_NEW, model.config.n_ctx - len(ids))
            if limit < 4:
                raise PromptError(f"The question takes {len(ids)} tokens; {model.info.name} has a context of "
                                  f"{model.config.n_ctx}, too little room left for an answer.",
                                  "Ask a shorter question (press p) or load a model with a longer context (m).")

            def on_token(tokens: list[int], n: int = n, limit: int = limit, prefill: str = prefill) -> None:
                so_far = prefill + fragment_text(tok, [t for t in tokens if t not in end_ids])
                tail = so_far.replace("\n", "↵")[-44:]
                snapshot.progress((n + len(tokens) / limit) / 2, f"{'AB'[n]}: {tail}")

            key = (id(model), model.info.name, tuple(ids))
            if key in self._plain_cache:  # A does not depend on where the cue goes: reuse it
                attempts.append(self._plain_cache[key])
                continue
            t0 = time.perf_counter()
            gen = modern_lab.greedy_with_logprobs(model, ids, limit, on_token, snapshot.cancelled, stops)
            pieces = tuple(piece(t) for t in gen.tokens)
            attempts.append(Attempt(title, len(ids), prefill, gen, pieces, limit, time.perf_counter() - t0,
                                    modern_lab.final_answer(pieces)))
            if snapshot.cancelled():
                break
            if n == 0:
                self._plain_cache = {key: attempts[0]}
        return ReasoningView(model.info.name, chat_format(getattr(tok, "chat_template", None)), question, known,
                             place, tuple(attempts))

    def draw(self, result: ReasoningView) -> None:
        self.update_breadcrumb(f"question {self.question_index + 1}/{len(QUESTIONS) + 1} · cue in the "
                               f"{result.cue_place}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_question(self) -> None:
        self.question_index = (self.question_index + 1) % (len(QUESTIONS) + 1)
        self.recompute()

    def action_cue_place(self) -> None:
        self.cue_index = (self.cue_index + 1) % len(CUE_PLACES)
        self.recompute()

    # --- picture ----------------------------------------------------------------------------------
    def _picture(self, v: ReasoningView, width: int) -> Text:
        w = max(40, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        fmt = ("a plain transcript (no chat template)" if v.prompt_format == "plain"
               else f"its chat template ({FORMAT_NAMES.get(v.prompt_format, v.prompt_format)})")
        out.append("Question: ", style="bold")
        out.append(v.question + "\n")
        if v.known is not None:
            out.append(f"known answer: {v.known}", style=cell_style(ACCENT, bold=True))
        else:
            out.append("your own prompt: no known answer to check", style=DIM)
        out.append(f" · {v.model_name}, greedy, in {fmt}\n", style=DIM)
        out.append("colour = probability of each chosen token  ", style=DIM)
        for colour in SEQUENTIAL:
            out.append(" ", style=cell_style(None, colour))
        out.append(" 0 → 1 · answer underlined\n\n", style=DIM)

        if w >= 64:  # side by side
            col_w = (w - 3) // 2
            columns = [self._column(a, v.known, col_w) for a in v.attempts]
            while len(columns) < 2:
                columns.append([Text("(cancelled)", style=DIM)])
            for i in range(max(len(c) for c in columns)):
                left = columns[0][i].copy() if i < len(columns[0]) else Text("")
                left.truncate(col_w, pad=True)
                out.append_text(left)
                out.append(" │ ", style=DIM)
                right = columns[1][i] if i < len(columns[1]) else Text("")
                out.append_text(right)
                out.append("\n")
        else:
            for a in v.attempts:
                for line in self._column(a, v.known, w):
                    out.append_text(line)
                    out.append("\n")
                out.append("\n")
        out.append("\n")
        for line in wrap_lines(self._verdict(v), w):
            out.append(line + "\n", style=DIM)
        return out

    def _column(self, a: Attempt, known: str | None, col_w: int) -> list[Text]:
        lines = [Text(a.title, style="bold")]
        lines.append(Text(f"{a.n_prompt} prompt tokens", style=DIM))
        line = Text()
        if a.prefill:
            line.append(a.prefill, style=cell_style(ACCENT))  # our words, not the model's
        probs = a.probs
        first, end = a.answer.span
        for i, raw in enumerate(a.pieces):
            if raw == b"":
                label, breaks = "⏎end", False
            else:
                text = raw.decode("utf-8", errors="replace")
                breaks = "\n" in text
                label = text.replace("\n", "↵")
            idx = colour_index(float(probs[i]), 0.0, 1.0, len(SEQUENTIAL))
            style = cell_style(_fg_on(idx), SEQUENTIAL[idx])
            if first <= i < end:  # the tokens that spell the graded answer
                style += Style(bold=True, underline=True)
            label = label[:col_w]
            if line.cell_len + len(label) > col_w:
                lines.append(line)
                line = Text()
                label = label.lstrip(" ") or label  # a wrapped line starts at its word
            line.append(label, style=style)
            if breaks:
                lines.append(line)
                line = Text()
        if line.cell_len:
            lines.append(line)
        if len(probs):
            worst = int(np.argmin(probs))
            unsure = Text("least sure: ", style=DIM)
            label = (a.pieces[worst].decode("utf-8", errors="replace") or "⏎end").replace("\n", "↵")
            unsure.append(label.strip() or repr(label), style=cell_style(_fg_on(0), SEQUENTIAL[0]))
            unsure.append(f" p {probs[worst]:.2f}", style=DIM)
            lines.append(unsure)
            spark = Text("p ", style=DIM)
            spark.append_text(sparkline(probs, max(4, col_w - 2), vmin=0.0, vmax=1.0))
            lines.append(spark)
        status = ("ended by itself" if a.ended else f"cut at {a.limit} tokens" if a.gen.complete
                  else "cancelled")
        lines.append(Text(f"{len(a.gen.tokens)} tokens · {a.seconds:.1f} s · mean p {probs.mean() if len(probs) else 0:.2f}",
                          style=DIM))
        lines.append(Text(status, style=DIM))
        answer = Text("answer: ", style="bold")
        if a.answer.value is None:
            answer.append("no number", style=cell_style(BAD, bold=True))
        else:
            right = known is not None and modern_lab.answer_matches(a.answer.value, known)
            style = cell_style(ACCENT if right or known is None else BAD, bold=True)
            mark = "" if known is None else (" ✓" if right else " ✗")
            answer.append(a.answer.value + mark, style=style)
            answer.append(f"  ({a.answer.how}, p {a.answer_prob:.2f})", style=DIM)
        lines.append(answer)
        return lines

    def _verdict(self, v: ReasoningView) -> str:
        if len(v.attempts) < 2:
            return "Cancelled before both answers were written."
        plain, chain = v.attempts
        extra = len(chain.gen.tokens) / max(1, len(plain.gen.tokens))
        compute = (f"B wrote {len(chain.gen.tokens)} tokens, A {len(plain.gen.tokens)}: each is one full pass "
                   f"through the model, so B spent {extra:.1f}× the computation on its answer.")
        if not chain.ended:
            compute += f" B's chain was cut at {chain.limit} tokens; the number graded is what it had reached."
        if v.known is None:
            return compute + " Your prompt has no known answer; compare the two by eye (n: a preset question)."
        ok = [modern_lab.answer_matches(a.answer.value, v.known) for a in (plain, chain)]
        verdict = {
            (True, True): "Both right: the question was easy enough to answer in one go.",
            (False, True): "Only the step-by-step answer is right: writing the steps out gave the model room to "
                           "compute.",
            (True, False): "Only the plain answer is right: a chain is only as good as its steps, and here a step "
                           "went wrong.",
            (False, False): f"Both wrong. {v.model_name} is too small to do this reliably either way: a cue cannot "
                            "add ability the model lacks. Reasoning models are far larger and trained by RL to "
                            "make chains that reach checked answers.",
        }[tuple(ok)]
        return verdict + " " + compute
