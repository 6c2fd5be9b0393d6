"""The stages of the journey: for each, a title with shapes, a few sentences, its code, and its picture.

Every number drawn here is read from the Trace of the forward pass (or from the core's own
sampling and logit-lens functions); nothing here computes the model a second way.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from rich.text import Text

from fwdtui.core import gpt2, llama, ops, sampling
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.model import Model
from fwdtui.core.trace import Trace
from fwdtui.prompt import prepare_prompt
from fwdtui.widgets.bar_chart import Bar, render_bars
from fwdtui.widgets.heatmap import HeatmapData, render_heatmap
from fwdtui.widgets.palette import ACCENT, DIM
from fwdtui.widgets.token_strip import TokenPiece, render_strip, short_label
from fwdtui.widgets.vector_strip import render_vector, vector_stats


@dataclass(frozen=True)
class LensRow:
    """The logit lens at one depth: the top guesses read off the residual stream."""

    depth: str  # "embedding", "block 0", ...
    tokens: tuple[int, ...]
    probs: tuple[float, ...]


@dataclass
class View:
    """Everything a stage draws from: the prefill Trace plus the journey's playground state."""

    model: Model
    trace: Trace
    pieces: list[TokenPiece]  # the prompt's tokens
    position: int  # the selected token (row of the trace)
    layer: int
    head: int
    settings: sampling.SamplingSettings
    last_logits: np.ndarray  # [n_vocab]: logits of the newest position (prompt end or last generated)
    distribution: np.ndarray  # [n_vocab]: what the sampler draws from with `settings`
    chosen: int  # the token the sampler picked from `distribution`
    seed: int
    generated: list[TokenPiece] = field(default_factory=list)
    cache: KVCache | None = None
    decode_traces: list[Trace] = field(default_factory=list)
    lens: list[LensRow] | None = None  # for `position`; None while computing
    trust: str = ""  # how this model's logits compare with a stored reference

    @property
    def cfg(self) -> Any:
        return self.model.config

    @property
    def family(self) -> str:
        return self.model.config.family

    @property
    def n_seq(self) -> int:
        return len(self.pieces)

    def piece_text(self, token: int) -> str:
        tok = self.model.tokenizer
        from fwdtui.widgets.token_strip import token_piece

        return token_piece(token, tok.token_bytes(int(token))).label

    def selected_label(self) -> str:
        return self.pieces[self.position].label


def quoted(label: str) -> str:
    """A token label in quotes (labels already show escapes, so no repr)."""
    return f"'{label}'"


