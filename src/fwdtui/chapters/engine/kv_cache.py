"""The KV cache: decoding with it and by recomputing the prefix, same logits, different cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, bar, fmt_bytes, fmt_seconds, heading, note, piece
from fwdtui.core import engine_lab
from fwdtui.core.kv_cache import KVCache
from fwdtui.session import Snapshot
from fwdtui.widgets.heatmap import HeatmapData, render_heatmap

N_STEPS = 6


@dataclass(frozen=True)
class KvResult:
    cmp: engine_lab.CacheComparison
    keys: tuple[np.ndarray, ...]  # per layer [n_kv_head, n_pos, head_dim]
    values: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    new_tokens: tuple[str, ...]
    n_ctx: int
    n_layer: int
    n_kv_head: int
    head_dim: int
    model_name: str


@register
class KvCacheChapter(Picture, Chapter):
    ID = "engine.kv-cache"
    PICTURE = "kv"
    SECTION = "engine"
    TITLE = "The KV cache"
    SUMMARY = "Keeping keys and values instead of recomputing them: same logits, flat cost per token."
    EXPLANATION = """
To predict token n+1 the model needs the keys and values of tokens 1..n in every layer. They never
change once computed (a token only attends to earlier ones), so an engine keeps them: the **KV
cache**. Each decode step then runs one new row through the model and reads the cached rows in
attention. Without it, every step recomputes the whole sequence, and the cost grows with its
length. Below, both ways run on your prompt: the logits agree to float rounding, the times do not.
`l` layer, `h` kv head, `v` keys or values in the heatmap.
"""
    CODE_FUNCTIONS = (engine_lab.compare_cache, KVCache.append, KVCache.bytes_per_token.fget)
    BINDINGS = [
        Binding("l", "layer", "Layer", tooltip="Show the cache of the next layer"),
        Binding("h", "head", "KV head", tooltip="Show the next key/value head"),
        Binding("v", "kind", "Keys/values", tooltip="Switch the heatmap between keys and values"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.layer_index = 0
        self.head_index = 0
        self.show_values = False

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> KvResult:
        model = snapshot.require_model()
        ids = list(snapshot.ids)[: model.config.n_ctx - N_STEPS - 1]
        cmp = engine_lab.compare_cache(model, ids, N_STEPS, snapshot.progress, snapshot.cancelled)
        cache = model.new_cache()  # the cache after prefill, to look inside
        model.forward(ids + list(cmp.tokens), cache=cache, last_only=True)
        cfg = model.config
        all_ids = ids + list(cmp.tokens)
        return KvResult(cmp, tuple(cache.keys(i).copy() for i in range(cfg.n_layer)),
                        tuple(cache.values(i).copy() for i in range(cfg.n_layer)),
                        tuple(piece(model.tokenizer, t, 8) for t in all_ids),
                        tuple(piece(model.tokenizer, t, 12) for t in cmp.tokens),
                        cfg.n_ctx, cfg.n_layer, cfg.n_kv_head, cfg.head_dim, model.info.name)

    def draw(self, result: KvResult) -> None:
        self.layer_index %= result.n_layer
        self.head_index %= result.n_kv_head
        kind = "values" if self.show_values else "keys"
        self.update_breadcrumb(f"layer {self.layer_index} · kv head {self.head_index} · {kind}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_layer(self) -> None:
        self.layer_index += 1
        self.redraw()

    def action_head(self) -> None:
        self.head_index += 1
        self.redraw()

    def action_kind(self) -> None:
        self.show_values = not self.show_values
        self.redraw()

    def _picture(self, r: KvResult, width: int) -> Text:
        c = r.cmp
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"Greedy decoding of {len(c.tokens)} tokens after {c.n_prompt} prompt tokens"))
        head = f"{'step':<5}{'token':<13}{'seq':>5}{'cached':>10}{'recompute':>11}{'max |Δlogit|':>14}"
        out.append(head[:width] + "\n", style=DIM)
        top = max(c.recompute_seconds + c.cached_seconds, default=1.0)
        bw = max(0, (width - len(head) - 3) // 2)
        for i, tok in enumerate(r.new_tokens[: len(c.cached_seconds)]):
            line = (f"{i + 1:<5}{tok:<13}{c.n_prompt + i + 1:>5}{fmt_seconds(c.cached_seconds[i]):>10}"
                    f"{fmt_seconds(c.recompute_seconds[i]):>11}{c.max_abs_diff[i]:>14.1e}")
            out.append(line[:width])
            if bw >= 4:
                out.append("  ")
                out.append_text(bar(c.cached_seconds[i], top, bw, ACCENT))
                out.append_text(bar(c.recompute_seconds[i], top, bw))
            out.append("\n")
        if c.cached_seconds:
            same = all(int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(c.cached_logits, c.recompute_logits))
            out.append_text(note(f"same next token every step: {'yes' if same else 'NO'}; largest logit "
                                 f"difference {max(c.max_abs_diff):.1e} (float32 rounding: the sums run in "
                                 "another order)", width, style=f"bold {ACCENT}"))
            ratio = np.mean(c.recompute_seconds) / max(1e-9, np.mean(c.cached_seconds))
            out.append_text(note(f"Recomputing cost {ratio:.1f}x the cached step here; it grows with the "
                                 f"sequence, the cached step barely does (one row through the weights, plus "
                                 f"attention over the cached rows).", width))
        out.append("\n")
        out.append_text(heading("Its size"))
        bpt = c.bytes_per_token
        out.append(f"2 (k and v) × {r.n_layer} layers × {r.n_kv_head} kv heads × {r.head_dim} dims × 4 bytes "
                   f"= {fmt_bytes(bpt)} per token"[:width] + "\n")
        out.append(f"now: {c.n_prompt + len(c.tokens)} tokens = {fmt_bytes(c.cache_bytes)}"
                   f"   full context of {r.n_ctx}: {fmt_bytes(bpt * r.n_ctx)} per sequence"[:width] + "\n")
        out.append("\n")
        kind = "values" if self.show_values else "keys"
        store = r.values if self.show_values else r.keys
        mat = store[self.layer_index][self.head_index]  # [n_pos, head_dim]
        cols = min(mat.shape[1], max(4, (width - 12) // 3))
        data = HeatmapData(mat[:, :cols], row_labels=r.labels, col_labels=tuple(str(i) for i in range(cols)),
                           palette="diverging",
                           title=f"cached {kind}, layer {self.layer_index}, kv head {self.head_index} "
                                 f"(first {cols} of {r.head_dim} dims)",
                           row_name="position", col_name="dim")
        height = min(mat.shape[0] + 4, 16)
        out.append_text(render_heatmap(data, width, height))
        out.append("\n")
        out.append_text(note("Each row is one position's " + kind[:-1] + " vector, written once when the token "
                             "was processed and only read afterwards. The last rows are the decoded tokens.", width))
        return out
