"""The token strip: a prompt's tokens as coloured chips with their ids, one selected, one pinned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from fwdtui.widgets.palette import ACCENT, CHIP_BACKGROUNDS, CHIP_FG, DIM, cell_style

_ITALIC_UNDERLINE = Style(italic=True, underline=True)  # marks a token holding part of a character
_VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def visible_text(text: str) -> str:
    """Whitespace and control characters made visible, so every token has a width on screen."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"^{chr(ord(ch) ^ 64)}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class TokenPiece:
    """One token as the strip shows it."""

    id: int
    raw: bytes  # the token's own bytes
    label: str  # what is drawn: visible text, or byte escapes for part of a character
    partial: bool  # True when the bytes are not whole UTF-8 characters
    new: bool = False  # generated rather than typed


def token_piece(token_id: int, raw: bytes, new: bool = False) -> TokenPiece:
    """Label a token from its bytes; bytes that are not valid UTF-8 alone are a partial character."""
    try:
        text = raw.decode("utf-8")
        return TokenPiece(token_id, raw, visible_text(text) or "∅", False, new)
    except UnicodeDecodeError:
        return TokenPiece(token_id, raw, "".join(f"\\x{b:02x}" for b in raw), True, new)


def pieces_for(tokenizer: Any, ids: Sequence[int], n_new: int = 0) -> list[TokenPiece]:
    """Pieces for `ids` using the tokenizer's `token_bytes`; the last `n_new` are marked generated."""
    first_new = len(ids) - n_new
    return [token_piece(int(t), tokenizer.token_bytes(int(t)), i >= first_new) for i, t in enumerate(ids)]


def short_label(piece: TokenPiece, width: int = 10) -> str:
    """A label cut to `width` columns for axes and bars."""
    label = piece.label
    return label if len(label) <= width else label[: width - 1] + "…"


@dataclass(frozen=True)
class StripLayout:
    """Which tokens fall on which line, and which page the cursor is on."""

    rows: list[list[int]]  # token indices per chip row
    page: int
    n_pages: int
    rows_per_page: int


MAX_CHIP = 16  # a single very long token is cut to this many columns


def _chip_width(piece: TokenPiece) -> int:
    return max(min(len(piece.label), MAX_CHIP), len(str(piece.id))) + 1  # +1: a gap between chips