def shape(a: np.ndarray) -> str:
    return "[" + ", ".join(str(d) for d in a.shape) + "]"


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first."""
    k = min(k, values.size)
    idx = np.argpartition(-values, k - 1)[:k]
    return idx[np.argsort(-values[idx], kind="stable")]


def _vector_rows(rows: list[tuple[str, np.ndarray]], width: int, scale: float | None = None) -> Text:
    """Several vectors under each other on one colour scale, each with its norm."""
    out = Text(no_wrap=True, overflow="crop")
    label_w = max(len(label) for label, _ in rows)
    m = scale if scale is not None else max(float(np.max(np.abs(v))) for _, v in rows) or 1.0
    for i, (label, vec) in enumerate(rows):
        body = render_vector(vec, max(10, width - 12), label.rjust(label_w), scale=m, stats=False)
        out.append_text(body)
        out.append(f" ‖{np.linalg.norm(vec):.2f}‖", style=DIM)
        if i < len(rows) - 1:
            out.append("\n")
    return out


def _stats_line(label: str, vec: np.ndarray) -> Text:
    s = vector_stats(vec)
    text = Text()
    text.append(f"{label}: ", style="bold")
    text.append(f"mean {s.mean:+.3f} · std {float(np.std(vec)):.3f} · ‖x‖ {s.norm:.3f} · "
                f"min {s.min:+.3f} @{s.argmin} · max {s.max:+.3f} @{s.argmax}")
    return text


def describe_head(pattern: np.ndarray) -> str:
    """Name what a head does from its pattern [n_seq, n_k] (the last n_seq keys are the prompt's)."""
    n_seq = pattern.shape[0]
    if n_seq < 3:
        return "With so few tokens every head has little choice; type a longer prompt (p) to see patterns."
    offset = pattern.shape[1] - n_seq
    rows = np.arange(1, n_seq)
    prev = float(np.mean(pattern[rows, rows + offset - 1]))
    first = float(np.mean(pattern[rows, 0]))
    own = float(np.mean(pattern[rows, rows + offset]))
    if prev > 0.4:
        return f"This head mostly looks at the previous token ({prev:.0%} of its attention on average)."
    if first > 0.5:
        return (f"This head mostly looks at the first token ({first:.0%}): an 'attention sink', where a "
                "head rests when nothing else is relevant.")
    if own > 0.5:
        return f"This head mostly looks at the token itself ({own:.0%})."
    return (f"This head spreads its attention: previous token {prev:.0%}, first token {first:.0%}, "
            f"itself {own:.0%} on average.")


# ---------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------

Painter = Callable[[View, int, int], Text]


@dataclass(frozen=True)
class Stage:
    key: str  # unique
    diagram: str  # the layer diagram's stage key
    title: Callable[[View], str]
    explain: Callable[[View], str]
    code: Callable[[View], tuple[Callable[..., Any], ...]]
    paint: Painter
    in_block: bool = False


def _family(view: View, gpt: Any, lla: Any) -> Any:
    return gpt if view.family == "gpt2" else lla


# --- text ---------------------------------------------------------------------------------------


def _paint_text(view: View, width: int, height: int) -> Text:
    text = view.model.tokenizer.decode([p.id for p in view.pieces])
    raw = text.encode("utf-8", errors="replace")
    out = Text()
    out.append("“", style=DIM)
    out.append(text)
    out.append("”\n\n", style=DIM)
    out.append(f"{len(text)} characters, {len(raw)} bytes of UTF-8.\n", style="bold")
    out.append("The model never sees these letters: the next stage turns them into token ids.", style=DIM)
    return out


# --- tokens -------------------------------------------------------------------------------------


def _paint_tokens(view: View, width: int, height: int) -> Text:
    out = render_strip(view.pieces, width, height - 1, cursor=view.position)
    tok = view.model.tokenizer
    out.append("\n")
    out.append(f"tokenizer {getattr(tok, 'name', type(tok).__name__)} · vocabulary {view.cfg.vocab_size} · "
               f"{len(view.pieces)} tokens", style=DIM)
    return out


# --- embeddings ---------------------------------------------------------------------------------


def _token_rows(view: View, name: str, height: int) -> list[tuple[str, np.ndarray]]:
    """Rows of a [n_seq, n] trace entry around the selected position, labelled by token."""
    data = view.trace[name]
    n = max(1, height)
    start = max(0, min(view.position - n // 2, view.n_seq - n))
    rows = []
    for i in range(start, min(view.n_seq, start + n)):
        mark = "▶" if i == view.position else " "
        rows.append((f"{mark}{short_label(view.pieces[i], 10)}", data[i]))
    return rows


def _paint_embed(view: View, width: int, height: int) -> Text:
    emb = view.trace["embed"]
    wte = "wte.weight" if view.family == "gpt2" else "embed_tokens.weight"
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"row {view.pieces[view.position].id} of {wte} {shape(view.model.weights[wte])}"
               f" → embed[{view.position}]\n", style="bold")
    out.append_text(_vector_rows(_token_rows(view, "embed", height - 4), width))
    out.append("\n")
    out.append_text(_stats_line(f"embed[{view.position}]", emb[view.position]))
    out.append("\nblue negative · orange positive · brighter = larger", style=DIM)
    return out


# --- positions ------------------------------------------------------------------------------------


def _paint_pos(view: View, width: int, height: int) -> Text:
    out = Text(no_wrap=True, overflow="crop")
    i = view.position
    if view.family == "gpt2":
        tok, pos = view.trace["embed"][i], view.trace["pos_embed"][i]
        x = view.trace["blocks.0.resid_pre"][i]
        out.append(f"token {i} {quoted(view.selected_label())}: x = embed[{i}] + pos_embed[{i}]\n", style="bold")
        out.append_text(_vector_rows([("embed", tok), ("+ position", pos), ("= x", x)], width))
        out.append("\n")
        diff = float(np.max(np.abs(tok + pos - x)))
        out.append(f"max |embed + pos_embed − x| = {diff:.1e} (the sum really is the input)\n",
                   style=DIM)
        pos_all = view.trace["pos_embed"]  # [n_seq, n_embd]
        used = 6
        if view.n_seq > 1 and height - used >= 6:
            # cosine similarity of every position vector with every other: neighbours look alike
            unit = pos_all / np.maximum(np.linalg.norm(pos_all, axis=1, keepdims=True), 1e-12)
            labels = tuple(str(int(p)) for p in view.trace.positions)
            data = HeatmapData(unit @ unit.T, labels, labels, palette="diverging", vmin=-1.0, vmax=1.0,
                               title="cosine similarity of the position vectors (read from the trace)",
                               row_name="position", col_name="position", fmt="{:+.3f}")
            out.append("\n")
            out.append_text(render_heatmap(data, width, height - used, cursor=(i, max(0, i - 1))))
        return out
    # Llama: rotary. Compare q before and after rotation for the selected token, layer 0, head 0.
    q = view.trace["blocks.0.attn.q"][view.head % view.cfg.n_head, i]
    q_rot = view.trace["blocks.0.attn.q_rot"][view.head % view.cfg.n_head, i]
    half = q.shape[0] // 2
    # rotate_half pairs dimension j with j + half; the angle each pair turned by:
    before = np.arctan2(q[half:], q[:half])
    after = np.arctan2(q_rot[half:], q_rot[:half])
    turned = np.angle(np.exp(1j * (after - before)))  # wrapped to (-pi, pi]
    out.append(f"token {i} {quoted(view.selected_label())}, position {int(view.trace.positions[i])}: "
               f"layer 0 head {view.head % view.cfg.n_head} query before and after rotary\n", style="bold")
    out.append_text(_vector_rows([("q", q), ("rotated q", q_rot)], width))
    out.append("\n")
    len_before = np.hypot(q[:half], q[half:])
    len_after = np.hypot(q_rot[:half], q_rot[half:])
    out.append(f"each of the {half} pairs keeps its length (max change {np.max(np.abs(len_after - len_before)):.1e}) "
               "and turns by an angle:\n", style=DIM)
    shown = min(half, 6)
    out.append("  ".join(f"pair {j}: {turned[j]:+.3f}" for j in range(shown)) + (" …" if half > shown else ""))
    out.append("\nfast pairs turn far per position, slow ones barely: the angle encodes where the token is.",
               style=DIM)
    used = 7
    if height - used >= 6:
        # the angle every pair turned, for every token of the prompt: [n_seq, half], from q and q_rot
        qs = view.trace["blocks.0.attn.q"][view.head % view.cfg.n_head]
        qr = view.trace["blocks.0.attn.q_rot"][view.head % view.cfg.n_head]
        angles = np.angle(np.exp(1j * (np.arctan2(qr[:, half:], qr[:, :half]) - np.arctan2(qs[:, half:], qs[:, :half]))))
        labels = tuple(str(int(p)) for p in view.trace.positions)
        data = HeatmapData(angles, labels, tuple(str(j) for j in range(half)), palette="diverging",
                           vmin=-np.pi, vmax=np.pi, title="angle each pair turned (columns: pairs, rows: positions)",
                           row_name="position", col_name="pair", fmt="{:+.3f} rad")
        out.append("\n")
        out.append_text(render_heatmap(data, width, height - used, cursor=(i, 1)))
    return out


# --- inside a block ------------------------------------------------------------------------------------


def _paint_norm(which: str) -> Painter:
    def paint(view: View, width: int, height: int) -> Text:
        L, i = view.layer, view.position
        src = f"blocks.{L}.resid_pre" if which == "ln1" else f"blocks.{L}.resid_mid"
        dst = f"blocks.{L}.{which}.out"
        x, y = view.trace[src][i], view.trace[dst][i]
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"layer {L}, token {i} {quoted(view.selected_label())}: {src} → {dst}\n", style="bold")
        out.append_text(_vector_rows([("in", x), ("normed", y)], width, scale=None))
        out.append("\n")
        out.append_text(_stats_line("in", x))
        out.append("\n")
        out.append_text(_stats_line("normed", y))
        return out

    return paint


def _pattern(view: View) -> tuple[np.ndarray, np.ndarray]:
    L = view.layer
    h = view.head % view.cfg.n_head
    pattern = view.trace[f"blocks.{L}.attn.pattern"][h]  # [n_seq, n_k]
    scores = view.trace[f"blocks.{L}.attn.scores"][h]
    return pattern, ~np.isfinite(scores)


def _paint_attn(view: View, width: int, height: int) -> Text:
    pattern, mask = _pattern(view)
    labels = tuple(short_label(p, 8) for p in view.pieces)
    data = HeatmapData(pattern, labels, labels, mask=mask, vmin=0.0, vmax=1.0, row_name="query", col_name="key")
    key = int(np.argmax(pattern[view.position]))
    # what to look for comes first, so a short terminal never cuts it off
    out = Text(describe_head(pattern), style="italic", no_wrap=True, overflow="ellipsis")
    out.append("\n")
    out.append_text(render_heatmap(data, width, height - 1, cursor=(view.position, key)))
    return out


def _attn_title(view: View) -> str:
    L = view.layer
    h = view.head % view.cfg.n_head
    title = f"layer {L} · head {h} · attention pattern {shape(view.trace[f'blocks.{L}.attn.pattern'])}"
    if view.cfg.n_kv_head != view.cfg.n_head:
        group = view.cfg.n_head // view.cfg.n_kv_head
        title += f" · k/v head {h // group} (shared by {group})"
    return title


def _paint_mix(view: View, width: int, height: int) -> Text:
    L, i = view.layer, view.position
    h = view.head % view.cfg.n_head
    pattern, _ = _pattern(view)
    weights = pattern[i]
    order = _top(weights, max(1, min(len(weights), height - 7)))
    bars = [Bar(f"{short_label(view.pieces[j], 10)}#{j}", float(weights[j]), chosen=False) for j in order]
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"token {i} {quoted(view.selected_label())}, head {h}: z = Σ weight × v of the tokens it sees\n", style="bold")
    out.append_text(render_bars(bars, width, fmt="{:6.1%}"))
    out.append("\n")
    z = view.trace[f"blocks.{L}.attn.z"][h, i]
    att_out = view.trace[f"blocks.{L}.attn.out"][i]
    out.append_text(_vector_rows([(f"z head {h}", z), ("attn out", att_out)], width))
    out.append("\n")
    zs = view.trace[f"blocks.{L}.attn.z"]
    out.append(f"z {shape(zs)} → heads side by side [{view.n_seq}, {zs.shape[0] * zs.shape[2]}] "
               f"→ output projection → attn.out {shape(view.trace[f'blocks.{L}.attn.out'])}", style=DIM)
    return out


