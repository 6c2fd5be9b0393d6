"""The chapter frame every chapter shares, and the registry of sections and chapters.

A chapter is a `Chapter` subclass (a Textual Screen) decorated with `@register`. The frame draws
the breadcrumb, the explanation, the visual area, the code panel and the footer; it runs the
chapter's `compute` in a thread worker and hands the result to `draw` on the UI thread, dropping
results computed for an older prompt or model. See docs/chapters.md.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

from rich.markdown import Markdown
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from fwdtui.errors import FwdtuiError
from fwdtui.session import Session, Snapshot

# --------------------------------------------------------------------------------------------
# Sections and the chapters planned in each (the index lists the planned ones as "not written
# yet" until a module registers a chapter with that id).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedChapter:
    """A chapter the course promises; `id` is the id its module must register under."""

    id: str
    title: str
    summary: str


@dataclass(frozen=True)
class Section:
    """One of the nine sections of the course, in index order."""

    id: str
    number: int
    title: str
    summary: str
    planned: tuple[PlannedChapter, ...]


def _p(id: str, title: str, summary: str) -> PlannedChapter:
    return PlannedChapter(id, title, summary)


SECTIONS: tuple[Section, ...] = (
    Section("transformer", 1, "Inside the Transformer",
            "The whole forward pass of the loaded model on your prompt, one step at a time.", (
        _p("transformer.journey", "The journey of a prompt",
           "Text to tokens to vectors through every block to the next token, step by step."),
    )),
    Section("attention", 2, "The Attention Mechanism",
            "How each token gathers information from the tokens before it.", (
        _p("attention.why", "Why attention", "What a token's vector knows before and after attention."),
        _p("attention.scaled-dot-product", "Scaled dot-product attention",
           "Real q, k, v numbers: dot products, scale, causal mask, softmax, weighted sum."),
        _p("attention.multi-head", "Multi-head attention",
           "Every head of a layer, what each one looks at, and what happens without it."),
        _p("attention.positional-encoding", "Positional encoding",
           "Learned, sinusoidal and rotary positions, with the model's own highlighted."),
        _p("attention.gqa", "Grouped-query attention", "Fewer key/value heads, a smaller KV cache."),
        _p("attention.mla", "Multi-head latent attention", "Keys and values through a small latent."),
        _p("attention.sparse", "Sparse attention", "Sliding windows, strides, blocks and sinks."),
        _p("attention.hybrid", "Hybrid architectures", "Linear attention and state-space layers."),
    )),
    Section("embeddings", 3, "Embeddings", "Tokens as vectors, and what their geometry means.", (
        _p("embeddings.lookup", "The lookup table", "A token id selects one row of a matrix."),
        _p("embeddings.neighbours", "Similar tokens cluster", "Nearest neighbours and a 2-D map."),
        _p("embeddings.analogies", "Analogies", "Vector arithmetic on word embeddings."),
        _p("embeddings.contextual", "Contextual representations",
           "The same word in different contexts, layer by layer."),
        _p("embeddings.sentence", "Sentence embeddings", "Pooling token vectors into one."),
        _p("embeddings.retrieval", "Retrieval", "Finding the right passage for a question (RAG)."),
        _p("embeddings.unembedding", "The unembedding", "From the last vector back to token scores."),
    )),
    Section("tokenizer", 4, "Tokenizer Training", "How a vocabulary is built from raw bytes.", (
        _p("tokenizer.bpe", "BPE from raw bytes", "Train byte-pair encoding merge by merge."),
        _p("tokenizer.merge-rules", "Merge rules", "Encoding new text by applying merges in order."),
        _p("tokenizer.bytes", "Byte-level encoding", "UTF-8 bytes, and tokens holding part of a character."),
        _p("tokenizer.vocab-size", "Vocabulary design", "Vocabulary size against compression."),
        _p("tokenizer.special-tokens", "Special tokens", "End-of-text, BOS/EOS and chat templates."),
        _p("tokenizer.compare", "Comparing tokenizers", "The same text through several tokenizers."),
    )),
    Section("training", 5, "Training & Fine-tuning", "From next-token loss to an assistant.", (
        _p("training.pretraining", "Pre-training", "Per-token loss, perplexity and a tiny live training run."),
        _p("training.sft", "Supervised fine-tuning", "Chat templates and loss masking."),
        _p("training.rlhf", "RLHF", "A reward model and the KL penalty."),
        _p("training.grpo", "GRPO", "Group-relative advantages on real samples."),
        _p("training.dpo", "DPO", "Preference optimisation from log-probability ratios."),
        _p("training.base-to-assistant", "From base model to assistant", "The whole recipe."),
    )),
    Section("modern", 6, "Modern Techniques", "Ideas that shape current models.", (
        _p("modern.moe", "Mixture of experts", "A router sends each token to a few experts."),
        _p("modern.reasoning", "Reasoning chains", "Thinking out loud before answering."),
        _p("modern.tool-use", "Tool use", "Calling functions from generated text."),
        _p("modern.multimodal", "Multimodal inputs", "Images and sound as tokens."),
        _p("modern.long-context", "Long context", "Stretching positions and memory."),
    )),
    Section("quantization", 7, "Quantization", "Fewer bits per weight, and what it costs.", (
        _p("quantization.formats", "Number formats", "FP32, FP16, BF16, INT8, INT4 and NF4."),
        _p("quantization.damage", "Quantizing this model", "Quantize the loaded model and measure the damage."),
        _p("quantization.gptq", "GPTQ", "Quantizing with second-order error correction."),
        _p("quantization.awq", "AWQ", "Protecting the weights that matter most."),
        _p("quantization.bitsandbytes", "bitsandbytes", "LLM.int8 outliers and NF4."),
        _p("quantization.gguf", "GGUF block formats", "How llama.cpp stores quantized blocks."),
        _p("quantization.tradeoffs", "Trade-offs", "Size, speed and quality side by side."),
    )),
    Section("engine", 8, "The Inference Engine", "How serving systems make generation fast.", (
        _p("engine.prefill-decode", "Prefill and decode", "One pass over the prompt, then a token at a time."),
        _p("engine.kv-cache", "The KV cache", "Keeping keys and values instead of recomputing them."),
        _p("engine.batching", "Batching", "Static against continuous batching."),
        _p("engine.paged-attention", "PagedAttention", "The KV cache in fixed-size pages."),
        _p("engine.flash-attention", "FlashAttention", "Tiled attention with an online softmax."),
        _p("engine.speculative", "Speculative decoding", "A small model drafts, the big one checks."),
        _p("engine.sampling", "Sampling strategies", "Greedy, temperature, top-k, top-p and more."),
        _p("engine.prefix-caching", "Prefix caching", "Reusing the cache of a shared prefix."),
        _p("engine.roofline", "Memory and the roofline", "Why decoding is bound by memory."),
        _p("engine.serving", "Serving frameworks", "What the common servers do, compared."),
    )),
    Section("explorer", 9, "Architecture Explorer", "Published architectures side by side.", (
        _p("explorer.compare", "Architectures compared",
           "GPT-2, LLaMA 3, Mistral, Gemma 2, Phi-3 and Qwen 2.5: configs and parameter counts."),
        _p("explorer.live", "Your models, live", "The locally available models through the same diagram."),
    )),
)

SECTIONS_BY_ID: dict[str, Section] = {s.id: s for s in SECTIONS}

# The registry: chapter id -> class. Filled by `@register` when fwdtui.chapters imports the
# section packages; read by the index, the command palette and `fwdtui chapters`.
_REGISTRY: dict[str, type["Chapter"]] = {}


def register(cls: type["Chapter"]) -> type["Chapter"]:
    """Class decorator that makes a chapter appear in the index, the palette and the CLI."""
    if not cls.ID or "." not in cls.ID:
        raise ValueError(f"{cls.__name__}.ID must look like 'section.slug', got {cls.ID!r}")
    section = cls.ID.split(".", 1)[0]
    if cls.SECTION != section or section not in SECTIONS_BY_ID:
        raise ValueError(
            f"{cls.__name__}: SECTION {cls.SECTION!r} must be one of {sorted(SECTIONS_BY_ID)} "
            f"and match the id prefix {section!r}"
        )
    if not cls.TITLE:
        raise ValueError(f"{cls.__name__} needs a TITLE")
    existing = _REGISTRY.get(cls.ID)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"chapter id {cls.ID!r} registered twice ({existing} and {cls})")
    _REGISTRY[cls.ID] = cls
    return cls


@dataclass(frozen=True)
class ChapterEntry:
    """One line of the index: a written chapter (`cls` set) or a planned one."""

    id: str
    section: Section
    title: str
    summary: str
    cls: type["Chapter"] | None

    @property
    def written(self) -> bool:
        return self.cls is not None


def section_entries(section: Section) -> list[ChapterEntry]:
    """The chapters of a section in course order: planned order first, then any extra ones."""
    entries: list[ChapterEntry] = []
    for plan in section.planned:
        cls = _REGISTRY.get(plan.id)
        if cls is not None:
            entries.append(ChapterEntry(plan.id, section, cls.TITLE, cls.SUMMARY or plan.summary, cls))
        else:
            entries.append(ChapterEntry(plan.id, section, plan.title, plan.summary, None))
    planned_ids = {p.id for p in section.planned}
    for cid, cls in _REGISTRY.items():
        if cls.SECTION == section.id and cid not in planned_ids:
            entries.append(ChapterEntry(cid, section, cls.TITLE, cls.SUMMARY, cls))
    return entries


def all_entries() -> list[ChapterEntry]:
    """Every chapter, written or planned, in course order."""
    return [entry for section in SECTIONS for entry in section_entries(section)]


def written_chapters() -> list[type["Chapter"]]:
    """The chapter classes that exist, in course order (what `[` and `]` step through)."""
    return [entry.cls for entry in all_entries() if entry.cls is not None]


def chapter_table() -> list[dict[str, Any]]:
    """Rows for `fwdtui chapters [--json]`: id, section, title, summary, written."""
    return [
        {
            "id": e.id,
            "section": e.section.id,
            "section_title": e.section.title,
            "title": e.title,
            "summary": e.summary,
            "written": e.written,
        }
        for e in all_entries()
    ]


def find_chapter(query: str) -> type["Chapter"]:
    """The chapter with this id, or with this unique last part ("journey"); else an error."""
    query = query.strip().lower()
    if query in _REGISTRY:
        return _REGISTRY[query]
    matches = [cls for cid, cls in _REGISTRY.items() if cid.split(".", 1)[1] == query]
    if len(matches) == 1:
        return matches[0]
    planned = {e.id: e for e in all_entries()}
    if query in planned:
        raise FwdtuiError(
            f"The chapter {query!r} is planned but not written yet.",
            "Run `fwdtui chapters` to see the chapters you can open.",
        )
    raise FwdtuiError(
        f"There is no chapter called {query!r}.",
        "Run `fwdtui chapters` to list the chapter ids.",
    )


# --------------------------------------------------------------------------------------------
# The frame
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComputeDone:
    """A compute worker's return value: the result and the session version it belongs to."""

    version: int
    result: Any


