"""What the attention chapters share: small pattern tiles, token labels, and the layer / head / token keys."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.widgets.palette import ACCENT, DIM, MASKED, cell_style, colours_for
from fwdtui.widgets.token_strip import pieces_for, short_label

def token_labels(model: Any, ids: Sequence[int], width: int = 8) -> list[str]:
    """Short visible labels for token ids (spaces shown as ·, partial characters as byte escapes)."""
    return [short_label(p, width) for p in pieces_for(model.tokenizer, list(ids))]


def mini_pattern(pattern: np.ndarray, width: int, height: int, title: str = "", highlight: bool = False,
                 vmax: float = 1.0) -> list[Text]:
    """A tiny attention-pattern tile (half blocks: two query rows per line), for showing many heads at once.

    The shared Heatmap draws one matrix with axes and legend; a grid of nine heads needs tiles of a
    few cells each, so this is a small renderer of its own (same palette). Returns `height` lines.
    """
    n = pattern.shape[0]
    lines: list[Text] = []
    title_line = Text(title[:width].ljust(width), style=f"bold {ACCENT}" if highlight else "bold")
    lines.append(title_line)
    rows = max(1, height - 1)
    cols = max(1, width)
    # sample the (possibly long) sequence down to the tile: nearest rows / cols, keeping the last ones
    r_idx = np.unique(np.linspace(0, n - 1, min(n, rows * 2)).round().astype(int))
    c_idx = np.unique(np.linspace(0, n - 1, min(n, cols)).round().astype(int))
    sub = pattern[np.ix_(r_idx, c_idx)]
    future = c_idx[None, :] > r_idx[:, None]
    colours = colours_for(np.sqrt(np.clip(sub, 0, None)), 0.0, np.sqrt(vmax), "sequential")  # sqrt: small weights stay visible
    for r in range(0, len(r_idx), 2):
        line = Text()
        for c in range(len(c_idx)):
            top = MASKED if future[r, c] else colours[r, c]
            bottom = None
            if r + 1 < len(r_idx):
                bottom = MASKED if future[r + 1, c] else colours[r + 1, c]
            line.append("▀", style=cell_style(top, bottom))
        line.append(" " * (width - len(c_idx)))
        lines.append(line)
    while len(lines) < height:
        lines.append(Text(" " * width))
    return lines[:height]


def tile_grid(tiles: list[list[Text]], width: int, gap: int = 2) -> Text:
    """Lay equal-height tiles (lists of lines) left to right, wrapping to as many rows as needed."""
    out = Text(no_wrap=True, overflow="crop")
    if not tiles:
        return out
    tile_w = max(t.cell_len for t in tiles[0])
    per_row = max(1, (width + gap) // (tile_w + gap))
    for start in range(0, len(tiles), per_row):
        group = tiles[start:start + per_row]
        for i in range(len(group[0])):
            for j, tile in enumerate(group):
                if j:
                    out.append(" " * gap)
                out.append_text(tile[i])
            out.append("\n")
    out.rstrip()
    return out


def dim(text: str) -> Text:
    return Text(text, style=DIM)


def para(text: str, width: int, style: str = "") -> Text:
    """Prose wrapped to `width` (the canvas never wraps by itself), ending with a newline."""
    import textwrap

    lines = textwrap.wrap(text, max(20, width - 1)) or [""]
    return Text("\n".join(lines) + "\n", style=style or "")


def dim_para(text: str, width: int) -> Text:
    return para(text, width, DIM)


NAV_BINDINGS = [
    Binding("l", "layer(1)", "Layer+", show=False, tooltip="Next layer"),
    Binding("L", "layer(-1)", "Layer-", show=False, tooltip="Previous layer"),
    Binding("h", "head(1)", "Head+", show=False, tooltip="Next head"),
    Binding("H", "head(-1)", "Head-", show=False, tooltip="Previous head"),
    Binding("right", "token(1)", "Token+", show=False, priority=True, tooltip="Next query token"),
    Binding("left", "token(-1)", "Token-", show=False, priority=True, tooltip="Previous query token"),
    Binding("full_stop", "token(1)", "Token+", show=False, key_display=".", tooltip="Next query token"),
    Binding("comma", "token(-1)", "Token-", show=False, key_display=",", tooltip="Previous query token"),
]


class NavMixin:
    """Layer / head / query-token selection shared by the chapters that look at one head.

    `self.layer_index`, `self.head_index` and `self.token_index` are plain attributes; `token = -1` means the last
    token. Subclasses say whether a change needs new numbers (`NAV_RECOMPUTE`) or only a redraw.
    """

    NAV_RECOMPUTE: tuple[str, ...] = ()  # which of "layer", "head", "token" need a recompute

    layer_index: int = 0
    head_index: int = 0
    token_index: int = -1  # -1: the last token

    def _dims(self) -> tuple[int, int, int]:
        model = self.session.model  # type: ignore[attr-defined]
        if model is None:
            return 1, 1, 1
        n_tok = max(1, len(getattr(self.result, "ids", ()) or ()))  # type: ignore[attr-defined]
        return model.config.n_layer, model.config.n_head, n_tok

    def _changed(self, what: str) -> None:
        if what in self.NAV_RECOMPUTE:
            self.recompute()  # type: ignore[attr-defined]
        else:
            self.redraw()  # type: ignore[attr-defined]

    def action_layer(self, delta: int) -> None:
        n_layer, _, _ = self._dims()
        self.layer_index = (self.layer_index + delta) % n_layer
        self._changed("layer")

    def action_head(self, delta: int) -> None:
        _, n_head, _ = self._dims()
        self.head_index = (self.head_index + delta) % n_head
        self._changed("head")

    def action_token(self, delta: int) -> None:
        _, _, n_tok = self._dims()
        current = self.token_index % n_tok
        self.token_index = max(0, min(n_tok - 1, current + delta))
        self._changed("token")

    def clamp_nav(self, n_layer: int, n_head: int, n_tok: int) -> tuple[int, int, int]:
        """Keep the selection valid after the model or prompt changed; returns (layer, head, token index)."""
        self.layer_index = min(self.layer_index, n_layer - 1)
        self.head_index = min(self.head_index, n_head - 1)
        token = self.token_index if self.token_index >= 0 else n_tok + self.token_index
        return self.layer_index, self.head_index, max(0, min(token, n_tok - 1))


NAV_HINT = "l/L layer · h/H head · ←/→ token"


def with_hint(line: Text, width: int, hint: str = NAV_HINT) -> Text:
    """`line` with the keys that change it right-aligned after it, when they fit in `width`."""
    if line.cell_len + len(hint) + 3 <= width:
        line.append(" " * (width - line.cell_len - len(hint) - 1))
        line.append(hint, style=DIM)
    return line


__all__ = [
    "NAV_BINDINGS", "NAV_HINT", "NavMixin", "dim", "dim_para", "mini_pattern", "para", "tile_grid", "token_labels",
    "with_hint",
]