def _paint_resid(which: str) -> Painter:
    def paint(view: View, width: int, height: int) -> Text:
        L, i = view.layer, view.position
        if which == "resid1":
            a, b, c = f"blocks.{L}.resid_pre", f"blocks.{L}.attn.out", f"blocks.{L}.resid_mid"
            names = ("stream in", "+ attention", "= stream")
        else:
            a, b, c = f"blocks.{L}.resid_mid", f"blocks.{L}.mlp.out", f"blocks.{L}.resid_post"
            names = ("stream in", "+ MLP", "= stream out")
        x, d, y = view.trace[a][i], view.trace[b][i], view.trace[c][i]
        out = Text(no_wrap=True, overflow="crop")
        out.append(f"layer {L}, token {i} {quoted(view.selected_label())}: {c} = {a} + {b}\n", style="bold")
        out.append_text(_vector_rows([(names[0], x), (names[1], d), (names[2], y)], width))
        out.append("\n")
        out.append(f"max |{names[0].split()[0]} + update − result| = {float(np.max(np.abs(x + d - y))):.1e} · "
                   f"the update changed the norm by {np.linalg.norm(y) - np.linalg.norm(x):+.2f}", style=DIM)
        return out

    return paint


def _paint_mlp(view: View, width: int, height: int) -> Text:
    L, i = view.layer, view.position
    pre = view.trace[f"blocks.{L}.mlp.pre"][i]
    post = view.trace[f"blocks.{L}.mlp.post"][i]
    out_v = view.trace[f"blocks.{L}.mlp.out"][i]
    out = Text(no_wrap=True, overflow="crop")
    if view.family == "gpt2":
        out.append(f"layer {L}, token {i}: {view.cfg.n_embd} → {view.cfg.n_inner} → GELU → {view.cfg.n_embd}\n",
                   style="bold")
        rows = [("before GELU", pre), ("after GELU", post), ("mlp out", out_v)]
        active = float(np.mean(post > 0.1))
        note = f"{active:.0%} of the {pre.size} hidden units pass more than 0.1 through GELU"
    else:
        up = view.trace[f"blocks.{L}.mlp.up"][i]
        out.append(f"layer {L}, token {i}: gate and up {view.cfg.n_embd} → {view.cfg.n_inner}, "
                   f"silu(gate) × up, down → {view.cfg.n_embd}\n", style="bold")
        rows = [("gate", pre), ("up", up), ("silu(g)×up", post), ("mlp out", out_v)]
        active = float(np.mean(np.abs(post) > 0.1))
        note = f"{active:.0%} of the {pre.size} hidden units have |silu(gate) × up| above 0.1"
    out.append_text(_vector_rows(rows, width))
    out.append("\n")
    top = _top(np.abs(post), 3)
    out.append(note + " · strongest units: " + ", ".join(f"#{j} {post[j]:+.2f}" for j in top), style=DIM)
    return out


