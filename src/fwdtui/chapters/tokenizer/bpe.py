"""BPE from raw bytes: train byte-pair encoding on the user's text, one merge per key press."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import set_cell_size
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.tokenizer.common import (
    chip_rows,
    pieces_of,
    quoted,
    remember_trained,
    side_by_side,
    training_text,
)
from fwdtui.session import Snapshot
from fwdtui.tokenizers.trainer import (
    GPT4_SPLIT_PATTERN,
    BPETrainer,
    MergeStep,
    TrainedTokenizer,
    count_chunks,
    get_stats,
    merge,
)
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM
from fwdtui.widgets.plots import sparkline

RUN_TARGETS = (100, 250, 500, 1000, 2000, 4000)


@dataclass(frozen=True)
class TrainingRun:
    """Merges learned on one text, and the text cut with them."""

    text: str
    source: str  # where the text came from, for the screen
    steps: tuple[MergeStep, ...]
    n_bytes: int
    n_tokens: int  # the whole training text in tokens after the last merge
    compression: tuple[float, ...]  # bytes per token after 0, 1, 2, ... merges (sampled)
    finished: bool  # every chunk became one token: nothing left to merge
    stopped: bool  # the user stopped a run early
    tokenizer: TrainedTokenizer
    ids: tuple[int, ...]  # the start of the text re-tokenized with all merges so far
    next_pairs: tuple[tuple[bytes, bytes, int], ...]  # the most frequent pairs now: the next merges


@register
class BPEChapter(Chapter):
    ID = "tokenizer.bpe"
    SECTION = "tokenizer"
    TITLE = "BPE from raw bytes"
    SUMMARY = "Train byte-pair encoding merge by merge on your text or ours."
    EXPLANATION = """
A tokenizer starts from the **256 byte values**: every text is already a list of bytes, so
nothing is ever unknown. **Byte-pair encoding** then repeats one step: count every pair of
neighbouring tokens, take the **most frequent pair**, give it a **new id**, and replace each
occurrence. Each merge adds one token to the vocabulary and makes the text shorter.

