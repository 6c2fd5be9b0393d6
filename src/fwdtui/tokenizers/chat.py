"""Chat templates without a Jinja engine: ChatML (SmolLM2, Qwen), Llama 3 headers, [INST] (Llama 2,
Mistral), Zephyr (TinyLlama chat), and a plain transcript for base models."""

from __future__ import annotations

import re
from typing import Any, Literal

from fwdtui.errors import PromptError

ChatFormat = Literal["chatml", "llama3", "inst", "zephyr", "plain"]

# How each format is named on screen.
FORMAT_NAMES: dict[str, str] = {
    "chatml": "ChatML",
    "llama3": "Llama 3 headers",
    "inst": "[INST] turns (Llama 2 / Mistral)",
    "zephyr": "Zephyr turns (<|user|>)",
    "plain": "none (a base model)",
}

# Llama 3.1/3.2 templates put these two lines at the top of every system message; the date is
# the template's own default when no `date_string` is passed.
_LLAMA3_DATE_LINES = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

# A ChatML template that writes a system turn of its own when the conversation has none, e.g.
# SmolLM2's '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, ...<|im_end|>\n'.
# The newline inside the Jinja string may be stored as a real newline or as the two chars "\n".
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)(.*?)<\|im_end\|>", re.DOTALL)


def chat_format(template: str | None) -> ChatFormat:
    """Which family a chat template belongs to, judged by the special tokens it writes."""
    if template and "<|im_start|>" in template:
        return "chatml"
    if template and "<|start_header_id|>" in template:
        return "llama3"
    if template and "[INST]" in template:
        return "inst"
    if template and "<|user|>" in template:
        return "zephyr"
    return "plain"


def default_system_prompt(template: str | None) -> str | None:
    """The system prompt a ChatML template adds when the messages bring none (None if it adds none)."""
    if not template:
        return None
    match = _DEFAULT_SYSTEM.search(template)
    return match.group(1).replace("\\n", "\n") if match else None


class Special(str):
    """A special-token marker written by the template (never by the user's text)."""


IM_START, IM_END = Special("<|im_start|>"), Special("<|im_end|>")
BOS, EOS = Special("<s>"), Special("</s>")  # SentencePiece models' control tokens
INST, END_INST = Special("[INST]"), Special("[/INST]")  # control tokens in Mistral v3's vocabulary, text in Llama 2's
BEGIN, START_HEADER, END_HEADER, EOT = (
    Special("<|begin_of_text|>"),
    Special("<|start_header_id|>"),
    Special("<|end_header_id|>"),
    Special("<|eot_id|>"),
)


def chat_parts(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> list[str]:
    """The conversation as the template writes it: plain strings and `Special` markers, in order."""
    messages = _checked(messages)
    template = getattr(tokenizer, "chat_template", None)
    kind = chat_format(template)
    if kind == "chatml":
        return _chatml(messages, template, add_generation_prompt)
    if kind == "llama3":
        return _llama3(messages, template, add_generation_prompt)
    if kind == "inst":
        return _inst(messages, template)
    if kind == "zephyr":
        return _zephyr(messages, add_generation_prompt)
    return _plain(messages, add_generation_prompt)


def apply_chat_template(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The text the model was fine-tuned on for this conversation (encode it with `encode_chat`).

    SmolLM2, one user message "Hi" (its template adds a default system turn):
        <|im_start|>system
        You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
        <|im_start|>user
        Hi<|im_end|>
        <|im_start|>assistant
    """
    return "".join(chat_parts(tokenizer, messages, add_generation_prompt))


def encode_chat(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """The conversation's ids: the template's markers become their control ids, everything else is text.

    Equal to `tokenizer.encode_with_special(apply_chat_template(...))`, except that a message that
    itself contains "<|im_end|>" keeps it as plain text instead of closing its turn early.
    """
    ids: list[int] = []
    text: list[str] = []
    for part in chat_parts(tokenizer, messages, add_generation_prompt):
        if isinstance(part, Special) and part in tokenizer.special_tokens:
            ids.extend(tokenizer.encode("".join(text)))
            text = []
            ids.append(tokenizer.special_tokens[part])
        else:
            text.append(part)
    ids.extend(tokenizer.encode("".join(text)))
    return ids


def _checked(messages: list[dict]) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise PromptError(
                f"Chat message {i} needs a text 'role' and 'content', got {message!r}.",
                'Write each message as {"role": "user", "content": "..."}.',
            )
        out.append({"role": role, "content": content})
    return out


def _chatml(messages: list[dict[str, str]], template: str, add_generation_prompt: bool) -> list[str]:
    parts: list[str] = []
    system = default_system_prompt(template)
    if system is not None and (not messages or messages[0]["role"] != "system"):
        parts += [IM_START, f"system\n{system}", IM_END, "\n"]
    for m in messages:
        parts += [IM_START, f"{m['role']}\n", m["content"], IM_END, "\n"]
    if add_generation_prompt:
        parts += [IM_START, "assistant\n"]
    return parts


def _llama3(messages: list[dict[str, str]], template: str, add_generation_prompt: bool) -> list[str]:
    def turn(role: str, content: str) -> list[str]:
        return [START_HEADER, role, END_HEADER, "\n\n", content, EOT]

    parts: list[str] = [BEGIN] if "bos_token" in template or "<|begin_of_text|>" in template else []
    if "Cutting Knowledge Date" in template:  # 3.1 / 3.2: the system turn is always there
        system = ""
        if messages and messages[0]["role"] == "system":
            system, messages = messages[0]["content"].strip(), messages[1:]
        parts += turn("system", _LLAMA3_DATE_LINES + system)
    for m in messages:
        parts += turn(m["role"], m["content"].strip())
    if add_generation_prompt:
        parts += [START_HEADER, "assistant", END_HEADER, "\n\n"]
    return parts


def _inst(messages: list[dict[str, str]], template: str) -> list[str]:
    """Llama 2 chat: `<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>` per exchange.
    Mistral Instruct: `<s>[INST] user [/INST]answer</s>[INST] ...` (no system turn: it goes before the
    first user message). The user's turn always ends the prompt, so there is no generation flag."""
    llama2 = "<<SYS>>" in template
    system = ""
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"].strip(), messages[1:]
    parts: list[str] = [BOS]
    first_user = True
    for m in messages:
        if m["role"] == "user":
            content = m["content"].strip()
            if first_user and system:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}" if llama2 else f"{system}\n\n{content}"
            if llama2 and not first_user:
                parts.append(BOS)
            parts += [INST, f" {content} ", END_INST]
            first_user = False
        else:
            parts += [f" {m['content'].strip()} " if llama2 else m["content"].strip(), EOS]
    return parts


def _zephyr(messages: list[dict[str, str]], add_generation_prompt: bool) -> list[str]:
    """Zephyr (TinyLlama chat): `<|role|>\ncontent</s>\n` per message, then `<|assistant|>\n`."""
    parts: list[str] = []
    for m in messages:
        parts += [f"<|{m['role']}|>\n{m['content']}", EOS, "\n"]
    if add_generation_prompt:
        parts.append("<|assistant|>\n")
    return parts


def _plain(messages: list[dict[str, str]], add_generation_prompt: bool) -> list[str]:
    """A base model has no template: a transcript it can continue, as seen in web text."""
    parts: list[str] = []
    for m in messages:
        if m["role"] == "system":
            parts.append(f"{m['content']}\n\n")
        else:
            parts.append(f"{m['role'].capitalize()}: {m['content']}\n")
    if add_generation_prompt:
        parts.append("Assistant:")
    return parts