def layout(pieces: Sequence[TokenPiece], width: int, rows_per_page: int, cursor: int) -> StripLayout:
    """Pack chips into rows of `width` columns and cut the rows into pages."""
    rows: list[list[int]] = [[]]
    used = 0
    for i, piece in enumerate(pieces):
        w = _chip_width(piece)
        if rows[-1] and used + w > width:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += w
    if not rows[-1]:
        rows.pop()
    rows_per_page = max(1, rows_per_page)
    n_pages = max(1, -(-len(rows) // rows_per_page))
    cursor_row = next((r for r, row in enumerate(rows) if cursor in row), 0)
    return StripLayout(rows, cursor_row // rows_per_page, n_pages, rows_per_page)


def describe_token(piece: TokenPiece, index: int) -> Text:
    """The detail line: position, id, text and bytes of one token."""
    text = Text()
    text.append(f"#{index} ", style="bold")
    text.append(f"id {piece.id} ", style="bold")
    text.append(repr(piece.raw.decode("utf-8", errors="replace")) if not piece.partial else piece.label)
    text.append("  bytes " + " ".join(f"{b:02x}" for b in piece.raw), style=DIM)
    text.append(f" ({len(piece.raw)})", style=DIM)
    if piece.partial:
        text.append("  part of a character: its bytes are not whole UTF-8", style="italic")
    if piece.new:
        text.append("  generated", style="italic")
    return text


def render_strip(
    pieces: Sequence[TokenPiece],
    width: int,
    height: int,
    cursor: int | None = 0,
    pinned: int | None = None,
    detail: bool = True,
) -> Text:
    """The strip as text: two lines per chip row (text, id), then the selected token's detail."""
    out = Text(no_wrap=True, overflow="crop")
    if not pieces:
        out.append("(no tokens)", style="italic")
        return out
    width = max(8, width)
    detail_lines = (1 + (pinned is not None)) if detail else 0
    rows_per_page = max(1, (height - detail_lines - 1) // 2)
    c = 0 if cursor is None else max(0, min(cursor, len(pieces) - 1))
    lay = layout(pieces, width, rows_per_page, c)
    first = lay.page * lay.rows_per_page
    for row in lay.rows[first : first + lay.rows_per_page]:
        top, bottom = Text(), Text()
        for i in row:
            piece = pieces[i]
            w = _chip_width(piece) - 1
            bg = CHIP_BACKGROUNDS[i % len(CHIP_BACKGROUNDS)]
            label = piece.label if len(piece.label) <= w else piece.label[: w - 1] + "…"
            style = cell_style(CHIP_FG, bg, bold=(cursor is not None and i == c))
            if cursor is not None and i == c:
                style = cell_style("#000000", ACCENT, bold=True)
            if piece.partial:
                style = style + _ITALIC_UNDERLINE
            top.append(label.ljust(w), style=style)
            top.append(" ")
            id_style = "bold" if (cursor is not None and i == c) else DIM
            mark = "*" if i == pinned else ""
            bottom.append((mark + str(piece.id)).ljust(w)[:w], style=id_style)
            bottom.append(" ")
        out.append_text(top)
        out.append("\n")
        out.append_text(bottom)
        out.append("\n")
    status = Text(style=DIM)
    status.append(f"{len(pieces)} tokens")
    if lay.n_pages > 1:
        status.append(f" · page {lay.page + 1}/{lay.n_pages}")
    if any(p.partial for p in pieces):
        status.append(" · underlined = part of a character")
    out.append_text(status)
    if detail and cursor is not None:
        out.append("\n")
        out.append_text(describe_token(pieces[c], c))
    if detail and pinned is not None and 0 <= pinned < len(pieces):
        out.append("\n")
        out.append("pinned ", style="bold")
        out.append_text(describe_token(pieces[pinned], pinned))
    return out


class TokenStrip(Widget, can_focus=True):
    """Tokens as chips. Left/right select, home/end jump, x pins the selected token."""

    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "jump(0)", "First token", show=False),
        Binding("end", "jump(-1)", "Last token", show=False),
        Binding("x", "pin", "Pin token", show=False, tooltip="Pin the selected token (x again unpins)"),
    ]

    DEFAULT_CSS = "TokenStrip { height: auto; min-height: 3; max-height: 12; text-wrap: nowrap; text-overflow: clip; }"

    cursor: reactive[int] = reactive(0)
    pinned: reactive[int | None] = reactive(None)

    class Selected(Message):
        """The selected token changed."""

        def __init__(self, strip: "TokenStrip", index: int) -> None:
            super().__init__()
            self.strip = strip
            self.index = index

    def __init__(self, pieces: Sequence[TokenPiece] = (), detail: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pieces: list[TokenPiece] = list(pieces)
        self.detail = detail

    def update(self, pieces: Sequence[TokenPiece], cursor: int | None = None) -> None:
        self.pieces = list(pieces)
        if cursor is not None:
            self.cursor = cursor
        self.cursor = max(0, min(self.cursor, len(self.pieces) - 1))
        if self.pinned is not None and self.pinned >= len(self.pieces):
            self.pinned = None
        self.refresh(layout=True)

    def render(self) -> Text:
        return render_strip(self.pieces, self.size.width, self.size.height, self.cursor, self.pinned, self.detail)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        lay = layout(self.pieces, width, 10_000, self.cursor) if self.pieces else None
        n_rows = len(lay.rows) if lay else 1
        return 2 * n_rows + 1 + (1 if self.detail else 0) + (self.pinned is not None)

    def watch_cursor(self, value: int) -> None:
        self.post_message(self.Selected(self, value))

    def action_move(self, delta: int) -> None:
        if self.pieces:
            self.cursor = max(0, min(len(self.pieces) - 1, self.cursor + delta))

    def action_jump(self, index: int) -> None:
        if self.pieces:
            self.cursor = index % len(self.pieces)

    def action_pin(self) -> None:
        self.pinned = None if self.pinned == self.cursor else self.cursor
        self.refresh(layout=True)