# --- after the blocks --------------------------------------------------------------------------


def _paint_final_norm(view: View, width: int, height: int) -> Text:
    i = view.position
    last = f"blocks.{view.cfg.n_layer - 1}.resid_post"
    x, y = view.trace[last][i], view.trace["ln_final.out"][i]
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"token {i} {quoted(view.selected_label())}: {last} → ln_final.out\n", style="bold")
    out.append_text(_vector_rows([("stream", x), ("normed", y)], width))
    out.append("\n")
    out.append_text(_stats_line("stream", x))
    out.append("\n")
    out.append_text(_stats_line("normed", y))
    return out


def _paint_logits(view: View, width: int, height: int) -> Text:
    i = view.position
    logits = view.trace["logits"][i]
    trust = textwrap.wrap(view.trust, max(20, width - 1))
    order = _top(logits, max(3, min(15, height - 4 - len(trust))))
    lowest = float(logits[order[-1]])
    bars = [Bar(view.piece_text(int(t)), float(logits[t]) - lowest + 1e-3, note=f"id {int(t)}") for t in order]
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"logits[{i}] {shape(logits)}: one score per vocabulary entry; the top {len(order)}\n", style="bold")
    out.append_text(render_bars(bars, width, fmt="{:6.2f}"))
    out.append("\n")
    values = " · ".join(f"{quoted(view.piece_text(int(t)))} {float(logits[t]):.4f}" for t in order[:3])
    out.append(f"top logits: {values}\n", style="bold")
    out.append(f"over all {logits.size}: min {float(logits.min()):.2f} · mean {float(logits.mean()):.2f} · "
               f"max {float(logits.max()):.2f} (bars start at the {len(order)}th score)", style=DIM)
    if trust:
        out.append("\n" + "\n".join(trust), style=DIM)
    return out


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _paint_probs(view: View, width: int, height: int) -> Text:
    i = view.position
    probs = view.trace["probs"][i]
    order = _top(probs, max(3, min(15, height - 4)))
    bars = [Bar(view.piece_text(int(t)), float(probs[t]), note=f"id {int(t)}") for t in order]
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"probs[{i}] = softmax(logits[{i}]): after {quoted(view.selected_label())} the model expects\n",
               style="bold")
    out.append_text(render_bars(bars, width))
    out.append("\n")
    out.append(f"top {len(order)} hold {float(probs[order].sum()):.1%} · sum of all {probs.size} = "
               f"{float(probs.sum()):.4f} · entropy {_entropy(probs.astype(np.float64)):.2f} bits", style=DIM)
    if i < view.n_seq - 1:
        nxt = view.pieces[i + 1]
        out.append(f"\nthe prompt's real next token {quoted(nxt.label)} got {float(probs[nxt.id]):.2%}", style="italic")
    return out


