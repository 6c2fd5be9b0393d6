"""Chat templates without a Jinja engine: ChatML (SmolLM2, Qwen), Llama 3 headers, a plain fallback."""

from __future__ import annotations

import re
from typing import Any, Literal

from fwdtui.errors import PromptError

ChatFormat = Literal["chatml", "llama3", "plain"]

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
    return "plain"


def default_system_prompt(template: str | None) -> str | None:
    """The system prompt a ChatML template adds when the messages bring none (None if it adds none)."""
    if not template:
        return None
    match = _DEFAULT_SYSTEM.search(template)
    return match.group(1).replace("\\n", "\n") if match else None


def apply_chat_template(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The text the model was fine-tuned on for this conversation; encode it with `encode_with_special`.

    >>> apply_chat_template(smollm2, [{"role": "user", "content": "Hi"}])
    '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    messages = _checked(messages)
    template = getattr(tokenizer, "chat_template", None)
    kind = chat_format(template)
    if kind == "chatml":
        return _chatml(messages, template, add_generation_prompt)
    if kind == "llama3":
        return _llama3(messages, template, add_generation_prompt)
    return _plain(messages, add_generation_prompt)


def encode_chat(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """`apply_chat_template`, then ids with the template's special tokens as single ids."""
    return tokenizer.encode_with_special(apply_chat_template(tokenizer, messages, add_generation_prompt))


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


def _chatml(messages: list[dict[str, str]], template: str, add_generation_prompt: bool) -> str:
    parts = []
    system = default_system_prompt(template)
    if system is not None and (not messages or messages[0]["role"] != "system"):
        parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    for m in messages:
        parts.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _llama3(messages: list[dict[str, str]], template: str, add_generation_prompt: bool) -> str:
    def turn(role: str, content: str) -> str:
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"

    parts = ["<|begin_of_text|>" if "bos_token" in template or "<|begin_of_text|>" in template else ""]
    if "Cutting Knowledge Date" in template:  # 3.1 / 3.2: the system turn is always there
        system = ""
        if messages and messages[0]["role"] == "system":
            system, messages = messages[0]["content"].strip(), messages[1:]
        parts.append(turn("system", _LLAMA3_DATE_LINES + system))
    for m in messages:
        parts.append(turn(m["role"], m["content"].strip()))
    if add_generation_prompt:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _plain(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """A base model has no template: a transcript it can continue, as seen in web text."""
    lines = []
    for m in messages:
        if m["role"] == "system":
            lines.append(f"{m['content']}\n\n")
        else:
            lines.append(f"{m['role'].capitalize()}: {m['content']}\n")
    if add_generation_prompt:
        lines.append("Assistant:")
    return "".join(lines)