Press `space` for one merge and watch the pair, its count and the new token (highlighted in
the text). `n` runs on to 100, 250, 500… merges (`s` stops), `b` undoes one, `t` switches
between your prompt and fwdtui's sample text. Text is first split into words, numbers and
punctuation (GPT-4's pattern), and merges never cross those borders.
"""
    CODE_FUNCTIONS = (count_chunks, BPETrainer.merge_next, get_stats, merge)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "merge", "Merge", tooltip="Learn one more merge: the most frequent pair"),
        Binding("n", "run", "Run to N", tooltip="Keep merging up to the next milestone (100, 250, 500...)"),
        Binding("b", "undo", "Undo", show=False, tooltip="Forget the last merge"),
        Binding("s", "stop", "Stop", show=False, tooltip="Stop a long run where it is"),
        Binding("t", "toggle_text", "Text", show=False, tooltip="Train on your prompt or on the sample text"),
        Binding("0", "reset", "Reset", show=False, tooltip="Back to bytes only (no merges)"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.target = 0  # merges asked for
        self.use_prompt: bool | None = None  # None: the prompt when it is long enough
        self._stop = False

    def compose_visual(self) -> ComposeResult:
        yield Canvas(id="bpe-view", fill=True, min_width=8)

    # --- work -------------------------------------------------------------------------------
    def compute(self, snapshot: Snapshot) -> TrainingRun:
        self._stop = False
        text, source = training_text(snapshot.prompt, self.use_prompt)
        trainer = BPETrainer.from_text(text, GPT4_SPLIT_PATTERN)
        n_bytes = sum(len(w) * f for w, f in zip(trainer.words, trainer.freqs))
        target = self.target
        # the exact token count needs a pass over the unique chunks: take ~200 samples at most
        stride = max(1, target // 200)
        compression = [1.0]
        finished = stopped = False
        long_run = target - len(trainer.history) > 50
        while len(trainer.history) < target:
            if snapshot.cancelled() or self._stop:
                stopped = True
                break
            if trainer.merge_next() is None:
                finished = True
                break
            done = len(trainer.history)
            if done % stride == 0 or done == target:
                n_tokens = sum(len(w) * f for w, f in zip(trainer.words, trainer.freqs))
                compression.append(n_bytes / n_tokens)
            if long_run and done % 25 == 0:
                snapshot.progress(done / target, f"Training: merge {done:,} of {target:,} (s stops)")
        if not finished and not trainer.pair_counts:
            finished = True  # the last merge asked for was also the last one possible
        n_tokens = sum(len(w) * f for w, f in zip(trainer.words, trainer.freqs))
        if trainer.history and compression[-1] != n_bytes / n_tokens:
            compression.append(n_bytes / n_tokens)  # the run ended between two samples
        steps = tuple(trainer.history)
        tokenizer = TrainedTokenizer(
            merges={s.pair: s.new_id for s in steps}, pattern=GPT4_SPLIT_PATTERN,
            history=list(steps), name=f"ours ({256 + len(steps)} tokens)",
        )
        ids = tuple(tokenizer.encode(text[:4000]))  # enough for any screen
        # highest count first, lowest ids on ties: the order the trainer picks them in
        top = sorted(trainer.pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
        next_pairs = tuple((trainer.vocab[a], trainer.vocab[b], n) for (a, b), n in top)
        return TrainingRun(text, source, steps, n_bytes, n_tokens, tuple(compression),
                           finished, stopped, tokenizer, ids, next_pairs)

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, result: TrainingRun) -> None:
        if result.stopped or result.finished:
            self.target = len(result.steps)  # continue from where it ended, not from the ask
        if result.steps:
            remember_trained(self.session, result.tokenizer)
        self.update_breadcrumb(f"merge {len(result.steps):,} · vocab {256 + len(result.steps):,}")
        self.query_one("#bpe-view", Canvas).paint_with(lambda w, h: self.paint(result, w, h))

    def paint(self, run: TrainingRun, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        n = len(run.steps)
        out.append(f"{n:,} merge{'' if n == 1 else 's'}", style="bold")
        out.append(f" · vocab {256 + n:,} · {run.n_bytes:,} bytes → {run.n_tokens:,} tokens · ")
        out.append(f"{run.n_bytes / max(1, run.n_tokens):.2f} bytes/token", style="bold")
        out.append("\n")
        last = run.steps[-1] if run.steps else None
        if last is None:
            out.append("Bytes only: every byte is a token. Press space for the first merge.", style=DIM)
        else:
            a, b = run.tokenizer.vocab[last.pair[0]], run.tokenizer.vocab[last.pair[1]]
            out.append(f"merge {last.rank + 1}: ")
            out.append(f"{quoted(a)} + {quoted(b)}", style="bold")
            out.append(" → ")
            out.append(quoted(last.token), style=f"bold {ACCENT}")
            out.append(f" id {last.new_id}, seen {last.count:,}×")
        if run.finished:
            out.append("  (no pair left: every chunk is one token)", style=DIM)
        elif run.stopped:
            out.append("  (stopped)", style=DIM)
        out.append("\n")
        first = run.compression[0]
        out.append("bytes/token ", style=DIM)
        spark_w = max(8, min(40, width - 30))
        out.append_text(sparkline(run.compression, spark_w, vmin=first))
        out.append(f" {first:.2f} → {run.compression[-1]:.2f} as merges grow", style=DIM)
        out.append("\n")
        header = 4
        if height >= 12 and run.next_pairs:
            out.append("next pairs: ", style="bold")
            for a, b, count in run.next_pairs:
                out.append(f"{quoted(a, 8)}+{quoted(b, 8)} {count}  ", style=DIM)
            out.append("\n")
            header += 1

        body_h = max(1, height - header)
        pieces = pieces_of(run.tokenizer, run.ids)
        highlight = (last.new_id,) if last else ()
        wide = width >= 70 and run.steps
        chips_w = width - 30 if wide else width
        chips, shown = chip_rows(pieces, chips_w, body_h, highlight)
        if wide:
            out.append_text(side_by_side(chips, self._merge_list(run, body_h), chips_w))
        else:
            out.append_text(chips)
        out.append("\n")
        more = len(pieces) - shown
        note = f"{run.source} in tokens, the newest highlighted"
        if more > 0:
            note += f" · {more:,} more tokens"
        out.append(note, style=DIM)
        return out

    def _merge_list(self, run: TrainingRun, rows: int) -> Text:
        """The latest merges, newest first: id, the joined token, its count."""
        out = Text(no_wrap=True, overflow="crop")
        out.append("id    new token      count", style="bold")
        for step in reversed(run.steps[-(rows - 1):]):
            out.append("\n")
            label = set_cell_size(quoted(step.token, 13), 14)  # CJK takes two columns a character
            style = f"bold {ACCENT}" if step is run.steps[-1] else ""
            out.append(f"{step.new_id:<5} {label} {step.count:>5}", style=style)
        return out

    # --- playground ---------------------------------------------------------------------------
    def action_merge(self) -> None:
        if self.result is not None and self.result.finished:
            self.notify("Every chunk is a single token: there is no pair left to merge.", timeout=3)
            return
        self.target += 1
        self.recompute()

    def action_run(self) -> None:
        if self.result is not None and self.result.finished:
            self.notify("Training is complete: no pair is left to merge.", timeout=3)
            return
        self.target = next((t for t in RUN_TARGETS if t > self.target), self.target + 1000)
        self.recompute()

    def action_undo(self) -> None:
        if self.target > 0:
            self.target -= 1
            self.recompute()

    def action_stop(self) -> None:
        self._stop = True

    def action_reset(self) -> None:
        self.target = 0
        self.recompute()

    def action_toggle_text(self) -> None:
        prompt_used = self.result is not None and self.result.source.startswith("your prompt")
        self.use_prompt = not prompt_used
        self.target = 0
        self.recompute()
