"""Turning whatever the user typed into token ids the model can take, and saying what was changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from fwdtui.errors import PromptError

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog. The quick brown fox"


@dataclass
class PreparedPrompt:
    text: str
    ids: list[int]
    notices: list[str] = field(default_factory=list)


def clean_text(text: str) -> tuple[str, list[str]]:
    """Replace what cannot be encoded: lone surrogates (undecodable bytes from a shell) become U+FFFD."""
    notices: list[str] = []
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # argv bytes that were not UTF-8 arrive as surrogate escapes; turn them back into bytes, then replace.
        text = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "surrogatepass").decode("utf-8", "replace")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join(c if not 0xD800 <= ord(c) <= 0xDFFF else "\ufffd" for c in text)
        notices.append("Bytes that were not valid UTF-8 were replaced by \ufffd.")
    return text, notices


def _only_escapes(text: str) -> bool:
    return all(0xDC80 <= ord(c) <= 0xDCFF for c in text if 0xD800 <= ord(c) <= 0xDFFF)


def prepare_prompt(model, text: str, reserve: int = 0) -> PreparedPrompt:
    """Encode `text` with the model's tokenizer; keep the last tokens if it is longer than the context.

    `reserve` positions are kept free for tokens to be generated.
    """
    text, notices = clean_text(text)
    if not text:
        raise PromptError("The prompt is empty.", "Type some text (press p in the app, or pass PROMPT on the command line).")
    if model.tokenizer is None:
        raise PromptError("This model has no tokenizer files.", "Add vocab.json + merges.txt (or tokenizer.json) to its folder.")
    ids = model.tokenizer.encode(text)
    if not ids:
        raise PromptError("The prompt encodes to no tokens.", "Type some visible text.")
    limit = max(1, model.config.n_ctx - max(0, reserve))
    if len(ids) > limit:
        dropped = len(ids) - limit
        ids = ids[-limit:]
        notices.append(
            f"The prompt had {dropped + limit} tokens, more than the {limit} that fit the context; "
            f"the first {dropped} were dropped."
        )
    return PreparedPrompt(text=text, ids=ids, notices=notices)
