"""Merge rules: encoding new text by applying a tokenizer's merges in rank order, step by step."""

from __future__ import annotations

import textwrap
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import tiktoken
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.tokenizer.common import chip_rows, last_trained, pieces_of, quoted
from fwdtui.errors import FwdtuiError, WeightsError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.compare import as_trained, gpt2_tokenizer
from fwdtui.tokenizers.corpus import sample_text
from fwdtui.tokenizers.trainer import EncodeStep, TrainedTokenizer, merge, train
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM

SOURCES = ("model", "gpt2", "ours")
MAX_CHARS = 600  # a longer prompt is cut for the step-through (every rank is a screen)

# real tokenizer object -> its merges as our TrainedTokenizer (building one takes ~0.2-2 s)
_replayed: "weakref.WeakKeyDictionary[Any, TrainedTokenizer]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class EncodeRun:
    """A text encoded rank by rank, and the reference encoder's ids for the same text."""

    source: str  # "model" | "gpt2" | "ours"
    label: str  # what the tokenizer is, for the screen
    reference_name: str  # who produced `reference` ("tiktoken on GPT-2's files")
    text: str
    cut: bool  # the prompt was longer than MAX_CHARS
    tokenizer: TrainedTokenizer
    steps: tuple[EncodeStep, ...]
    reference: tuple[int, ...]  # the real encoder's ids
    note: str = ""  # why the model's own tokenizer is not the one shown, when it is not

    @property
    def equal(self) -> bool:
        return tuple(self.steps[-1].ids) == self.reference


def _replay(tokenizer: Any) -> TrainedTokenizer:
    tok = _replayed.get(tokenizer)
    if tok is None:
        tok = as_trained(tokenizer)
        _replayed[tokenizer] = tok
    return tok


