"""The explorer's pictures: the architecture table and a vertical block diagram with data written on it.

The shared LayerDiagram (widgets/layer_diagram.py) draws the journey's path for the two families the
core runs, three lines wide; the explorer needs every published recipe (post-norms, soft-caps,
local/global layers, GPT-2 beside it) and a column of numbers per stage, so it draws its own
diagram here, in the same palette.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable

from rich.text import Text

from fwdtui.core.architectures import (
    RECIPE,
    Architecture,
    architecture,
    count_arch_params,
    differs,
    flops_per_token,
    kv_bytes_per_token,
    kv_cache_bytes,
)
from fwdtui.widgets.palette import ACCENT, DIM, SEQUENTIAL, cell_style

FLOW = SEQUENTIAL[8]
GPT2 = architecture("gpt2")
DIFF_MARK = "◆"  # marks a differing stage without colour too


# --------------------------------------------------------------------------------------------
# numbers as short strings
# --------------------------------------------------------------------------------------------


def fmt_count(n: float) -> str:
    """124439808 -> '124M', 8030261248 -> '8.03B'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{n:.0f}"


def fmt_tokens(n: int) -> str:
    """A context length: 131072 -> '128k', 1024 -> '1k' (powers of two, as contexts are)."""
    return f"{round(n / 1024)}k" if n >= 1024 else str(n)


def fmt_vocab(n: int) -> str:
    """A vocabulary size, as people quote it: 50257 -> '50k', 128256 -> '128k'."""
    return f"{round(n / 1000)}k" if n >= 1000 else str(n)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def fmt_theta(theta: float) -> str:
    if theta >= 1e6:
        return f"{theta / 1e6:g}M"
    return f"{theta / 1e3:g}k" if theta >= 1e3 else f"{theta:g}"


def norm_short(arch: Architecture) -> str:
    if arch.norm == "LayerNorm":
        return "LN"
    return "RMS×2" if arch.post_norms else "RMS"


def position_short(arch: Architecture) -> str:
    if arch.position == "learned":
        return "learned"
    if arch.rope_scaling_kind:
        if arch.rope_scaling_kind.startswith("longrope"):
            return "RoPE su"
        return f"RoPE {fmt_theta(arch.config.rope_theta)}+"
    return f"RoPE {fmt_theta(arch.config.rope_theta)}"


def attention_short(arch: Architecture) -> str:
    cfg = arch.config
    kind = f"{arch.attention_kind} {cfg.n_head}" if arch.attention_kind == "MHA" else \
        f"{arch.attention_kind} {cfg.n_head}:{cfg.n_kv_head}"
    windows = [w for w in arch.layer_windows if w is not None]
    if windows:
        kind += " SWA" if len(windows) == cfg.n_layer else " L/G"
    return kind


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    cell: Callable[[Architecture], str]
    left: bool = False


COLUMN_GROUPS: dict[str, tuple[Column, ...]] = {
    "shape": (
        Column("layers", 6, lambda a: str(a.config.n_layer)),
        Column("d_model", 7, lambda a: str(a.config.n_embd)),
        Column("heads q/kv", 10, lambda a: f"{a.config.n_head}/{a.config.n_kv_head}"),
        Column("head_dim", 8, lambda a: str(a.config.head_dim)),
        Column("FFN", 12, lambda a: f"{a.mlp} {a.config.n_inner}", left=True),
    ),
    "recipe": (
        Column("norm", 5, norm_short, left=True),
        Column("position", 10, position_short, left=True),
        Column("attention", 12, attention_short, left=True),
        Column("vocab", 6, lambda a: fmt_vocab(a.config.vocab_size)),
        Column("context", 7, lambda a: fmt_tokens(a.config.n_ctx)),
    ),
    "cost": (
        Column("params", 7, lambda a: fmt_count(count_arch_params(a))),
        Column("card", 6, lambda a: a.published_label or "-"),
        Column("Δ", 6, lambda a: f"{100 * (count_arch_params(a) / a.published_params - 1):+.1f}%"
               if a.published_params else "-"),
        Column("KV/token", 8, lambda a: fmt_bytes(kv_bytes_per_token(a))),
        Column("KV @4k", 8, lambda a: fmt_bytes(kv_cache_bytes(a, 4096))),
        Column("GFLOP", 6, lambda a: f"{flops_per_token(a, 4096) / 1e9:.3g}"),
    ),
}
GROUP_ORDER = tuple(COLUMN_GROUPS)

