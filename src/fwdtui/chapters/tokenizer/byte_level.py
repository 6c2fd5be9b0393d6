"""Byte-level encoding: UTF-8 bytes, GPT-2's byte-to-character map, partial-character tokens, regex splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import regex
from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.tokenizer.common import chip_rows, pieces_of
from fwdtui.errors import FwdtuiError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.compare import (
    Tokenization,
    char_byte_starts,
    gpt2_tokenizer,
    split_chars,
    token_of_char,
    tokenize,
)
from fwdtui.tokenizers.gpt2 import GPT2_PATTERN, bytes_to_unicode
from fwdtui.tokenizers.openai_files import CL100K_PATTERN, O200K_PATTERN
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM
from fwdtui.widgets.token_strip import token_piece, visible_text

# used when the prompt is plain ASCII (one byte per character teaches nothing about UTF-8)
DEMO_TEXT = "naïve café: 1234567€ — 👍 ナイス! 🇫🇷 I'm OK   camelCase"
VIEWS = ("bytes", "tokens", "splits")
SPLITS = (("GPT-2", GPT2_PATTERN), ("GPT-4 cl100k", CL100K_PATTERN), ("GPT-4o o200k", O200K_PATTERN))
MAX_CHARS = 400


@dataclass(frozen=True)
class ByteView:
    """A text's characters, bytes, one tokenizer's tokens of it, and its regex splits."""

    text: str
    demo: bool  # the demo text is shown instead of the (ASCII-only) prompt
    tokenizer_name: str
    tokenization: Tokenization
    vocab_forms: tuple[str, ...]  # each token as its vocabulary spells it (GPT-2's byte-to-unicode, or SentencePiece's)
    split_of_char: tuple[bool, ...]  # [n_chars] the character's bytes lie in several tokens
    token_of_char: tuple[int, ...]  # [n_chars]
    split_in_token: tuple[str, ...]  # [n_tokens] the split characters each token holds a part of
    splits: tuple[tuple[str, tuple[str, ...]], ...]  # (pattern name, pieces)


@register
class ByteLevelChapter(Chapter):
    ID = "tokenizer.bytes"
    SECTION = "tokenizer"
    TITLE = "Byte-level encoding"
    SUMMARY = "UTF-8 bytes, GPT-2's byte map, and tokens holding part of a character."
    EXPLANATION = """
Computers store text as **UTF-8 bytes**: one byte for ASCII, two for `é`, three for `ナ`, four for
an emoji. A byte-level tokenizer starts from these 256 values, so any text can be encoded. Its
vocabulary files are text, though, so GPT-2 gives each byte a **printable stand-in**: printable
bytes stay themselves, the others move to U+0100 and up; a space becomes `Ġ`, a newline `Ċ`.
Merges work on bytes, so a token can end **in the middle of a character** (underlined).

