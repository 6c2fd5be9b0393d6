"""The lookup table: a token id selects one row of the loaded model's embedding matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, fmt_bytes, keys_line, label
from fwdtui.core import embedding_lab, gpt2
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import ACCENT
from fwdtui.widgets.vector_strip import render_vector


ONE_HOT_CHECKS = 32  # tokens whose one-hot product is computed and compared


@dataclass(frozen=True)
class LookupResult:
    ids: tuple[int, ...]
    labels: tuple[str, ...]
    table_name: str
    n_vocab: int
    n_embd: int
    table_bytes: int
    n_params: int
    rows: np.ndarray  # [n_seq, n_embd] table[ids]
    one_hot_diff: np.ndarray  # [min(n_seq, ONE_HOT_CHECKS)] max |one-hot @ table - table[id]| per token
    trace_diff: float  # max |table[ids] - trace["embed"]| over the prompt
    pos_rows: np.ndarray | None  # [n_seq, n_embd] GPT-2's position vectors, None for RoPE models
    scale: float  # one colour scale for every strip, so rows can be compared by eye


@register
class LookupChapter(Picture, Chapter):
    ID = "embeddings.lookup"
    PICTURE = "lookup"
    SECTION = "embeddings"
    TITLE = "The lookup table"
    SUMMARY = "A token id selects one row of a matrix: the first thing the model does with your prompt."
    EXPLANATION = """
The tokenizer turns text into **ids**, whole numbers. The model's first step is the simplest one in
it: each id picks its **row** of a big table, the embedding matrix (one row per vocabulary entry).
That row is the token's starting vector; everything later reads and adds to it. Picking a row is the
same as multiplying a **one-hot** vector (all zeros, a single 1 at the id) by the matrix, which is
why the table is an ordinary weight trained by gradient descent. The same id always gives the same
row: context only arrives later, through attention.
"""
    CODE_FUNCTIONS = (gpt2.embed, embedding_lab.embedding_matrix, embedding_lab.one_hot_lookup)

    BINDINGS = [
        Binding("right", "token(1)", "Token+", priority=True, tooltip="Look up the next token of the prompt"),
        Binding("left", "token(-1)", "Token-", priority=True, tooltip="Look up the previous token of the prompt"),
        Binding("full_stop", "token(1)", "Token+", show=False, key_display=".", tooltip="Next token"),
        Binding("comma", "token(-1)", "Token-", show=False, key_display=",", tooltip="Previous token"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.token_index = 0

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> LookupResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)
        table = embedding_lab.embedding_matrix(model)  # [n_vocab, n_embd]
        rows = table[ids]  # [n_seq, n_embd]: the lookup itself
        # each one-hot product touches the whole table: check the first tokens only, long prompts stay quick
        one_hot_diff = np.array([np.max(np.abs(embedding_lab.one_hot_lookup(table, t) - table[t]))
                                 for t in ids[:ONE_HOT_CHECKS]])
        trace = model.trace(ids)
        trace_diff = float(np.max(np.abs(rows - trace["embed"])))
        pos_rows = model.weights["wpe.weight"][: len(ids)] if "wpe.weight" in model.weights else None
        scale = float(np.percentile(np.abs(rows), 99)) or 1.0
        name = "wte.weight" if "wte.weight" in model.weights else "embed_tokens.weight"
        return LookupResult(tuple(ids), tuple(label(model.tokenizer, t, 10) for t in ids), name, table.shape[0],
                            table.shape[1], int(table.size * 4), model.n_params, rows, one_hot_diff, trace_diff,
                            pos_rows, scale)

    def action_token(self, delta: int) -> None:
        n = len(self.result.ids) if self.result else 1
        self.token_index = max(0, min(n - 1, self.token_index + delta))
        self.redraw()

    def draw(self, result: LookupResult) -> None:
        self.token_index = min(self.token_index, len(result.ids) - 1)
        self.update_breadcrumb(f"token #{self.token_index} of {len(result.ids)}")
        self.picture_canvas().show(lambda width: self._picture(result, self.token_index, width))

    def _picture(self, r: LookupResult, i: int, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"{r.table_name}", style="bold")
        out.append(f": {r.n_vocab:,} rows × {r.n_embd} numbers · float32 · {fmt_bytes(r.table_bytes)}\n")
        out.append_text(dim(f"one row per vocabulary entry; {r.n_vocab * r.n_embd / max(1, r.n_params):.0%} "
                            f"of the model's {r.n_params / 1e6:.1f}M weights\n" if r.n_params >= 1e6 else
                            f"of the model's {r.n_params:,} weights\n"))
        tid = r.ids[i]
        line = Text()
        line.append(f"token #{i} ")
        line.append(f"'{r.labels[i]}'", style=f"bold {ACCENT}")
        line.append(f" → id {tid} → row {tid} of the table")
        out.append_text(line)
        out.append("\n")
        out.append_text(render_vector(r.rows[i], width, "row   ", scale=r.scale, stats=False))
        out.append("\n")
        row = r.rows[i]
        out.append_text(dim(f"       {r.n_embd} numbers · length {np.linalg.norm(row):.2f} · "
                            f"min {row.min():+.3f} · max {row.max():+.3f}\n"))
        one_hot = Text("[0…0 ")
        one_hot.append("1", style=f"bold {ACCENT}")
        if i < len(r.one_hot_diff):
            one_hot.append(f" 0…0] @ table (one-hot, 1 at {tid}) = the row: max |difference| {r.one_hot_diff[i]:.1g}\n")
        else:
            one_hot.append(f" 0…0] @ table = the row (checked on the first {len(r.one_hot_diff)} tokens:"
                           f" max |difference| {r.one_hot_diff.max():.1g})\n")
        out.append_text(one_hot)
        out.append_text(dim(f"trace['embed'] = these rows: max |difference| {r.trace_diff:.1g}\n"))
        if r.pos_rows is not None:
            out.append_text(dim(f"GPT-2 then adds row {i} of wpe.weight (a learned position):\n"))
            out.append_text(render_vector(r.pos_rows[i], width, "pos   ", scale=r.scale, stats=False))
            out.append("\n")
        else:
            out.append_text(dim("no position row is added: this model rotates queries and keys (RoPE)\n"))
        out.append_text(keys_line("←/→ choose a token"))
        out.append("\nThe prompt's rows", style="bold")
        out.append_text(dim("  (a repeated id gives exactly the same row)\n"))
        first_seen: dict[int, int] = {}
        for j, (t, name) in enumerate(zip(r.ids, r.labels)):
            head = f"{'▶' if j == i else ' '}#{j:<3} {name:<10} {t:>6} "
            same = first_seen.setdefault(t, j)
            strip = render_vector(r.rows[j], max(20, width - len(head) - 12), "", scale=r.scale, stats=False)
            out.append(head, style=f"bold {ACCENT}" if j == i else "")
            out.append_text(strip)
            if same != j:
                out.append_text(dim(f" = #{same}"))
            out.append("\n")
        return out