def _paint_lens(view: View, width: int, height: int) -> Text:
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"token {view.position} {quoted(view.selected_label())}: the top guess if the model stopped after each "
               "block\n", style="bold")
    if view.lens is None:
        out.append("computing the logit lens…", style="italic")
        return out
    rows = view.lens
    show = rows if len(rows) <= height - 3 else rows[:1] + rows[-(height - 4):]
    final = rows[-1].tokens[0]
    for row in show:
        out.append(f"{row.depth:>10} ", style=DIM)
        top = row.tokens[0]
        out.append(f"{quoted(view.piece_text(top)):<14}", style=f"bold {ACCENT}" if top == final else "")
        out.append(f" {row.probs[0]:6.1%}  ")
        rest = ", ".join(f"{quoted(view.piece_text(t))} {p:.0%}" for t, p in zip(row.tokens[1:3], row.probs[1:3]))
        out.append(rest + "\n", style=DIM)
    if len(show) < len(rows):
        out.append(f"({len(rows) - len(show)} middle blocks not shown: enlarge the terminal)\n", style=DIM)
    out.append("each row: that block's resid_post through the model's own final norm and unembedding", style=DIM)
    return out


def _paint_sample(view: View, width: int, height: int) -> Text:
    dist = view.distribution
    kept = int(np.count_nonzero(dist))
    order = list(_top(view.last_logits, max(3, min(15, height - 4))))
    if view.chosen not in order:  # an unlikely draw: show it as the last bar
        order[-1] = view.chosen
    raw = ops.softmax(view.last_logits.astype(np.float64))
    bars = [
        Bar(view.piece_text(int(t)), float(dist[t]), chosen=int(t) == view.chosen, excluded=dist[t] == 0,
            note=f"was {raw[t]:.1%}")
        for t in order
    ]
    s = view.settings
    out = Text(no_wrap=True, overflow="crop")
    last = view.generated[-1] if view.generated else view.pieces[-1]
    out.append(f"next token after {quoted(last.label)}: temperature {s.temperature:g} · top-k "
               f"{s.top_k or 'off'} · top-p {s.top_p:g} · seed {view.seed}\n", style="bold")
    out.append_text(render_bars(bars, width))
    out.append("\n")
    out.append(f"{kept} of {dist.size} tokens can be drawn · chosen {quoted(view.piece_text(view.chosen))} "
               f"(id {view.chosen}) with probability {float(dist[view.chosen]):.1%}", style=DIM)
    return out