`v` switches between the bytes, the tokens and the **pre-tokenization** splits of GPT-2, GPT-4
and GPT-4o (merges never cross a split). `d` toggles a demo text, `t` the tokenizer.
"""
    CODE_FUNCTIONS = (bytes_to_unicode, split_chars)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "next_view", "View", tooltip="Bytes, tokens, or regex splits"),
        Binding("d", "toggle_demo", "Demo text", tooltip="Your prompt or a text full of multi-byte characters"),
        Binding("t", "toggle_tokenizer", "Tokenizer", show=False, tooltip="GPT-2's tokenizer or the loaded model's"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.view = "bytes"
        self.demo: bool | None = None  # None: the demo text when the prompt is plain ASCII
        self.use_model = False

    def compose_visual(self) -> ComposeResult:
        yield Canvas(id="byte-view", fill=True, min_width=8)

    # --- work ---------------------------------------------------------------------------------
    def compute(self, snapshot: Snapshot) -> ByteView:
        prompt = snapshot.prompt[:MAX_CHARS]
        demo = self.demo if self.demo is not None else prompt.isascii()
        text = DEMO_TEXT if demo else prompt
        tokenizer, name = self._tokenizer(snapshot)
        tok = tokenize(tokenizer, text, name)
        spm_pieces = getattr(tokenizer, "pieces", None)  # a SentencePiece vocabulary spells its own ("▁the", "<0xE2>")
        if spm_pieces is not None:
            forms = tuple(spm_pieces[i] for i in tok.ids)
        else:
            b2u = bytes_to_unicode()
            forms = tuple("".join(b2u[b] for b in piece) for piece in tok.pieces)
        splits = tuple((label, tuple(regex.findall(pattern, text))) for label, pattern in SPLITS)
        split = split_chars(tok)  # [n_chars]
        starts = char_byte_starts(text)  # [n_chars + 1]
        ends = tok.ends  # [n_tokens]
        holds = []
        for i in range(tok.n_tokens):
            lo, hi = (int(ends[i - 1]) if i else 0), int(ends[i])
            # characters whose byte range overlaps this token's and that are split
            holds.append("".join(ch for c, ch in enumerate(text)
                                 if split[c] and starts[c] < hi and starts[c + 1] > lo))
        return ByteView(text, demo, name, tok, forms, tuple(bool(x) for x in split),
                        tuple(int(x) for x in token_of_char(tok)), tuple(holds), splits)

    def _tokenizer(self, snapshot: Snapshot) -> tuple[Any, str]:
        model_tok = getattr(snapshot.model, "tokenizer", None)
        if self.use_model and model_tok is not None:
            return model_tok, f"the model's ({getattr(model_tok, 'name', 'tokenizer')})"
        try:
            return gpt2_tokenizer(), "GPT-2"
        except FwdtuiError:
            if model_tok is not None:
                return model_tok, f"the model's ({getattr(model_tok, 'name', 'tokenizer')})"
            from fwdtui.testing import ByteTokenizer

            return ByteTokenizer(), "bytes only (GPT-2's files are not here)"

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, result: ByteView) -> None:
        self.update_breadcrumb(f"view: {self.view}")
        self.query_one("#byte-view", Canvas).paint_with(lambda w, h: self.paint(result, w, h))

    def paint(self, data: ByteView, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for name in VIEWS:
            out.append(f" {name} ", style=f"bold reverse {ACCENT}" if name == self.view else DIM)
        n_bytes = len(data.text.encode("utf-8"))
        out.append(f"  {len(data.text)} characters · {n_bytes} bytes", style=DIM)
        out.append(f" · {'demo text (d)' if data.demo else 'your prompt'}\n", style=DIM)
        body_h = max(1, height - 1)
        if self.view == "bytes":
            out.append_text(self._paint_bytes(data, width, body_h))
        elif self.view == "tokens":
            out.append_text(self._paint_tokens(data, width, body_h))
        else:
            out.append_text(self._paint_splits(data, width, body_h))
        return out

    def _paint_bytes(self, data: ByteView, width: int, height: int) -> Text:
        """Blocks of columns, one per character: the character, U+code, UTF-8 bytes, GPT-2 form."""
        b2u = bytes_to_unicode()
        heads = ("char", "U+", "utf-8", "gpt-2")
        columns = []
        for ch in data.text:
            raw = ch.encode("utf-8", errors="replace")
            columns.append((visible_text(ch), f"{ord(ch):04X}", " ".join(f"{b:02x}" for b in raw),
                            "".join(b2u[b] for b in raw), len(raw) > 1))
        out = Text(no_wrap=True, overflow="crop")
        head_w = 6
        i, lines = 0, 0
        while i < len(columns) and lines + 5 <= height:
            # how many columns fit on this block
            used, j = head_w, i
            while j < len(columns) and used + max(cell_len(c) for c in columns[j][:4]) + 1 <= width:
                used += max(cell_len(c) for c in columns[j][:4]) + 1
                j += 1
            j = max(j, i + 1)
            for row in range(4):
                out.append(heads[row].ljust(head_w), style="bold" if row == 0 else DIM)
                for col in columns[i:j]:
                    w = max(cell_len(c) for c in col[:4])
                    style = f"bold {ACCENT}" if col[4] and row == 0 else ("" if row != 1 else DIM)
                    out.append(set_cell_size(col[row], w) + " ", style=style)
                out.append("\n")
            out.append("\n")
            lines += 5
            i = j
        if i < len(columns):
            out.append(f"… {len(columns) - i} more characters", style=DIM)
        else:
            out.append("highlighted: characters of more than one byte · gpt-2: the byte map "
                       "(space→Ġ, newline→Ċ)", style=DIM)
        return out

    def _paint_tokens(self, data: ByteView, width: int, height: int) -> Text:
        tok = data.tokenization
        out = Text(no_wrap=True, overflow="crop")
        n_partial = sum(data.split_of_char)
        out.append(f"{data.tokenizer_name}: {tok.n_tokens} tokens", style="bold")
        out.append(f" · {n_partial} character(s) split over tokens (underlined)\n", style=DIM)
        pieces = pieces_of(_TokenBytes(tok), tok.ids)
        chips, _ = chip_rows(pieces, width, max(1, min(4, height // 3)))
        out.append_text(chips)
        out.append("\n")
        out.append(f"{'id':>6}  {'vocab form':<14} {'bytes':<24} text\n", style="bold")
        room = height - out.plain.count("\n") - 1
        # partial tokens first: they are the point of this view
        order = sorted(range(tok.n_tokens), key=lambda i: (not pieces[i].partial, i))
        for i in order[: max(0, room)]:
            piece = pieces[i]
            hexes = " ".join(f"{b:02x}" for b in piece.raw)
            style = f"{ACCENT}" if piece.partial else ""
            note = ""
            if data.split_in_token[i]:
                note = f"  part of {data.split_in_token[i]}"
            out.append(f"{tok.ids[i]:>6}  {set_cell_size(data.vocab_forms[i], 14)} "
                       f"{hexes[:24]:<24} {piece.label[:16]}{note}\n", style=style)
        return out

    def _paint_splits(self, data: ByteView, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        per = max(2, (height - 1) // len(data.splits))
        for label, pieces in data.splits:
            out.append(f"{label}: {len(pieces)} pieces\n", style="bold")
            chips, shown = chip_rows([token_piece(k, p.encode("utf-8")) for k, p in enumerate(pieces)],
                                     width, per - 1)
            out.append_text(chips)
            out.append("\n")
        out.append("Merges happen inside a piece only. GPT-4 cuts numbers into groups of 3\n"
                   "and lets a word take one leading symbol; GPT-4o also cuts where case changes.",
                   style=DIM)
        return out

    # --- playground ---------------------------------------------------------------------------
    def action_next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.update_breadcrumb(f"view: {self.view}")
        self.redraw()

    def action_toggle_demo(self) -> None:
        current = self.result.demo if self.result is not None else False
        self.demo = not current
        self.recompute()

    def action_toggle_tokenizer(self) -> None:
        if self.session.model is None:
            self.notify("No model is loaded: GPT-2's tokenizer is the one shown.", timeout=3)
            return
        self.use_model = not self.use_model
        self.recompute()


class _TokenBytes:
    """token_bytes for the pieces of one tokenization (the tokenizer itself stays in the worker)."""

    def __init__(self, tok: Tokenization) -> None:
        self._bytes = dict(zip(tok.ids, tok.pieces))

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]