class SessionChanged(Message):
    """Posted to every screen when the prompt or the model changed."""


class ModelStatusChanged(Message):
    """Posted to every screen when the model's loading status changed (progress, error)."""


class ComputeProgress(Message):
    """A compute worker's progress; the frame shows the latest one only."""

    def __init__(self, fraction: float | None, text: str) -> None:
        super().__init__()
        self.fraction = fraction
        self.text = text


class SmallTerminalNotice(Static):
    """Covers the screen with a notice when the terminal is smaller than 80x24."""

    MIN_WIDTH = 80
    MIN_HEIGHT = 24

    DEFAULT_CSS = """
    SmallTerminalNotice {
        layer: notice; dock: top; width: 100%; height: 100%; display: none;
        background: $panel; color: $text; content-align: center middle; text-style: bold;
    }
    """

    def check(self, width: int, height: int) -> None:
        small = width < self.MIN_WIDTH or height < self.MIN_HEIGHT
        self.display = small
        if small:
            # Say the fix first: on a very small terminal only the first words may fit.
            text = (f"Make the window larger: fwdtui needs at least {self.MIN_WIDTH}x{self.MIN_HEIGHT}, "
                    f"this one is {width}x{height}. (q quits)")
            self.update(text if width >= 40 else f"Enlarge: {self.MIN_WIDTH}x{self.MIN_HEIGHT} needed")


