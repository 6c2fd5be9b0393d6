"""Vocabulary design: vocab size against compression, the embedding table's cost, and the script tax."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.tokenizer.common import hbar_rows
from fwdtui.session import Snapshot
from fwdtui.tokenizers.compare import SCRIPT_SAMPLES, candidates, script_costs, tokenize
from fwdtui.tokenizers.corpus import benchmark_text, sample_text
from fwdtui.tokenizers.trainer import GPT4_SPLIT_PATTERN, BPETrainer, TrainedTokenizer
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.palette import ACCENT, DIM

SIZES = (256, 512, 1024, 2048, 4096, 8192)
TRAIN_BYTES = 300_000
D_MODELS = (576, 768, 2048, 4096, 8192)
VIEWS = ("size", "scripts")


@dataclass(frozen=True)
class SizeRow:
    """One vocabulary: its size and what it makes of the measuring texts."""

    name: str
    vocab_size: int
    bytes_per_token: float  # on the sample text
    prompt_tokens: int  # the user's prompt in tokens
    trained_here: bool


@dataclass(frozen=True)
class ScriptRow:
    name: str
    n_tokens: tuple[int, ...]  # per language, in SCRIPT_SAMPLES order


@dataclass(frozen=True)
class VocabStudy:
    rows: tuple[SizeRow, ...]
    scripts: tuple[ScriptRow, ...]
    languages: tuple[str, ...]
    chars: tuple[int, ...]
    prompt_chars: int
    train_bytes: int
    model_d: int | None  # the loaded model's n_embd
    model_vocab: int | None


@register
class VocabSizeChapter(Chapter):
    ID = "tokenizer.vocab-size"
    SECTION = "tokenizer"
    TITLE = "Vocabulary design"
    SUMMARY = "Vocabulary size against compression, embedding cost and the cost of other scripts."
    EXPLANATION = """
How many tokens should a vocabulary have? More merges make text **shorter** (more bytes per
token: cheaper attention, more text in the context window) but every token is a **row of the
embedding table** (and of the unembedding): `vocab × d_model` parameters, trained only as often
as the token appears. Returns shrink: each doubling buys less compression.