NAME_WIDTH = 13


def table_groups(first: str, width: int) -> list[str]:
    """The column groups shown: `first`, then the next ones (in turn) while they fit the width."""
    start = GROUP_ORDER.index(first)
    groups: list[str] = []
    used = 2 + NAME_WIDTH
    for i in range(len(GROUP_ORDER)):
        name = GROUP_ORDER[(start + i) % len(GROUP_ORDER)]
        need = sum(c.width + 1 for c in COLUMN_GROUPS[name])
        if groups and used + need > width:
            break
        groups.append(name)
        used += need
    return groups


def table_columns(first: str, width: int) -> tuple[Column, ...]:
    return tuple(c for g in table_groups(first, width) for c in COLUMN_GROUPS[g])


def render_table(archs: list[Architecture], selected: int, view: str, width: int, max_rows: int | None = None) -> Text:
    """The architectures as rows, the selected one marked; at most `max_rows` rows, kept around the selection."""
    columns = table_columns(view, width)
    out = Text(no_wrap=True, overflow="crop")
    out.append("  " + "model".ljust(NAME_WIDTH), style="bold")
    for col in columns:
        out.append(" " + (col.title.ljust(col.width) if col.left else col.title.rjust(col.width)), style="bold")
    out.append("\n")
    start, stop = 0, len(archs)
    if max_rows is not None and len(archs) > max_rows:
        start = max(0, min(selected - max_rows // 2, len(archs) - max_rows))
        stop = start + max_rows
    for i in range(start, stop):
        arch = archs[i]
        chosen = i == selected
        row_style = cell_style(ACCENT, bold=True) if chosen else None
        out.append("▶ " if chosen else "  ", style=row_style or "")
        name = arch.name if len(arch.name) <= NAME_WIDTH else arch.name[: NAME_WIDTH - 1] + "…"
        out.append(name.ljust(NAME_WIDTH), style=row_style or "")
        for col in columns:
            value = col.cell(arch)
            value = value if len(value) <= col.width else value[: col.width - 1] + "…"
            out.append(" " + (value.ljust(col.width) if col.left else value.rjust(col.width)), style=row_style or "")
        out.append("\n")
    if start or stop < len(archs):
        out.append(f"  rows {start + 1}-{stop} of {len(archs)}\n", style=DIM)
    return out


# --------------------------------------------------------------------------------------------
# the block diagram
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One line of the diagram: a part key, its label, what it is in this architecture, the tensor after it."""

    part: str
    label: str
    what: str
    shape: str = ""
    in_block: bool = False
    mark: str = "▼"


def stages(arch: Architecture) -> list[Stage]:
    """The stages data passes through, top to bottom, described from the config."""
    cfg = arch.config
    d, v, f = cfg.n_embd, cfg.vocab_size, cfg.n_inner
    norm = arch.norm
    out = [Stage("tokens", "tokens", f"ids below {v:,}", "[n]", mark="•")]
    out.append(Stage("embed", "embedding", f"lookup in {v:,}×{d}" + (f" · ×√{d}" if arch.embed_scale else ""),
                     f"[n, {d}]"))
    if arch.position == "learned":
        out.append(Stage("pos", "positions", f"learned table {cfg.n_ctx:,}×{d}, added", f"[n, {d}]", mark="+"))
    else:
        out.append(Stage("pos", "positions", "none: RoPE rotates q, k in attention", "", mark="·"))
    heads = (f"{cfg.n_head} heads×{cfg.head_dim}" if arch.attention_kind == "MHA"
             else f"{arch.attention_kind} {cfg.n_head}q:{cfg.n_kv_head}kv ×{cfg.head_dim}")
    extras = []
    if arch.position == "rope":
        scaling = arch.config.rope_scaling or {}
        extras.append(f"RoPE ×{scaling['factor']:g}" if "factor" in scaling else
                      "RoPE su" if arch.rope_scaling_kind else "RoPE")
    windows = {w for w in arch.layer_windows if w is not None}
    if windows:
        w = min(windows)
        extras.append(f"local {w}/global" if None in arch.layer_windows else f"window {w}")
    if arch.attn_softcap:
        extras.append(f"cap {arch.attn_softcap:g}")
    if arch.fused_qkv:
        extras.append("fused qkv")
    if cfg.attn_bias and arch.position == "rope":
        extras.append("qkv bias")
    attn_what = " · ".join([heads] + extras)
    out.append(Stage("ln1", norm, "normalise each token's vector", f"[n, {d}]", True))
    out.append(Stage("attn", "attention", attn_what, f"[n, {d}]", True))
    if arch.post_norms:
        out.append(Stage("post1", norm, "post-norm of the attention output", f"[n, {d}]", True))
    out.append(Stage("resid1", "add", "x = x + attention(x)", f"[n, {d}]", True, mark="⊕"))
    out.append(Stage("ln2", norm, "normalise again", f"[n, {d}]", True))
    if arch.mlp == "GELU":
        mlp_what = f"GELU {d}→{f}→{d}"
    else:
        mlp_what = f"{arch.mlp} {d}→2×{f}→{d}" + (" · fused" if arch.fused_gate_up else "")
    out.append(Stage("mlp", "MLP", mlp_what, f"[n, {d}]", True))
    if arch.post_norms:
        out.append(Stage("post2", norm, "post-norm of the MLP output", f"[n, {d}]", True))
    out.append(Stage("resid2", "add", "x = x + mlp(x)", f"[n, {d}]", True, mark="⊕"))
    out.append(Stage("final_norm", f"final {norm}", "once, after the last block", f"[n, {d}]"))
    out.append(Stage("unembed", "unembedding", "the embedding table again (tied)" if cfg.tie_word_embeddings
                     else f"its own {d}×{v:,} matrix", f"[n, {v:,}]"))
    out.append(Stage("logits", "logits", f"soft-capped at {arch.final_softcap:g}" if arch.final_softcap
                     else "softmax → next-token probabilities", f"[n, {v:,}]", mark="•"))
    return out


def _gpt2_what() -> dict[str, str]:
    """GPT-2's version of each part, for the comparison column."""
    theirs = {s.part: s.what for s in stages(GPT2)}
    theirs.update({"ln1": "LayerNorm (scale and bias)", "ln2": "LayerNorm (scale and bias)",
                   "final_norm": "LayerNorm", "attn": "MHA " + theirs["attn"] + " · biases",
                   "mlp": theirs["mlp"] + " · biases", "unembed": "tied to the embedding",
                   "resid1": "same", "resid2": "same"})
    return theirs


def render_block_diagram(arch: Architecture, width: int, notes: dict[str, str] | None = None,
                         block_title: str | None = None, compare: bool = True, lit: str | None = None) -> Text:
    """The architecture top to bottom; parts that differ from GPT-2 in orange with ◆.

    `notes` replaces the shape column per part (the live chapter writes measured numbers there);
    `compare` adds GPT-2's version of each part in a dim column when the width allows; `lit` is a
    part drawn reversed (the one the reader has selected).
    """
    cfg = arch.config
    changed = differs(arch) if arch.key != "gpt2" else set()
    gpt2 = _gpt2_what() if compare and arch.key != "gpt2" else {}
    all_stages = stages(arch)
    label_w = max(len(s.label) for s in all_stages)
    what_w = max(len(s.what) for s in all_stages)
    notes = notes or {}
    note_w = max(len(notes.get(s.part, s.shape)) for s in all_stages)
    note_w = min(note_w, max(10, width // 3))
    fixed = 5 + label_w + 2  # gutter, mark, space, label, gap
    # on a narrow screen drop the GPT-2 column first, then wrap the descriptions
    room = width - (fixed + what_w + 2 + note_w + 3)
    gpt2_w = min(30, room) if gpt2 and room >= 18 else 0
    what_w = max(12, min(what_w, width - fixed - note_w - 2 - (gpt2_w + 3 if gpt2_w else 0)))
    out = Text(no_wrap=True, overflow="crop")
    if gpt2_w:
        header = " " * (fixed + what_w + 2 + note_w) + " │ " + "GPT-2"
        out.append(header + "\n", style=DIM)
    inner_w = fixed + what_w + 2 + note_w
    opened = False
    for stage in all_stages:
        if stage.in_block != opened:
            opened = stage.in_block
            title = block_title or f"block ×{cfg.n_layer}"
            line = (" ┌─ " + title + " " if opened else " └").ljust(inner_w, "─")
            out.append(line, style=FLOW)
            out.append(" │\n" if gpt2_w else "\n", style=DIM)
        is_diff = stage.part in changed or (stage.part in ("post1", "post2") and arch.key != "gpt2")
        style = cell_style(ACCENT) if is_diff else ""
        gutter = " │ " if stage.in_block else "   "
        out.append(gutter, style=FLOW)
        out.append(DIFF_MARK if is_diff else stage.mark, style=cell_style(ACCENT) if is_diff else cell_style(FLOW))
        out.append(" ")
        label_style = (cell_style("#000000", ACCENT, bold=True) if stage.part == lit
                       else cell_style(ACCENT, bold=True) if is_diff else "bold")
        out.append(stage.label.ljust(label_w), style=label_style)
        out.append("  ")
        lines = textwrap.wrap(stage.what, what_w) or [""]
        out.append(lines[0].ljust(what_w), style=style)
        out.append("  ")
        note = notes.get(stage.part, stage.shape)
        note = note if len(note) <= note_w else note[: note_w - 1] + "…"
        out.append(note.ljust(note_w), style="" if stage.part in notes else DIM)
        if gpt2_w:
            theirs = gpt2.get(stage.part, "(none)")
            theirs = theirs if len(theirs) <= gpt2_w else theirs[: gpt2_w - 1] + "…"
            out.append(" │ ", style=DIM)
            out.append(theirs, style=DIM)
        out.append("\n")
        for more in lines[1:]:  # a long description continues under itself
            out.append(gutter, style=FLOW)
            out.append(" " * (2 + label_w + 2))
            out.append(more.ljust(what_w), style=style)
            out.append(" " * (2 + note_w) + (" │" if gpt2_w else ""), style=DIM)
            out.append("\n")
    return out


# --------------------------------------------------------------------------------------------
# the recipe matrix
# --------------------------------------------------------------------------------------------


def render_recipe(archs: list[Architecture], width: int) -> Text:
    """Ingredients as rows, one model per lineage as columns, ✓ where the model uses it, and why."""
    picked: list[Architecture] = []
    for arch in archs:  # the first (smallest-numbered) model of each family stands for it
        if all(p.lineage != arch.lineage for p in picked) and arch.published_params:
            picked.append(arch)
    heads = [a.lineage for a in picked]
    col_w = max(len(h) for h in heads) + 1
    name_w = max(len(r.name) for r in RECIPE) + 1
    why_room = width - name_w - col_w * len(picked) - 2
    out = Text(no_wrap=True, overflow="crop")
    out.append(" " * name_w)
    for h in heads:
        out.append(h.rjust(col_w), style="bold")
    out.append("\n")
    for item in RECIPE:
        out.append(item.name.ljust(name_w))
        for arch in picked:
            used = item.uses(arch)
            out.append(("✓" if used else "·").rjust(col_w), style=cell_style(ACCENT, bold=True) if used else DIM)
        if why_room >= 16:
            why = item.why if len(item.why) <= why_room else item.why[: why_room - 1] + "…"
            out.append("  " + why, style=DIM)
        out.append("\n")
    family_line = "one model per family: " + ", ".join(a.name for a in picked)
    out.append("\n".join(textwrap.wrap(family_line, max(20, width - 1))), style=DIM)
    return out