class Explanation(VerticalScroll, can_focus=False):
    """The chapter's text; never takes focus, so arrow keys stay with the chapter's playground."""


class FwdScreen(Screen):
    """A screen that shows the small-terminal notice; the index and every chapter are one."""

    def compose_notice(self) -> ComposeResult:
        yield SmallTerminalNotice()

    def on_resize(self, event: Any) -> None:
        for notice in self.query(SmallTerminalNotice):
            notice.check(event.size.width, event.size.height)

    def on_mount(self) -> None:
        size = self.app.size
        for notice in self.query(SmallTerminalNotice):
            notice.check(size.width, size.height)


class Chapter(FwdScreen):
    """The base of every chapter. Subclass it, set the class variables, and decorate with @register.

    Override `compose_visual` (the widgets of the visual area), `compute` (heavy work, runs in a
    thread on a `Snapshot`), and `draw` (puts a result into the widgets, on the UI thread).
    Playground keys are ordinary Textual BINDINGS on the subclass with `action_*` methods; an
    action that only changes the view calls `redraw()`, one that needs new numbers `recompute()`.
    """

    ID: ClassVar[str] = ""
    SECTION: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""
    EXPLANATION: ClassVar[str] = ""  # Markdown, our own words
    CODE_FUNCTIONS: ClassVar[tuple[Callable[..., Any], ...]] = ()
    NEEDS_MODEL: ClassVar[bool] = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the index"),
        Binding("left_square_bracket", "prev_chapter", "Prev", key_display="[", show=False,
                tooltip="Previous chapter"),
        Binding("right_square_bracket", "next_chapter", "Next", key_display="]", show=False,
                tooltip="Next chapter"),
        Binding("c", "toggle_code", "Code", tooltip="Show or hide the source of this view"),
        Binding("ctrl+r", "retry", "Retry", show=False, tooltip="Compute this view again"),
        Binding("shift+up", "scroll_text(-1)", "Text up", show=False, tooltip="Scroll the explanation up"),
        Binding("shift+down", "scroll_text(1)", "Text down", show=False, tooltip="Scroll the explanation down"),
        Binding("pageup", "code_page(-1)", "Code up", show=False, tooltip="Scroll the code panel up"),
        Binding("pagedown", "code_page(1)", "Code down", show=False, tooltip="Scroll the code panel down"),
    ]
    # nothing takes focus by itself, so the chapter's keys (arrows too) always reach the chapter;
    # tab focuses the code panel when the user wants to scroll it with the arrows
    AUTO_FOCUS = ""

    DEFAULT_CSS = """
    Chapter { layers: base notice; }
    Chapter #chapter-top { height: 1; background: $primary-background; }
    Chapter #breadcrumb { width: 1fr; height: 1; padding: 0 1; }
    Chapter #session-info { width: auto; max-width: 50%; height: 1; padding: 0 1; color: $text-muted; }
    Chapter #chapter-body { height: 1fr; }
    Chapter #chapter-main { width: 1fr; height: 1fr; }
    Chapter #explanation { height: auto; max-height: 35%; padding: 0 1; border-bottom: solid $primary-darken-2; }
    Chapter #chapter-message { height: auto; padding: 0 1; display: none; }
    Chapter #chapter-message.-error { display: block; background: $error 20%; color: $text; }
    Chapter #chapter-message.-info { display: block; background: $primary 15%; color: $text; }
    Chapter #visual { height: 1fr; padding: 0 1; }
    Chapter CodePanel { width: 60%; display: none; }
    Chapter.-show-code CodePanel { display: block; }
    """

    def __init__(self, session: Session | None = None) -> None:
        super().__init__()
        self._session = session
        self.result: Any = None  # the last accepted result (what `draw` last got)
        self._worker: Worker[Any] | None = None
        self._last_progress = 0.0
        self._drawn_version = -1
        # extra workers started with run_in_thread: worker -> (session version, callback)
        self._extra: dict[Worker[Any], tuple[int, Callable[[Any], None]]] = {}

    # --- what subclasses override ---------------------------------------------------------
    def compose_visual(self) -> ComposeResult:
        """Yield the widgets of the visual area (called once, in compose)."""
        yield Static("")

    def compute(self, snapshot: Snapshot) -> Any:
        """Heavy work on a worker thread: read only `snapshot` (and plain attributes of self)."""
        return None

    def draw(self, result: Any) -> None:
        """Put a result into the widgets (UI thread)."""

    # --- helpers for subclasses ------------------------------------------------------------
    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self.app.session  # type: ignore[attr-defined]
        return self._session

    def recompute(self) -> None:
        """Start `compute` again in a worker (cancelling one in flight)."""
        if not self.is_mounted:
            return
        if self.NEEDS_MODEL and self.session.model is None:
            self._show_no_model()
            return
        if self.result is None:
            self.show_message("Computing…", error=False)
        self._worker = self.run_worker(
            self._compute_in_thread,
            name=f"compute {self.ID}",
            group="compute",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def run_in_thread(self, work: Callable[[], Any], on_done: Callable[[Any], None], group: str = "extra") -> None:
        """Run `work()` in a thread worker and `on_done(result)` on the UI thread when it finishes.

        For playground actions that need heavy work besides `compute` (one more decode step, a
        different layer's statistics). A result that arrives after the prompt or model changed
        is dropped; an error is shown in place. One worker per group: a new one cancels the old.
        """
        if not self.is_mounted:
            return
        worker = self.run_worker(work, name=f"{self.ID} {group}", group=f"{self.ID}:{group}",
                                 thread=True, exclusive=True, exit_on_error=False)
        self._extra[worker] = (self.session.version, on_done)

    def is_busy(self, group: str = "extra") -> bool:
        """True while a `run_in_thread` worker of this group is still running."""
        return any(w.group == f"{self.ID}:{group}" and w.is_running for w in self._extra)

    def redraw(self) -> None:
        """Draw the last result again (after a view-only change such as another head)."""
        if self.result is not None:
            self._safe_draw(self.result)

    def set_explanation(self, markdown: str) -> None:
        """Replace the explanation text (a chapter with steps changes it per step)."""
        if self.is_mounted:
            self.query_one("#explanation-text", Static).update(Markdown(markdown))

    def set_code(self, functions: Iterable[Callable[..., Any]]) -> None:
        """Point the code panel at other core functions."""
        if self.is_mounted:
            from fwdtui.widgets.code_panel import CodePanel

            self.query_one(CodePanel).set_functions(functions)

    def show_message(self, text: str, error: bool = True, fix: str | None = None) -> None:
        """A message above the visual: an error (with the fix) or a notice."""
        message = self.query_one("#chapter-message", Static)
        body = Text()
        if error:
            body.append("⚠ ", style="bold")
        body.append(text)
        if fix:
            body.append("\nFix: ", style="bold")
            body.append(fix)
        message.update(body)
        message.set_class(error, "-error")
        message.set_class(not error, "-info")

    def clear_message(self) -> None:
        message = self.query_one("#chapter-message", Static)
        message.remove_class("-error", "-info")
        message.update("")

    _crumb_extra = ""

    def update_breadcrumb(self, extra: str | None = None) -> None:
        """The top line: section > chapter (n of N), plus chapter-specific text.

        Without `extra` (the frame redrawing it, e.g. on a resize) the chapter's last text is kept.
        """
        if extra is None:
            extra = self._crumb_extra
        self._crumb_extra = extra
        if not self.is_mounted:
            return
        chapters = written_chapters()
        n = chapters.index(type(self)) + 1 if type(self) in chapters else 0
        section = SECTIONS_BY_ID.get(self.SECTION)
        crumb = Text()
        crumb.append(section.title if section else self.SECTION, style="bold")
        crumb.append(" › ")
        crumb.append(self.TITLE, style="bold")
        crumb.append(f"  ({n} of {len(chapters)})", style="dim")
        if extra:
            crumb.append(f"  {extra}")
        crumb.truncate(max(10, self.size.width - 2), overflow="ellipsis")
        self.query_one("#breadcrumb", Static).update(crumb)
        room = self.size.width - crumb.cell_len - 4
        info = self.query_one("#session-info", Static)
        # Too narrow for both: the chapter's own line wins (the index shows the model and the prompt).
        info.display = room >= SESSION_MIN
        info.update(_session_line(self.session, room) if room >= SESSION_MIN else "")

    # --- the frame -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        from fwdtui.widgets.code_panel import CodePanel

        with Horizontal(id="chapter-top"):
            yield Static(id="breadcrumb")
            yield Static(id="session-info")
        with Horizontal(id="chapter-body"):
            with Vertical(id="chapter-main"):
                with Explanation(id="explanation"):
                    yield Static(Markdown(self.EXPLANATION), id="explanation-text")
                yield Static(id="chapter-message")
                with Vertical(id="visual"):
                    yield from self.compose_visual()
            yield CodePanel(self.CODE_FUNCTIONS, id="code")
        yield Footer()
        yield from self.compose_notice()

    def on_mount(self) -> None:
        self.update_breadcrumb()
        self.recompute()

    def on_resize(self, event: Any) -> None:
        # FwdScreen.on_resize runs too (Textual calls the handler of every class in the MRO)
        self.update_breadcrumb()

    def on_screen_resume(self) -> None:
        # the prompt or model may have changed while another screen was on top
        if self.is_mounted and self._drawn_version != self.session.version:
            self.update_breadcrumb()
            self.recompute()

    def _compute_in_thread(self) -> ComputeDone:
        worker = get_current_worker()
        snapshot = self.session.snapshot(
            progress=self._progress_from_thread, cancelled=lambda: worker.is_cancelled
        )
        return ComputeDone(snapshot.version, self.compute(snapshot))

    def _progress_from_thread(self, fraction: float | None, text: str) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.1 and fraction not in (0.0, 1.0):
            return  # replace rather than flood: at most ten updates a second
        self._last_progress = now
        self.post_message(ComputeProgress(fraction, text))

    def on_compute_progress(self, message: ComputeProgress) -> None:
        pct = "" if message.fraction is None else f" {message.fraction:.0%}"
        self.show_message(f"{message.text}{pct}", error=False)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker in self._extra:
            self._extra_changed(event)
            return
        if event.worker is not self._worker:
            return  # an older computation, or another worker of the chapter's own
        if event.state == WorkerState.SUCCESS:
            done = event.worker.result
            if not isinstance(done, ComputeDone) or done.version != self.session.version:
                return  # computed for an older prompt or model: drop it
            self.clear_message()
            self.result = done.result
            self._drawn_version = done.version
            self._safe_draw(done.result)
        elif event.state == WorkerState.ERROR:
            self._show_error(event.worker.error)

    def _extra_changed(self, event: Worker.StateChanged) -> None:
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        version, on_done = self._extra.pop(event.worker)
        if event.state == WorkerState.ERROR:
            self._show_error(event.worker.error)
        elif event.state == WorkerState.SUCCESS and version == self.session.version:
            try:
                on_done(event.worker.result)
            except Exception as err:
                self._show_error(err)

    def _safe_draw(self, result: Any) -> None:
        try:
            self.draw(result)
        except Exception as err:  # a drawing bug must not take the app down
            self._show_error(err)

    def _show_error(self, error: BaseException | None) -> None:
        if isinstance(error, FwdtuiError):
            self.show_message(error.message, error=True, fix=error.fix)
        else:
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            self.log.error(detail)
            self.show_message(
                f"This view failed: {detail}",
                error=True,
                fix="Press ctrl+r to retry, or [ / ] to go to another chapter; this is a bug in fwdtui.",
            )

    def _show_no_model(self) -> None:
        status = self.session.status
        if status.state == "loading":
            self.show_message(
                f"{status.describe()}\nThis chapter fills in as soon as the model is ready.",
                error=False,
            )
        elif status.state == "error" and status.error is not None:
            self.show_message(
                f"This chapter needs a model. {status.error.message}",
                error=True,
                fix=status.error.fix or "Press m to choose a model.",
            )
        else:
            self.show_message(
                "This chapter needs a model and none is loaded.",
                error=True,
                fix="Press m to choose a model, or run `fwdtui download` to fetch the default one.",
            )

    def on_session_changed(self, message: SessionChanged) -> None:
        self.update_breadcrumb()
        self.recompute()

    def on_model_status_changed(self, message: ModelStatusChanged) -> None:
        self.update_breadcrumb()
        if self.NEEDS_MODEL and self.session.model is None:
            self._show_no_model()

    # --- frame actions -----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_code(self) -> None:
        self.toggle_class("-show-code")

    def action_scroll_text(self, direction: int) -> None:
        self.query_one("#explanation", Explanation).scroll_relative(y=2 * direction, animate=False)

    def action_code_page(self, direction: int) -> None:
        from fwdtui.widgets.code_panel import CodePanel

        if not self.has_class("-show-code"):
            raise SkipAction()  # let a focused widget or the chapter use the key
        panel = self.query_one(CodePanel)
        (panel.scroll_page_down if direction > 0 else panel.scroll_page_up)(animate=False)

    def action_prev_chapter(self) -> None:
        self._step_chapter(-1)

    def action_next_chapter(self) -> None:
        self._step_chapter(+1)

    def action_retry(self) -> None:
        self.recompute()

    def _step_chapter(self, delta: int) -> None:
        chapters = written_chapters()
        if type(self) not in chapters or len(chapters) < 2:
            self.notify("This is the only chapter written so far.", timeout=3)
            return
        i = (chapters.index(type(self)) + delta) % len(chapters)
        self.app.switch_screen(chapters[i](self.session))


SESSION_MIN = 14  # columns the model status needs at the top right to say anything useful


def _session_line(session: Session, room: int) -> Text:
    """The model status, and the prompt too when there is room, for the top right of a chapter."""
    status = session.status.describe()
    line = Text()
    prompt_room = room - len(status) - 4
    if prompt_room >= 12:
        prompt = session.prompt.replace("\n", "⏎")
        if len(prompt) > prompt_room:
            prompt = prompt[: prompt_room - 1] + "…"
        line.append(f"“{prompt}”  ")
    line.append(status if len(status) <= max(room, 8) else status[: max(room, 8) - 1] + "…", style="italic")
    return line