def _paint_append(view: View, width: int, height: int) -> Text:
    from fwdtui.widgets.token_strip import token_piece

    pending = token_piece(view.chosen, view.model.tokenizer.token_bytes(view.chosen), new=True)
    pieces = list(view.pieces) + list(view.generated) + [pending]
    out = render_strip(pieces, width, max(4, height - 4), cursor=len(pieces) - 1, detail=False)
    out.append("\n")
    cache = view.cache
    if cache is not None:
        out.append(f"KV cache: {cache.length} positions × {view.cfg.n_layer} layers × {view.cfg.n_kv_head} "
                   f"k/v heads × {view.cfg.head_dim} × 2 = {cache.nbytes:,} bytes "
                   f"({cache.bytes_per_token:,} per token)\n", style="bold")
    out.append(f"appended {quoted(view.piece_text(view.chosen))} (id {view.chosen}, highlighted) · g runs it through "
               "the model as one new row, reading every earlier key and value from the cache", style=DIM)
    if view.decode_traces:
        tr = view.decode_traces[-1]
        k = tr["blocks.0.attn.k_rot" if view.family == "llama" else "blocks.0.attn.k"]
        out.append(f"\nlast decode step: {len(tr.ids)} row in, attention over {k.shape[1]} keys "
                   f"(layer 0 k {shape(k)})", style=DIM)
    return out


# --- explanations (our own words) ----------------------------------------------------------------


def _explain_text(view: View) -> str:
    return ("**Text.** A language model predicts what comes next, one token at a time. This is the "
            "prompt it will read; every number on the following screens is computed from it by the "
            f"loaded model, **{view.model.info.name}**, on your CPU.")


def _explain_tokens(view: View) -> str:
    return ("**Tokens.** The tokenizer cuts the text into pieces from a fixed vocabulary and replaces each "
            "by its id. Common words are one token, rare ones several; a leading space belongs to the "
            "token (shown as ·). Pieces of one character are underlined. ← → select a token.")


def _explain_embed(view: View) -> str:
    return ("**Token embeddings.** Each id picks one row of the embedding matrix: a vector of "
            f"{view.cfg.n_embd} numbers that the model learned for that token. From here on every token is "
            "such a vector; the stack of them is the *residual stream* that the blocks read and add to.")


def _explain_pos(view: View) -> str:
    if view.family == "gpt2":
        return ("**Positions (learned).** Attention by itself does not know order, so GPT-2 adds a second "
                "learned vector for each position (0, 1, 2, …) to the token's vector. The same word at "
                "another position starts from a different point.")
    return ("**Positions (rotary).** Llama-family models add nothing to the embedding. Instead, inside every "
            "attention layer, queries and keys are split into pairs of numbers and each pair is rotated by "
            "an angle proportional to the position. The dot product of a rotated query and key then "
            "depends on how far apart the two tokens are.")


def _explain_ln(which: str) -> Callable[[View], str]:
    def explain(view: View) -> str:
        kind = ("LayerNorm subtracts the vector's mean, divides by its standard deviation, then scales and "
                "shifts each dimension by learned weights."
                if view.family == "gpt2" else
                "RMSNorm divides the vector by its root mean square (no mean is subtracted), then scales "
                "each dimension by a learned weight.")
        where = "attention" if which == "ln1" else "the MLP"
        return (f"**Norm before {where}** (layer {view.layer}; `,` `.` change layer). {kind} The stream itself "
                f"is not changed: {where} reads this normed copy, and its result is added back to the stream.")
    return explain


