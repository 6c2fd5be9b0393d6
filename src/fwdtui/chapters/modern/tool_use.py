"""Tool use: the loaded model is shown two tools, asked a question, and every step of the round trip is
real: its generated call, our strict parser, the tool run safely, the result fed back, its answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.modern._common import SCROLL_BINDINGS, Picture, shown, wrap_lines
from fwdtui.core import modern_lab
from fwdtui.core.modern_lab import Generation, ParsedCall, ToolError
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import FORMAT_NAMES, chat_format, encode_chat
from fwdtui.widgets.palette import ACCENT, DIM, cell_style
from fwdtui.tokenizers import fragment_text

SYSTEM = ('You can call these tools:\n'
          '- calculator: does arithmetic. Example call: {"tool": "calculator", "expression": "2 + 3"}\n'
          '- clock: tells the current time. Example call: {"tool": "clock"}\n'
          'If a tool helps, reply with one JSON call and nothing else.')
QUESTIONS = ("What is 37 * 48?", "What is 2 to the power 10, minus 24?", "What time is it now?")
TRUE_VALUES = ("37 * 48", "2 ** 10 - 24", None)  # what the calculator gives, to check answers against
# how much of the call we write for the model before it continues (a lighter form of constrained decoding)
HELP_MODES = ("none: the model writes everything",
              'we start its reply with {"tool": "',
              "we write the call up to the expression")
MAX_CALL, MAX_ANSWER = 32, 32


@dataclass(frozen=True)
class ToolRound:
    model_name: str
    prompt_format: str  # a tokenizers.chat.ChatFormat
    question: str
    n_prompt: int
    prefill: str
    call_text: str  # prefill + what the model wrote
    call_gen: Generation
    call_seconds: float
    parsed: ParsedCall
    tool_output: str  # the tool's answer or its error
    tool_ok: bool
    answer_text: str
    answer_gen: Generation | None


@register
class ToolUseChapter(Picture, Chapter):
    ID = "modern.tool-use"
    SECTION = "modern"
    TITLE = "Tool use"
    SUMMARY = "Calling functions from generated text."
    PICTURE = "tool"
    EXPLANATION = """
