"""Prefix caching: two requests sharing a prefix, the second reusing the first one's cache of it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, Picture, fmt_bytes, fmt_seconds, heading, note
from fwdtui.core import engine_lab
from fwdtui.session import Snapshot

FOLLOW_UPS = ((" Tell me more about it.", " Say it in one word."),
              (" In short,", " For example,"),
              (" The first reason is", " The main objection is"))


@dataclass(frozen=True)
class PrefixResult:
    reuse: engine_lab.PrefixReuse
    suffix_a: str
    suffix_b: str
    prompt: str


@register
class PrefixCachingChapter(Picture, Chapter):
    ID = "engine.prefix-caching"
    PICTURE = "prefix"
    SECTION = "engine"
    TITLE = "Prefix caching"
    SUMMARY = "Reusing the KV cache of a shared prefix: equal logits, less prefill."
    EXPLANATION = """
Many requests start the same way: one system prompt for every user, a long document asked several
questions, a chat whose history is resent each turn. The keys and values of those shared first
tokens are the same for every request, so a server keeps them and a new request starting with the
same tokens only prefills what comes after (vLLM matches cached blocks by hashing their tokens,
SGLang keeps a radix tree of them). Here request A is your prompt plus one follow-up, request B
your prompt plus another: B reuses A's cache cut back to the prompt. `f` other follow-ups.
"""
    CODE_FUNCTIONS = (engine_lab.compare_prefix_reuse, engine_lab.reuse_prefix, engine_lab.shared_prefix_length)
    BINDINGS = [Binding("f", "follow_up", "Follow-ups", tooltip="Try another pair of follow-up texts")]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.pair = 0

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> PrefixResult:
        model = snapshot.require_model()
        a_text, b_text = FOLLOW_UPS[self.pair % len(FOLLOW_UPS)]
        # tokenised apart and joined, so the prompt's tokens are the same in both requests
        a, b = model.tokenizer.encode(a_text), model.tokenizer.encode(b_text)
        prefix = list(snapshot.ids)[: max(1, model.config.n_ctx - max(len(a), len(b)))]
        snapshot.progress(None, "serving A, then B from scratch and from A's cache")
        reuse = engine_lab.compare_prefix_reuse(model, prefix, a, b)
        return PrefixResult(reuse, a_text, b_text, snapshot.prompt)

    def draw(self, result: PrefixResult) -> None:
        self.update_breadcrumb(f"{result.reuse.n_prefix} shared tokens")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_follow_up(self) -> None:
        self.pair += 1
        self.recompute()

    def _picture(self, r: PrefixResult, width: int) -> Text:
        u = r.reuse
        out = Text(no_wrap=True)
        prompt = r.prompt.replace("\n", "⏎")
        short = prompt if len(prompt) <= width - 40 else prompt[: max(5, width - 41)] + "…"
        for name, suffix, n in (("A", r.suffix_a, u.n_suffix_a), ("B", r.suffix_b, u.n_suffix_b)):
            out.append(f"request {name}: ", style="bold")
            out.append(short, style=f"underline {ACCENT}")
            out.append(suffix + "\n")
        out.append_text(note(f"shared prefix: {u.n_prefix} tokens (underlined) · A adds {u.n_suffix_a}, "
                             f"B adds {u.n_suffix_b}", width))
        out.append("\n")
        out.append_text(heading("Serving B"))
        out.append(f"from scratch: prefill {u.n_prefix + u.n_suffix_b} tokens   {fmt_seconds(u.full_seconds):>10}\n")
        out.append(f"reusing A's cache: prefill {u.n_suffix_b} tokens  {fmt_seconds(u.reuse_seconds):>10}\n")
        saved = 1 - u.reuse_seconds / u.full_seconds if u.full_seconds else 0.0
        out.append(f"time saved: {saved:.0%} · cache kept for the prefix: {fmt_bytes(u.prefix_bytes)}\n",
                   style=f"bold {ACCENT}")
        if saved < 0.3:
            out.append_text(note("With a prompt this short both passes mostly stream the weights (see Prefill and "
                                 "decode), so little is saved: make the prompt longer (p) to see the gap.", width))
        out.append_text(note(f"B's logits, both ways, largest difference {u.max_abs_diff:.1e}: the same numbers "
                             "(to float32 rounding), since a token's keys and values depend only on the tokens "
                             "before it.", width, style=f"bold {ACCENT}"))
        out.append_text(note("The saving grows with the shared part: with a system prompt of thousands of tokens "
                             "the first token of a new chat can come many times sooner. The catch is memory: the "
                             "cached prefixes stay in the KV pool and are evicted (least recently used first) "
                             "when running requests need the room.", width))
        return out