def _explain_attn(view: View) -> str:
    return (f"**Attention** (layer {view.layer}, head {view.head % view.cfg.n_head}; `h` changes head). Each "
            "token's query is compared with the keys of itself and every earlier token; softmax turns the "
            "scores into weights that sum to 1 along each row. The model is decoder-only: the causal mask "
            "hides later tokens (grey), so no token can see the future.")


def _explain_mix(view: View) -> str:
    return ("**The weighted mix.** With those weights each head averages the value vectors of the tokens "
            "it attends to. The heads' results are put side by side and projected back to the width of the "
            "stream: this is how information moves between positions.")


def _explain_resid(which: str) -> Callable[[View], str]:
    def explain(view: View) -> str:
        what = "attention" if which == "resid1" else "MLP"
        return (f"**Residual add** (after the {what}). The {what}'s output is *added* to the stream rather "
                "than replacing it, so every layer only nudges the vector, and what earlier layers wrote "
                "stays readable by later ones.")
    return explain


def _explain_mlp(view: View) -> str:
    if view.family == "gpt2":
        return ("**MLP.** Each token on its own: widen to "
                f"{view.cfg.n_inner} hidden units, apply GELU (negative inputs mostly switched off), project "
                "back. Attention moves information between tokens; the MLP transforms it inside each token.")
    return ("**MLP (SwiGLU).** Each token on its own: two projections to "
            f"{view.cfg.n_inner} hidden units, a *gate* (through SiLU) and an *up* vector, multiplied unit "
            "by unit, then projected back down. The gate decides how much of each unit passes.")


def _explain_final(view: View) -> str:
    return (f"**Final norm.** After all {view.cfg.n_layer} blocks (only layer {view.layer} was shown; they all "
            "work the same way) the stream is normed one last time, ready to be compared with every "
            "token of the vocabulary.")


def _explain_logits(view: View) -> str:
    tied = "the same embedding matrix, transposed" if view.cfg.tie_word_embeddings else "an output matrix"
    return (f"**Logits.** The normed vector is multiplied by {tied}: one score per vocabulary entry, "
            f"{view.cfg.vocab_size} in all. Higher means more likely next. Every position gets scores; the "
            "last one's predict the token after the prompt.")


def _explain_probs(view: View) -> str:
    return ("**Probabilities.** Softmax exponentiates the logits and divides by their sum, so they become "
            "positive and add up to 1. For earlier positions you can check the prediction against the "
            "prompt's real next token.")


def _explain_lens(view: View) -> str:
    return ("**Logit lens.** What would the model say if it stopped early? Each block's output is sent "
            "through the model's own final norm and unembedding. The guess often settles in the later "
            "blocks. (Skipping the final norm here is a common mistake that gives wrong answers.)")


def _explain_sample(view: View) -> str:
    return ("**Sampling.** The next token is drawn from the distribution. Temperature (t/T) divides the "
            "logits: below 1 sharpens, above 1 flattens, 0 is greedy. Top-k (k/K) keeps the k best; top-p "
            "(n/N) keeps the smallest set reaching that probability. r draws again.")


def _explain_append(view: View) -> str:
    return ("**Append and repeat.** The chosen token joins the sequence and the model runs again. Thanks to "
            "the KV cache it runs only the new token: the keys and values of earlier tokens are kept, so "
            "each step costs one row. Press g to generate the next token and watch the cache grow.")


# --- code shown per stage --------------------------------------------------------------------------


def _code_text(view: View) -> tuple[Callable[..., Any], ...]:
    return (prepare_prompt,)


def _code_tokens(view: View) -> tuple[Callable[..., Any], ...]:
    return (type(view.model.tokenizer).encode,)


def _code_embed(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.embed,), (llama.llama_forward,))


def _code_pos(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.embed,), (ops.rope, ops.rope_frequencies))


def _code_norm(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (ops.layer_norm, gpt2.transformer_block), (ops.rms_norm, llama.llama_block))


def _code_attn(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.mha,), (llama.gqa,)) + (ops.causal_attention, ops.attention, ops.causal_mask)


def _code_mix(view: View) -> tuple[Callable[..., Any], ...]:
    return (ops.attention, gpt2.merge_heads)


def _code_block(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.transformer_block,), (llama.llama_block,))


def _code_mlp(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.ffn, ops.gelu), (llama.swiglu, ops.silu))


def _code_final(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.final_norm,), (llama.final_norm,))


def _code_logits(view: View) -> tuple[Callable[..., Any], ...]:
    return _family(view, (gpt2.unembed,), (llama.unembed,))


def _code_probs(view: View) -> tuple[Callable[..., Any], ...]:
    return (ops.softmax, Model.forward)