A model cannot run code; it can only write text. **Tool use** is a protocol around that: the prompt
describes some tools and the format of a call; the model writes a call (here JSON); a program outside
the model **parses** it strictly, **runs** the tool, and feeds the **result** back as a new message;
the model then answers with the result in its context. Assistants are fine-tuned on many such
exchanges. Here the loaded model really does it, greedy, step by step; a 135M model often gets the
format wrong, and the screen says so. `h` lets us write the start of the call for it (serving engines
go further and *constrain* decoding to a grammar). `n` question · `h` help · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (modern_lab.parse_tool_call, modern_lab.safe_arithmetic, modern_lab.run_tool,
                      modern_lab.greedy_with_logprobs)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "question", "Question", tooltip="Ask the next question (the last one is your prompt)"),
        Binding("h", "help_mode", "Help the model", tooltip="Write none, some or most of the call for the model"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.question_index = 0
        self.help_index = 0

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def _question(self, prompt: str) -> str:
        if self.question_index < len(QUESTIONS):
            return QUESTIONS[self.question_index]
        return prompt.strip() or QUESTIONS[0]

    def _prefill(self, question: str) -> str:
        if self.help_index == 0:
            return ""
        if self.help_index == 1:
            return '{"tool": "'
        return '{"tool": "clock"' if "time" in question.lower() else '{"tool": "calculator", "expression": "'

    def compute(self, snapshot: Snapshot) -> ToolRound:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        question = self._question(snapshot.prompt)
        prefill = self._prefill(question)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        ids = encode_chat(tok, messages) + (tok.encode(prefill) if prefill else [])
        if len(ids) + 2 * MAX_CALL + 40 > model.config.n_ctx:
            raise PromptError(f"The tool prompt and the replies need about {len(ids) + 2 * MAX_CALL + 40} tokens; "
                              f"{model.info.name} has a context of {model.config.n_ctx}.",
                              "Load a model with a longer context (press m), e.g. smollm2-135m.")
        stops = [i for name, i in getattr(tok, "special_tokens", {}).items() if name in ("<|im_end|>", "<|eot_id|>")]

        def decode(tokens: list[int] | tuple[int, ...]) -> str:
            return fragment_text(tok, [t for t in tokens if t not in stops and t != model.config.eos_token_id])

        def step(label: str, start: str, limit: int):
            def on_token(tokens: list[int]) -> bool:
                text = start + decode(tokens)
                snapshot.progress(len(tokens) / limit, f"{label}: {shown(text[-50:], 50)}")
                return label.startswith("Call") and modern_lab.json_closed(text)
            return on_token

        t0 = time.perf_counter()
        call_gen = modern_lab.greedy_with_logprobs(model, ids, MAX_CALL, step("Call", prefill, MAX_CALL),
                                                   snapshot.cancelled, stops)
        seconds = time.perf_counter() - t0
        call_text = prefill + decode(call_gen.tokens)
        parsed = modern_lab.parse_tool_call(call_text)
        tool_output, tool_ok, answer_text, answer_gen = "", False, "", None
        if parsed.call is not None and not snapshot.cancelled():
            try:
                tool_output, tool_ok = modern_lab.run_tool(parsed.call, datetime.now().strftime("%H:%M")), True
            except ToolError as err:
                tool_output = f"error: {err.message}"
            start, end = parsed.call.span
            messages += [{"role": "assistant", "content": call_text[start:end]},
                         {"role": "user", "content": f"Tool result: {tool_output}\nNow answer my question in one "
                                                     "sentence."}]
            ids2 = encode_chat(tok, messages)
            answer_gen = modern_lab.greedy_with_logprobs(model, ids2, MAX_ANSWER, step("Answer", "", MAX_ANSWER),
                                                         snapshot.cancelled, stops)
            answer_text = decode(answer_gen.tokens)
        return ToolRound(model.info.name, chat_format(getattr(tok, "chat_template", None)), question, len(ids),
                         prefill, call_text, call_gen, seconds, parsed, tool_output, tool_ok, answer_text, answer_gen)

    def draw(self, result: ToolRound) -> None:
        self.update_breadcrumb(f"question {self.question_index + 1}/{len(QUESTIONS) + 1} · help {self.help_index}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_question(self) -> None:
        self.question_index = (self.question_index + 1) % (len(QUESTIONS) + 1)
        self.recompute()

    def action_help_mode(self) -> None:
        self.help_index = (self.help_index + 1) % len(HELP_MODES)
        self.recompute()

    # --- picture ----------------------------------------------------------------------------------
    def _picture(self, r: ToolRound, width: int) -> Text:
        w = max(30, min(width - 4, 96))
        out = Text(no_wrap=True, overflow="crop")
        ok_style, bad_style = cell_style(ACCENT, bold=True), cell_style("#ff5f5f", bold=True)

        def block(text: str, style: Any = "") -> None:
            for line in wrap_lines(text, w):
                out.append("  " + line + "\n", style=style)

        fmt = ("a plain transcript (this model has no chat template)" if r.prompt_format == "plain"
               else f"its chat template ({FORMAT_NAMES.get(r.prompt_format, r.prompt_format)})")
        out.append(f"1. The prompt: tools + question, in {fmt} ({r.n_prompt} tokens)\n", style="bold")
        block("system: " + SYSTEM, DIM)
        block("user: " + r.question)
        out.append(f"  help: {HELP_MODES[self.help_index]}\n", style=DIM)
        n_gen = len(r.call_gen.tokens)
        out.append(f"\n2. {r.model_name} writes (greedy, {n_gen} tokens, {r.call_seconds:.1f} s)\n", style="bold")
        out.append("  assistant: ", style=DIM)
        if r.prefill:
            out.append(r.prefill, style=cell_style(ACCENT))
        out.append(shown(r.call_text[len(r.prefill):], max(10, w - 12 - len(r.prefill))) + "\n")
        if r.prefill:
            out.append("  (orange: written by us, not by the model)\n", style=DIM)
        out.append("\n3. Our strict parser reads the first JSON object\n", style="bold")
        call = r.parsed.call
        if call is None:
            out.append(f"  ✗ no valid call: {r.parsed.problem}\n", style=bad_style)
            if r.question in QUESTIONS and TRUE_VALUES[QUESTIONS.index(r.question)]:
                true = modern_lab.safe_arithmetic(TRUE_VALUES[QUESTIONS.index(r.question)])
                out.append(f"  (for comparison, the calculator would give {true})\n", style=DIM)
            block("The model did not call a tool in the agreed format, so nothing runs. Small models often "
                  "answer directly (sometimes wrongly) or invent a tool name; press h to write part of the "
                  "call for it, or n for another question.", DIM)
            if not r.call_gen.complete:
                out.append("  (cancelled)\n", style=DIM)
            return out
        args = f'"{call.expression}"' if call.expression is not None else ""
        out.append(f"  ✓ {call.tool}({args})\n", style=ok_style)
        out.append("\n4. The tool runs outside the model\n", style="bold")
        how = "safe evaluator: numbers and + - * / ** only, never eval" if call.tool == "calculator" else "system clock"
        out.append(f"  {how} → ", style=DIM)
        out.append(r.tool_output + "\n", style=ok_style if r.tool_ok else bad_style)
        out.append("\n5. The result goes back as a message; the model answers\n", style="bold")
        block(f"user: Tool result: {r.tool_output} Now answer my question in one sentence.", DIM)
        out.append("  assistant: ", style=DIM)
        out.append(shown(r.answer_text, w - 13) + "\n")
        uses = r.tool_output and r.tool_output in r.answer_text
        out.append(("  ✓ the answer uses the tool's result\n" if uses else
                    "  ✗ the answer does not repeat the tool's result: the model did not use it\n"),
                   style=ok_style if uses else bad_style)
        return out