Here we train one BPE run to 8,192 tokens on ~300 KB of text and stop it at each size; real
tokenizers are measured on the same text. `v` shows what each tokenizer charges for **the same
sentence in other scripts**; `+`/`-` change `d_model` for the table cost.
"""
    CODE_FUNCTIONS = (BPETrainer.merge_next, script_costs)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "next_view", "View", tooltip="Size vs compression, or tokens per script"),
        Binding("plus,equals_sign", "d_model(1)", "d_model+", key_display="+", tooltip="A wider model"),
        Binding("minus", "d_model(-1)", "d_model-", key_display="-", show=False, tooltip="A narrower model"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.view = "size"
        self.d_index: int | None = None  # None: the loaded model's width (or 768)

    def compose_visual(self) -> ComposeResult:
        yield Canvas(id="vocab-view", fill=True, min_width=8)

    # --- work ---------------------------------------------------------------------------------
    def compute(self, snapshot: Snapshot) -> VocabStudy:
        corpus = benchmark_text(TRAIN_BYTES, seed=0)
        snapshot.progress(0.0, "Counting chunks in 300 KB of text")
        trainer = BPETrainer.from_text(corpus, GPT4_SPLIT_PATTERN)
        n_merges = SIZES[-1] - 256
        for step in trainer.steps():
            if snapshot.cancelled():
                return None  # type: ignore[return-value]  # dropped by the frame anyway
            if (step.rank + 1) % 64 == 0:
                snapshot.progress((step.rank + 1) / n_merges, f"Training to {SIZES[-1]:,} tokens")
            if step.rank + 1 >= n_merges:
                break
        history = trainer.history
        measure = sample_text()
        prompt = snapshot.prompt
        rows: list[SizeRow] = []
        ours_largest = None
        for size in SIZES:
            k = min(size - 256, len(history))
            tok = TrainedTokenizer(merges={s.pair: s.new_id for s in history[:k]},
                                   pattern=GPT4_SPLIT_PATTERN, name=f"ours {size}")
            m = tokenize(tok, measure)
            rows.append(SizeRow(f"ours {size:,}", 256 + k, m.bytes_per_token, len(tok.encode(prompt)), True))
            ours_largest = tok
        snapshot.progress(None, "Measuring the real tokenizers")
        scripts: list[ScriptRow] = []
        for cand in candidates(snapshot.model, keys=("gpt2", "smollm2", "model", "cl100k_base", "o200k_base")):
            if cand.tokenizer is None:
                continue
            m = tokenize(cand.tokenizer, measure)
            short = cand.label.split(" (")[0]
            rows.append(SizeRow(short, cand.tokenizer.n_vocab, m.bytes_per_token,
                                len(cand.tokenizer.encode(prompt)), False))
            scripts.append(ScriptRow(short, script_costs(cand.tokenizer, short).n_tokens))
        if ours_largest is not None:
            scripts.append(ScriptRow(f"ours {SIZES[-1]:,}", script_costs(ours_largest, "ours").n_tokens))
        rows.sort(key=lambda r: r.vocab_size)
        config = getattr(snapshot.model, "config", None)
        return VocabStudy(tuple(rows), tuple(scripts), tuple(SCRIPT_SAMPLES),
                          tuple(len(t) for t in SCRIPT_SAMPLES.values()), len(prompt), len(corpus.encode()),
                          getattr(config, "n_embd", None), getattr(config, "vocab_size", None))

    # --- drawing ------------------------------------------------------------------------------
    def d_model(self, study: VocabStudy) -> int:
        if self.d_index is None:
            return study.model_d or 768
        return D_MODELS[self.d_index]

    def draw(self, result: VocabStudy) -> None:
        if result is None:
            return
        self.update_breadcrumb(f"view: {self.view} · d_model {self.d_model(result):,}")
        self.query_one("#vocab-view", Canvas).paint_with(lambda w, h: self.paint(result, w, h))

    def paint(self, study: VocabStudy, width: int, height: int) -> Text:
        if self.view == "scripts":
            return self._paint_scripts(study, width, height)
        d = self.d_model(study)
        out = Text(no_wrap=True, overflow="crop")
        out.append("bytes per token on the sample text", style="bold")
        out.append(f" · table: vocab × d_model {d:,}, bf16\n", style=DIM)
        bars = []
        for r in study.rows:
            params = r.vocab_size * d
            note = f"{r.vocab_size:>7,} × {d:,} = {params / 1e6:7.1f}M  {2 * params / 2**20:6.0f} MiB"
            bars.append((r.name, r.bytes_per_token, note))
        highlight = None
        if study.model_vocab:
            highlight = next((k for k, r in enumerate(study.rows)
                              if not r.trained_here and r.vocab_size == study.model_vocab), None)
        chart = hbar_rows(bars, width, fmt="{:.2f}", highlight=highlight, label_width=11)
        out.append_text(chart)
        out.append("\n")
        lines_left = height - len(bars) - 2
        if lines_left >= 2:
            line = f"your prompt ({study.prompt_chars} chars) in tokens: " + " · ".join(
                f"{r.name} {r.prompt_tokens}" for r in study.rows if r.vocab_size >= 1024)
            out.append(line if len(line) <= width else line[: width - 1] + "…", style=DIM)
            out.append("\n")
        if lines_left >= 1:
            out.append(f"ours: one run on {study.train_bytes / 1e3:,.0f} KB made from the sample, "
                       "so it has seen it", style=DIM)
        return out

    def _paint_scripts(self, study: VocabStudy, width: int, height: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append("tokens for the same sentence", style="bold")
        out.append(" (× English in brackets)\n", style=DIM)
        names = [s.name for s in study.scripts]
        col = max(8, min(13, (width - 10) // max(1, len(names))))
        out.append(f"{'':<9}", style="bold")
        for name in names:
            out.append(f"{name[:col - 1]:>{col}}", style="bold")
        out.append("\n")
        english = {s.name: s.n_tokens[0] or 1 for s in study.scripts}
        for li, lang in enumerate(study.languages[: max(1, height - 3)]):
            out.append(f"{lang:<9}")
            counts = [s.n_tokens[li] for s in study.scripts]
            best = min(counts) if counts else 0
            for s, n in zip(study.scripts, counts):
                cell = f"{n} ({n / english[s.name]:.1f})" if li else f"{n}"
                out.append(f"{cell:>{col}}", style=f"bold {ACCENT}" if n == best else "")
            out.append("\n")
        out.append("highlighted: the cheapest; ours was trained on mostly English made-up text", style=DIM)
        return out

    # --- playground ---------------------------------------------------------------------------
    def action_next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        if self.result is not None:
            self.update_breadcrumb(f"view: {self.view} · d_model {self.d_model(self.result):,}")
        self.redraw()

    def action_d_model(self, delta: int) -> None:
        if self.result is None:
            return
        current = self.d_model(self.result)
        # the next listed width above (or below) the current one
        if delta > 0:
            wider = [i for i, d in enumerate(D_MODELS) if d > current]
            self.d_index = wider[0] if wider else len(D_MODELS) - 1
        else:
            narrower = [i for i, d in enumerate(D_MODELS) if d < current]
            self.d_index = narrower[-1] if narrower else 0
        self.update_breadcrumb(f"view: {self.view} · d_model {self.d_model(self.result):,}")
        self.redraw()
