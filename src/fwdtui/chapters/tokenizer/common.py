"""Shared pieces of the tokenizer chapters: compact token chips, text sources."""

from __future__ import annotations

import weakref
from typing import Any, Iterable, Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from fwdtui.tokenizers.corpus import sample_text
from fwdtui.tokenizers.trainer import TrainedTokenizer
from fwdtui.widgets.bar_chart import bar_string
from fwdtui.widgets.palette import ACCENT, CHIP_BACKGROUNDS, CHIP_FG, DIM, SEQUENTIAL, cell_style
from fwdtui.widgets.token_strip import TokenPiece, token_piece, visible_text

# A prompt shorter than this teaches little about frequent pairs: train on the sample instead.
MIN_TRAINING_CHARS = 400


def training_text(prompt: str, use_prompt: bool | None = None) -> tuple[str, str]:
    """(text, where it came from): the prompt when long enough (or asked for), else the sample."""
    if use_prompt is None:
        use_prompt = len(prompt) >= MIN_TRAINING_CHARS
    if use_prompt and prompt.strip():
        return prompt, f"your prompt ({len(prompt):,} characters)"
    text = sample_text()
    return text, f"fwdtui's sample text ({len(text):,} characters)"


# The tokenizer trained last in this session, so later chapters can compare against it. Keyed
# weakly by the session: it lives exactly as long as the app's session does.
_trained: "weakref.WeakKeyDictionary[Any, TrainedTokenizer]" = weakref.WeakKeyDictionary()


def remember_trained(session: Any, tokenizer: TrainedTokenizer) -> None:
    """Keep the tokenizer just trained for the other chapters of this session."""
    _trained[session] = tokenizer


def last_trained(session: Any) -> TrainedTokenizer | None:
    """The tokenizer trained last in this session (None before any)."""
    return _trained.get(session)


def pieces_of(tokenizer: Any, ids: Sequence[int]) -> list[TokenPiece]:
    """Chip pieces for ids (a partial UTF-8 character shows as byte escapes)."""
    return [token_piece(int(i), tokenizer.token_bytes(int(i))) for i in ids]


_PARTIAL = Style(italic=True, underline=True)  # a token holding part of a character


def chip_rows(
    pieces: Sequence[TokenPiece],
    width: int,
    max_lines: int,
    highlight: Iterable[int] = (),
    max_chip: int = 14,
) -> tuple[Text, int]:
    """Tokens as one-line chips (no id row), wrapped to `width`, at most `max_lines` lines.

    Chips whose id is in `highlight` are drawn in the accent colour. Returns the text and how
    many tokens it shows (the rest did not fit).
    """
    marked = set(highlight)
    out = Text(no_wrap=True, overflow="crop")
    line_w, lines, shown = 0, 1, 0
    for i, piece in enumerate(pieces):
        label = piece.label if len(piece.label) <= max_chip else piece.label[: max_chip - 1] + "…"
        w = cell_len(label) + 1  # CJK characters and emoji take two columns
        if line_w and line_w + w > width:
            if lines >= max_lines:
                break
            out.append("\n")
            lines += 1
            line_w = 0
        if piece.id in marked:
            style = cell_style("#000000", ACCENT, bold=True)
        else:
            style = cell_style(CHIP_FG, CHIP_BACKGROUNDS[i % len(CHIP_BACKGROUNDS)])
        if piece.partial:
            style = style + _PARTIAL
        out.append(label, style=style)
        out.append(" ")
        line_w += w
        shown += 1
    return out, shown


def token_text(data: bytes) -> str:
    """A token's bytes as readable text: whitespace made visible, partial UTF-8 as \\xNN escapes."""
    return token_piece(0, data).label


def quoted(data: bytes, limit: int = 24) -> str:
    """A token between quotes for prose lines (spaces shown as ·), cut to `limit` columns."""
    label = token_text(data)
    if len(label) > limit:
        label = label[: limit - 1] + "…"
    return f"'{label}'"


def hbar_rows(
    rows: Sequence[tuple[str, float, str]],
    width: int,
    fmt: str = "{:.2f}",
    vmax: float | None = None,
    highlight: int | None = None,
    label_width: int = 14,
) -> Text:
    """Horizontal bars `label | bar | value note` for any numbers (not only probabilities)."""
    out = Text(no_wrap=True, overflow="crop")
    if not rows:
        return out
    top = vmax if vmax is not None else max(v for _, v, _ in rows)
    top = top if top > 0 else 1.0
    lw = min(label_width, max(len(label) for label, _, _ in rows))
    vw = max(len(fmt.format(v)) for _, v, _ in rows)
    nw = max(len(note) for _, _, note in rows)
    bar_w = max(4, width - lw - vw - nw - 4)
    for k, (label, value, note) in enumerate(rows):
        chosen = k == highlight
        colour = ACCENT if chosen else SEQUENTIAL[-3]
        out.append(label[:lw].rjust(lw), style="bold" if chosen else "")
        out.append(" ")
        out.append(bar_string(value / top, bar_w), style=cell_style(colour))
        out.append(" " + fmt.format(value).rjust(vw), style="bold" if chosen else "")
        if nw:
            out.append(" " + note, style=DIM)
        if k < len(rows) - 1:
            out.append("\n")
    return out


def visible(text: str, limit: int) -> str:
    """Text on one line with whitespace visible, cut to `limit` columns."""
    shown = visible_text(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def side_by_side(left: Text, right: Text, left_width: int, gap: int = 2) -> Text:
    """Two blocks of lines next to each other; the left one padded to `left_width` columns."""
    out = Text(no_wrap=True, overflow="crop")
    a, b = left.split("\n"), right.split("\n")
    for k in range(max(len(a), len(b))):
        la = a[k] if k < len(a) else Text("")
        la.truncate(left_width, overflow="crop")
        out.append_text(la)
        out.append(" " * (left_width - la.cell_len + gap))
        if k < len(b):
            out.append_text(b[k])
        if k < max(len(a), len(b)) - 1:
            out.append("\n")
    return out