def _code_lens(view: View) -> tuple[Callable[..., Any], ...]:
    return (Model.logit_lens,)


def _code_sample(view: View) -> tuple[Callable[..., Any], ...]:
    return (sampling.sampling_distribution, sampling.sample)


def _code_append(view: View) -> tuple[Callable[..., Any], ...]:
    return (Model.forward, KVCache.append)


STAGES: tuple[Stage, ...] = (
    Stage("text", "text", lambda v: f"text · {len(v.pieces)} tokens to come", _explain_text, _code_text, _paint_text),
    Stage("tokens", "tokens", lambda v: f"tokens · ids [{v.n_seq}]", _explain_tokens, _code_tokens, _paint_tokens),
    Stage("embed", "embed", lambda v: f"token embeddings · embed {shape(v.trace['embed'])}", _explain_embed,
          _code_embed, _paint_embed),
    Stage("pos", "pos",
          lambda v: (f"positions · pos_embed {shape(v.trace['pos_embed'])}" if v.family == "gpt2"
                     else f"rotary positions · q {shape(v.trace['blocks.0.attn.q'])}"),
          _explain_pos, _code_pos, _paint_pos),
    Stage("ln1", "ln1", lambda v: f"layer {v.layer} · ln1 {shape(v.trace[f'blocks.{v.layer}.ln1.out'])}",
          _explain_ln("ln1"), _code_norm, _paint_norm("ln1"), in_block=True),
    Stage("attn", "attn", _attn_title, _explain_attn, _code_attn, _paint_attn, in_block=True),
    Stage("attn_mix", "attn",
          lambda v: f"layer {v.layer} · weighted mix z {shape(v.trace[f'blocks.{v.layer}.attn.z'])}",
          _explain_mix, _code_mix, _paint_mix, in_block=True),
    Stage("resid1", "resid1", lambda v: f"layer {v.layer} · resid_mid {shape(v.trace[f'blocks.{v.layer}.resid_mid'])}",
          _explain_resid("resid1"), _code_block, _paint_resid("resid1"), in_block=True),
    Stage("ln2", "ln2", lambda v: f"layer {v.layer} · ln2 {shape(v.trace[f'blocks.{v.layer}.ln2.out'])}",
          _explain_ln("ln2"), _code_norm, _paint_norm("ln2"), in_block=True),
    Stage("mlp", "mlp", lambda v: f"layer {v.layer} · MLP hidden {shape(v.trace[f'blocks.{v.layer}.mlp.pre'])}",
          _explain_mlp, _code_mlp, _paint_mlp, in_block=True),
    Stage("resid2", "resid2",
          lambda v: f"layer {v.layer} · resid_post {shape(v.trace[f'blocks.{v.layer}.resid_post'])}",
          _explain_resid("resid2"), _code_block, _paint_resid("resid2"), in_block=True),
    Stage("final_norm", "final_norm", lambda v: f"final norm · {shape(v.trace['ln_final.out'])}", _explain_final,
          _code_final, _paint_final_norm),
    Stage("logits", "logits", lambda v: f"logits {shape(v.trace['logits'])}", _explain_logits, _code_logits,
          _paint_logits),
    Stage("probs", "probs", lambda v: f"probabilities {shape(v.trace['probs'])}", _explain_probs, _code_probs,
          _paint_probs),
    Stage("lens", "probs", lambda v: f"logit lens · {v.cfg.n_layer + 1} depths", _explain_lens, _code_lens,
          _paint_lens),
    Stage("sample", "sample", lambda v: "sampling the next token", _explain_sample, _code_sample, _paint_sample),
    Stage("append", "append",
          lambda v: f"appended · {v.n_seq + len(v.generated)} tokens · cache {v.cache.length if v.cache else 0}",
          _explain_append, _code_append, _paint_append),
)

STAGE_KEYS = tuple(stage.key for stage in STAGES)


def lens_rows(model: Model, trace: Trace, position: int, k: int = 3) -> list[LensRow]:
    """The logit lens for one position: top-k tokens and probabilities at every depth (core's logit_lens)."""
    logits = model.logit_lens(trace, position)  # [n_layer + 1, n_vocab]
    probs = ops.softmax(logits.astype(np.float64), axis=-1)
    rows = []
    for depth in range(logits.shape[0]):
        top = _top(probs[depth], k)
        name = "embedding" if depth == 0 else f"block {depth - 1}"
        rows.append(LensRow(name, tuple(int(t) for t in top), tuple(float(probs[depth, t]) for t in top)))
    return rows