@register
class MergeRulesChapter(Chapter):
    ID = "tokenizer.merge-rules"
    SECTION = "tokenizer"
    TITLE = "Merge rules"
    SUMMARY = "Encoding new text by applying the learned merges in order, step by step."
    EXPLANATION = """
A trained BPE tokenizer is a **list of merge rules in the order they were learned** (their
**rank**). To encode new text it does not count anything: it splits the text into chunks, turns
each chunk into bytes, then applies the rule of **lowest rank** that matches anywhere, then the
next, until no rule matches. The order decides the cut: `th`+`e` only fires if the rule for `th`
came before one for `he`.

`space` applies the next rank, `b` goes back, `e` jumps to the end, `t` switches tokenizer
(the model's, GPT-2's 50,000 rules, or the one you trained). The last line checks that our
rank-by-rank replay gives exactly the ids of the real encoder (tiktoken).
"""
    CODE_FUNCTIONS = (TrainedTokenizer.encode_steps, TrainedTokenizer.encode_chunk, merge)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "step(1)", "Next rank", tooltip="Apply the next merge rule that matches"),
        Binding("b", "step(-1)", "Previous rank", show=False, tooltip="Undo the last merge rule"),
        Binding("e", "end", "End", show=False, tooltip="Apply every rule: the final tokens"),
        Binding("home", "start", "Start", show=False, tooltip="Back to raw bytes"),
        Binding("t", "next_source", "Tokenizer", tooltip="Switch between the model's, GPT-2's and ours"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.source: str | None = None  # None: the best one available
        self.step_index = 0

    def compose_visual(self) -> ComposeResult:
        yield Canvas(id="merge-view", fill=True, min_width=8)

    # --- work ---------------------------------------------------------------------------------
    def compute(self, snapshot: Snapshot) -> EncodeRun:
        text = snapshot.prompt
        cut = len(text) > MAX_CHARS
        text = text[:MAX_CHARS]
        order = [self.source] if self.source else list(SOURCES)
        problems: list[str] = []
        for source in order:
            try:
                found = self._tokenizer_for(source, snapshot)
            except FwdtuiError as err:
                problems.append(err.message)
                continue
            if found is None:
                continue
            label, replayed, reference, reference_name = found
            snapshot.progress(None, f"Encoding with {label}")
            steps = tuple(replayed.encode_steps(text))
            return EncodeRun(source, label, reference_name, text, cut, replayed, steps,
                             tuple(int(i) for i in reference(text)), self._why_not_model(source, snapshot))
        raise WeightsError(
            "No tokenizer with merge rules is available: " + " ".join(problems),
            "Press t for another tokenizer, train one in 'BPE from raw bytes', or load gpt2.",
        )

    @staticmethod
    def _why_not_model(source: str, snapshot: Snapshot) -> str:
        tok = getattr(snapshot.model, "tokenizer", None)
        if source == "model" or tok is None or getattr(tok, "merges", None):
            return ""
        if getattr(tok, "scores", None) is not None:
            return (f"{tok.name} is a SentencePiece tokenizer: it has no merge list; at each step it merges "
                    "the adjacent pair whose joined piece has the highest score.")
        return f"{tok.name} has no merge rules."

    def _tokenizer_for(self, source: str, snapshot: Snapshot):
        """(label, replayed tokenizer, the reference encode, its name), or None if not here."""
        if source == "model":
            tok = getattr(snapshot.model, "tokenizer", None)
            if tok is None or not getattr(tok, "merges", None):
                if self.source == "model":
                    raise WeightsError("The loaded model's tokenizer has no merge rules (it is bytes only).",
                                       "Press t for GPT-2's or your own.")
                return None
            snapshot.progress(None, f"Reading the {len(tok.merges):,} merge rules of {tok.name}")
            return (f"the model's ({tok.name}, {len(tok.merges):,} rules)", _replay(tok), tok.encode,
                    "tiktoken with the model's vocabulary")
        if source == "gpt2":
            snapshot.progress(None, "Reading GPT-2's 50,000 merge rules")
            tok = gpt2_tokenizer()
            return ("GPT-2's (50,000 rules)", _replay(tok), tok.encode, "tiktoken on GPT-2's files")
        ours = last_trained(self.session)
        label = f"yours ({len(ours.merges):,} rules)" if ours is not None else "ours (500 rules on the sample)"
        if ours is None:
            ours = train(sample_text(), 256 + 500)
        ranks = ours.mergeable_ranks()
        enc = tiktoken.Encoding("ours", pat_str=ours.pattern, mergeable_ranks=ranks, special_tokens={})
        return (label, ours, enc.encode_ordinary, "tiktoken with our ranks")

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, result: EncodeRun) -> None:
        self.step_index = max(0, min(self.step_index, len(result.steps) - 1))
        self.update_breadcrumb(f"step {self.step_index}/{len(result.steps) - 1}")
        self.query_one("#merge-view", Canvas).paint_with(lambda w, h: self.paint(result, w, h))

    def paint(self, run: EncodeRun, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        k = self.step_index
        step = run.steps[k]
        last = len(run.steps) - 1
        out.append(f"tokenizer: {run.label}\n", style="bold")
        if run.note:
            out.append("\n".join(textwrap.wrap(run.note, max(20, width - 1))) + "\n", style=DIM)
        if step.rank is None:
            out.append(f"step 0/{last}: the raw bytes of each chunk, no rule applied yet", style="bold")
        else:
            a, b = run.tokenizer.vocab[step.pair[0]], run.tokenizer.vocab[step.pair[1]]
            out.append(f"step {k}/{last}: ", style="bold")
            out.append(f"rank {step.rank:,} ")
            out.append(f"{quoted(a)} + {quoted(b)}", style="bold")
            out.append(" → ")
            out.append(quoted(run.tokenizer.vocab[step.new_id]), style=f"bold {ACCENT}")
            out.append(f" id {step.new_id} · applied {step.n_merged}×")
        out.append("\n")
        prev_n = len(run.steps[k - 1].ids) if k else len(step.ids)
        out.append(f"{len(step.ids)} tokens" + (f" (was {prev_n})" if k else ""), style=DIM)
        out.append(f" · {len(run.steps[0].ids)} bytes → {len(run.steps[-1].ids)} tokens after all {last} steps",
                   style=DIM)
        out.append("\n")

        footer_lines = 3
        pieces = pieces_of(run.tokenizer, step.ids)
        chips, shown = chip_rows(pieces, width, max(1, height - 3 - footer_lines - 1),
                                 (step.new_id,) if step.new_id is not None else ())
        out.append_text(chips)
        out.append("\n")
        if shown < len(pieces):
            out.append(f"… {len(pieces) - shown} more tokens\n", style=DIM)
        # what comes next: the lowest ranks still matching, which is the order rules fire in
        upcoming = run.steps[k + 1 : k + 5]
        if upcoming:
            out.append("next: ", style=DIM)
            for s in upcoming:
                out.append(f"rank {s.rank:,} {quoted(run.tokenizer.vocab[s.new_id], 12)}  ", style=DIM)
        else:
            out.append("no rule matches any more: these are the final tokens", style=DIM)
        out.append("\n")
        if run.equal:
            out.append("✓ ", style="bold green")
            out.append(f"our rank-by-rank ids equal {run.reference_name}", style="bold")
        else:
            out.append("✗ ", style="bold red")
            out.append(f"our ids differ from {run.reference_name} "
                       f"({len(run.reference)} ids vs {len(run.steps[-1].ids)})", style="bold")
        out.append(f": {' '.join(map(str, run.reference[:12]))}{' …' if len(run.reference) > 12 else ''}",
                   style=DIM)
        if run.cut:
            out.append(f"\n(first {MAX_CHARS} characters of the prompt)", style=DIM)
        # the rules applied so far, in the order they fired: always increasing ranks
        room = height - out.plain.count("\n") - 2
        if k and room > 0:
            out.append("\n\n")
            history = Text("fired so far, lowest rank first: ", style="bold")
            for s in run.steps[1 : k + 1]:
                history.append(f"{s.rank:,} {quoted(run.tokenizer.vocab[s.new_id], 10)}  ")
            lines = history.wrap(self.app.console, width)
            for n, line in enumerate(lines[:room]):
                out.append_text(line)
                if n < min(room, len(lines)) - 1:
                    out.append("\n")
        return out

    # --- playground ---------------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        if self.result is None:
            return
        self.step_index = max(0, min(len(self.result.steps) - 1, self.step_index + delta))
        self.redraw()

    def action_end(self) -> None:
        if self.result is not None:
            self.step_index = len(self.result.steps) - 1
            self.redraw()

    def action_start(self) -> None:
        self.step_index = 0
        self.redraw()

    def action_next_source(self) -> None:
        model_tok = getattr(self.session.model, "tokenizer", None)
        sources = SOURCES if getattr(model_tok, "merges", None) else SOURCES[1:]
        current = self.result.source if self.result is not None else (self.source or sources[0])
        at = sources.index(current) if current in sources else -1
        self.source = sources[(at + 1) % len(sources)]
        self.step_index = 0
        self.recompute()
