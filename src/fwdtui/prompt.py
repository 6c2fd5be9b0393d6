"""Turning whatever the user typed into token ids the model can take, and saying what was changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from fwdtui.errors import PromptError

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog. The quick brown fox"
_ORDINARY_CONTROLS = "\t\n\r"  # whitespace people type on purpose


@dataclass
class PreparedPrompt:
    text: str
    ids: list[int]
    notices: list[str] = field(default_factory=list)


def clean_text(text: str) -> tuple[str, list[str]]:
    """Make `text` encodable as UTF-8 and say what was changed or is unusual.

    Lone surrogates cannot be encoded. Those in U+DC80..U+DCFF are how Python hands over argv bytes
    that were not UTF-8 ("surrogateescape"): they are turned back into the bytes and decoded with
    U+FFFD for what is invalid. A high surrogate followed by a low one is joined into the character
    the pair stands for; any other surrogate becomes one U+FFFD. Control characters are kept (the
    model reads them as bytes like any other) but named in a notice, since they are invisible.
    """
    notices: list[str] = []
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        before = text.count("\ufffd")
        text = _replace_surrogates(text)
        if text.count("\ufffd") > before:  # not when all there was to do was join surrogate pairs
            notices.append("Bytes that were not valid UTF-8 (or lone surrogates) were replaced by \ufffd.")
    controls = [c for c in text if _is_control(c)]
    if controls:
        first = "NUL" if controls[0] == "\0" else f"U+{ord(controls[0]):04X}"
        notices.append(
            f"The prompt holds {len(controls)} invisible control character(s) (first: {first}); "
            "they are kept, and the model reads them as bytes like any others."
        )
    return text, notices


def _is_control(c: str) -> bool:
    o = ord(c)
    return (o < 0x20 and c not in _ORDINARY_CONTROLS) or 0x7F <= o <= 0x9F


def _replace_surrogates(text: str) -> str:
    out: list[str] = []
    escaped = bytearray()  # a run of surrogate-escaped bytes, decoded together (they may form one character)
    i = 0
    while i < len(text):
        o = ord(text[i])
        if 0xDC80 <= o <= 0xDCFF:
            escaped.append(o - 0xDC00)
            i += 1
            continue
        if escaped:
            out.append(escaped.decode("utf-8", "replace"))
            escaped.clear()
        if 0xD800 <= o <= 0xDBFF and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            # a surrogate pair spelled out as two code units (from JSON or UTF-16): the one character it means
            out.append(chr(0x10000 + ((o - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if 0xD800 <= o <= 0xDFFF else text[i])
        i += 1
    if escaped:
        out.append(escaped.decode("utf-8", "replace"))
    return "".join(out)


def prepare_prompt(model, text: str, reserve: int = 0) -> PreparedPrompt:
    """Encode `text` with the model's tokenizer; keep the last tokens if it is longer than the context.

    `reserve` positions are kept free for tokens to be generated, but never more than half the
    context: a long generation request must not cut the prompt down to nothing.
    """
    text, notices = clean_text(text)
    if not text:
        raise PromptError("The prompt is empty.", "Type some text (press p in the app, or pass PROMPT on the command line).")
    if model.tokenizer is None:
        raise PromptError("This model has no tokenizer files.", "Add vocab.json + merges.txt (or tokenizer.json) to its folder.")
    ids = model.tokenizer.encode(text)
    if not ids:
        raise PromptError("The prompt encodes to no tokens.", "Type some visible text.")
    # Models trained with a beginning-of-sequence token before every text (Llama 2, Mistral, Llama 3) get it,
    # as llama.cpp and transformers give it; it stays first when a long prompt is cut.
    bos = model.tokenizer.bos_id if getattr(model.tokenizer, "add_bos", False) else None
    head = [bos] if bos is not None else []
    n_ctx = model.config.n_ctx
    limit = max(1 + len(head), n_ctx - min(max(0, reserve), n_ctx // 2))
    ids = head + ids
    if len(ids) > limit:
        dropped = len(ids) - limit
        ids = head + ids[len(head) + dropped:]
        room = f" (leaving {n_ctx - limit} for new tokens)" if limit < n_ctx else ""
        notices.append(
            f"The prompt had {dropped + limit} tokens, more than the {limit} that fit the {n_ctx}-token context{room}; "
            f"the first {dropped} were dropped."
        )
    return PreparedPrompt(text=text, ids=ids, notices=notices)
