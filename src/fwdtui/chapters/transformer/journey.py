"""Inside the Transformer: the whole forward pass on the user's prompt, one stage per key press."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.transformer.stages import STAGES, LensRow, View, lens_rows
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.model import Model
from fwdtui.core.reference import trust_line
from fwdtui.core.sampling import SamplingSettings, sample
from fwdtui.core.trace import Trace
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.layer_diagram import DiagramState, LayerDiagram
from fwdtui.widgets.palette import DIM
from fwdtui.widgets.token_strip import TokenPiece, pieces_for, token_piece

TEMPERATURES = (0.0, 0.2, 0.5, 0.7, 1.0, 1.3, 2.0)
TOP_KS = (0, 1, 3, 5, 10, 40)
TOP_PS = (1.0, 0.95, 0.9, 0.75, 0.5, 0.25)
# What the stage area says if a stage's painter fails (a bug): how to move on.
STAGE_FAILURE = "This stage could not be drawn ({error}). Press backspace or space to move on; this is a bug in fwdtui."


@dataclass(frozen=True)
class PrefillResult:
    """The prompt's forward pass: its Trace and the KV cache it filled."""

    model: Model
    pieces: tuple[TokenPiece, ...]
    trace: Trace
    cache: KVCache
    notices: tuple[str, ...]
    trust: str = ""  # the model's logits against a stored reference (core.reference.trust_line)


@dataclass(frozen=True)
class DecodeStep:
    """One generated token run through the model with the cache."""

    token: int
    trace: Trace


def _cycle(options: tuple[Any, ...], current: Any, delta: int) -> Any:
    """The next (or previous) option after `current`, clamped at the ends."""
    i = options.index(current) if current in options else 0
    return options[max(0, min(len(options) - 1, i + delta))]


@register
class JourneyChapter(Chapter):
    """Step through the forward pass: text, tokens, embeddings, a block, logits, sampling, the cache."""

    ID = "transformer.journey"
    SECTION = "transformer"
    TITLE = "The journey of a prompt"
    SUMMARY = "Text to tokens to vectors through every block to the next token, step by step."
    EXPLANATION = "Computing the forward pass…"
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "step(1)", "Next", tooltip="Next stage of the forward pass"),
        Binding("backspace", "step(-1)", "Prev", tooltip="Previous stage", show=False),
        Binding("g", "generate", "Generate", tooltip="Append the chosen token and run one cached decode step"),
        Binding("left", "position(-1)", "← token", show=False, tooltip="Select the previous token"),
        Binding("right", "position(1)", "→ token", show=False, tooltip="Select the next token"),
        Binding("comma", "layer(-1)", "Layer -", key_display=",", show=False, tooltip="Previous layer"),
        Binding("full_stop", "layer(1)", "Layer +", key_display=".", show=False, tooltip="Next layer"),
        Binding("h", "head(1)", "Head +", show=False, tooltip="Next attention head"),
        Binding("H", "head(-1)", "Head -", show=False, tooltip="Previous attention head"),
        Binding("t", "temperature(1)", "Temp +", show=False, tooltip="Raise the temperature"),
        Binding("T", "temperature(-1)", "Temp -", show=False, tooltip="Lower the temperature (0 = greedy)"),
        Binding("k", "top_k(1)", "Top-k +", show=False, tooltip="Keep fewer tokens (top-k; off = all)"),
        Binding("K", "top_k(-1)", "Top-k -", show=False, tooltip="Keep more tokens (top-k)"),
        Binding("n", "top_p(1)", "Top-p -", show=False, tooltip="Smaller nucleus (top-p)"),
        Binding("N", "top_p(-1)", "Top-p +", show=False, tooltip="Larger nucleus (top-p)"),
        Binding("r", "resample", "Resample", show=False, tooltip="Draw the next token again (new seed)"),
        Binding("home", "stage(0)", "First stage", show=False, tooltip="Back to the first stage"),
    ]

    DEFAULT_CSS = """
    JourneyChapter #stage-title { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    JourneyChapter #stage-hint { height: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    JourneyChapter #stage-body { text-overflow: ellipsis; }
    """

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.stage = 0
        self.layer_index = 0
        self.head = 0
        self.position = -1  # -1: the last token, until the user picks one
        self.settings = SamplingSettings()
        self.seed = 0
        self.generated: list[int] = []
        self.decode_traces: list[Trace] = []
        self.cache: KVCache | None = None
        self._lens: dict[int, list[LensRow]] = {}

    # --- frame hooks ---------------------------------------------------------------------------
    def compose_visual(self) -> ComposeResult:
        yield LayerDiagram(id="diagram")
        yield Static(id="stage-title")
        yield Canvas(id="stage-body", fill=True, min_width=0, failure=STAGE_FAILURE)
        yield Static(id="stage-hint")

    def compute(self, snapshot: Snapshot) -> PrefillResult:
        model = snapshot.require_model()
        if model.tokenizer is None:
            raise PromptError("This model has no tokenizer, so it cannot read a prompt.",
                              "Choose a model with tokenizer files (press m).")
        snapshot.progress(None, f"Running {model.info.name} on {len(snapshot.ids)} tokens")
        cache = model.new_cache()
        _, trace = model.forward(list(snapshot.ids), cache=cache, trace=True)
        pieces = tuple(pieces_for(model.tokenizer, snapshot.ids))
        return PrefillResult(model, pieces, trace, cache, snapshot.notices, trust_line(model))

    def draw(self, result: PrefillResult) -> None:
        # a new prefill: the generated tokens and the cache start over
        self.cache = result.cache
        self.generated = []
        self.decode_traces = []
        self._lens = {}
        cfg = result.model.config
        self.layer_index = min(self.layer_index, cfg.n_layer - 1)
        self.head = self.head % cfg.n_head
        if self.position >= len(result.pieces):
            self.position = -1
        if result.notices:
            self.show_message(" ".join(result.notices), error=False)
        self._show_stage()

    # --- the view ------------------------------------------------------------------------------
    @property
    def prefill(self) -> PrefillResult | None:
        return self.result

    def _selected(self) -> int:
        assert self.prefill is not None
        n = len(self.prefill.pieces)
        return n - 1 if self.position < 0 else min(self.position, n - 1)

    def _last_logits(self) -> np.ndarray:
        assert self.prefill is not None
        if self.decode_traces:
            return self.decode_traces[-1]["logits"][-1]
        return self.prefill.trace["logits"][-1]

    def _chosen(self, logits: np.ndarray) -> tuple[int, np.ndarray]:
        # the same seed and settings always give the same token, so stepping back and forth is stable
        rng = np.random.default_rng(self.seed * 1000 + len(self.generated))
        return sample(logits, self.settings, rng)

    def view(self) -> View:
        prefill = self.prefill
        assert prefill is not None
        logits = self._last_logits()
        chosen, dist = self._chosen(logits)
        position = self._selected()
        tok = prefill.model.tokenizer
        generated = [token_piece(t, tok.token_bytes(t), new=True) for t in self.generated]
        return View(
            model=prefill.model, trace=prefill.trace, pieces=list(prefill.pieces), position=position,
            layer=self.layer_index, head=self.head, settings=self.settings, last_logits=logits,
            distribution=dist, chosen=chosen, seed=self.seed, generated=generated, cache=self.cache,
            decode_traces=list(self.decode_traces), lens=self._lens.get(position), trust=prefill.trust,
        )

    def _show_stage(self) -> None:
        if self.prefill is None:
            return
        stage = STAGES[self.stage]
        view = self.view()
        cfg = view.cfg
        diagram_stage = stage.diagram
        self.query_one(LayerDiagram).update(DiagramState(cfg.family, cfg.n_layer, diagram_stage, self.layer_index))
        title = Text()
        title.append(f"{self.stage + 1}/{len(STAGES)} ", style=DIM)
        title.append(stage.title(view), style="bold")
        self.query_one("#stage-title", Static).update(title)
        self.query_one("#stage-body", Canvas).paint_with(lambda w, h: stage.paint(view, w, h))
        self.query_one("#stage-hint", Static).update(self._hint(stage.key))
        self.set_explanation(stage.explain(view))
        self.set_code(stage.code(view))
        if stage.key == "lens" and view.lens is None:
            self._compute_lens(view.position)

    def _hint(self, key: str) -> Text:
        keys = ["space next", "⌫ back"]
        if key in ("tokens", "embed", "pos") or STAGES[self.stage].in_block or key in (
            "final_norm", "logits", "probs", "lens"
        ):
            keys.append("← → token")
        if STAGES[self.stage].in_block:
            keys.append(", . layer")
        if key in ("attn", "attn_mix") or (key == "pos" and self.prefill and self.prefill.model.config.family != "gpt2"):
            keys.append("h H head")
        if key == "sample":
            keys += ["t T temp", "k K top-k", "n N top-p", "r redraw"]
        if key in ("sample", "append"):
            keys.append("g generate")
        keys.append("c code")
        return Text(" · ".join(keys), style=DIM)

    def _compute_lens(self, position: int) -> None:
        prefill = self.prefill
        assert prefill is not None
        model, trace = prefill.model, prefill.trace

        def done(rows: list[LensRow]) -> None:
            if self.prefill is prefill:
                self._lens[position] = rows
                self._show_stage()

        self.run_in_thread(lambda: lens_rows(model, trace, position), done, group="lens")

    # --- playground actions --------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        self.stage = max(0, min(len(STAGES) - 1, self.stage + delta))
        self._show_stage()

    def action_stage(self, index: int) -> None:
        self.stage = index
        self._show_stage()

    def action_position(self, delta: int) -> None:
        if self.prefill is None:
            return
        n = len(self.prefill.pieces)
        self.position = max(0, min(n - 1, self._selected() + delta))
        self._show_stage()

    def action_layer(self, delta: int) -> None:
        if self.prefill is None:
            return
        self.layer_index = max(0, min(self.prefill.model.config.n_layer - 1, self.layer_index + delta))
        self._show_stage()

    def action_head(self, delta: int) -> None:
        if self.prefill is None:
            return
        self.head = (self.head + delta) % self.prefill.model.config.n_head
        self._show_stage()

    def _set_settings(self, **change: Any) -> None:
        values = {"temperature": self.settings.temperature, "top_k": self.settings.top_k,
                  "top_p": self.settings.top_p, **change}
        self.settings = SamplingSettings(**values)
        self._show_stage()

    def action_temperature(self, delta: int) -> None:
        self._set_settings(temperature=_cycle(TEMPERATURES, self.settings.temperature, delta))

    def action_top_k(self, delta: int) -> None:
        # "more" top-k keys means keeping fewer tokens: walk the list from off (0) toward 1
        order = (0, 40, 10, 5, 3, 1)
        self._set_settings(top_k=_cycle(order, self.settings.top_k, delta))

    def action_top_p(self, delta: int) -> None:
        self._set_settings(top_p=_cycle(TOP_PS, self.settings.top_p, delta))

    def action_resample(self) -> None:
        self.seed += 1
        self._show_stage()

    def action_generate(self) -> None:
        prefill, cache = self.prefill, self.cache
        if prefill is None or cache is None:
            return
        if self.is_busy("generate"):
            self.notify("Still running the previous step…", timeout=2)
            return
        model = prefill.model
        if cache.length >= model.config.n_ctx:
            self.show_message(f"The context of {model.config.n_ctx} tokens is full.", error=True,
                              fix="Press p and shorten the prompt to generate more.")
            return
        token, _ = self._chosen(self._last_logits())

        def step() -> DecodeStep:
            _, trace = model.forward([token], cache=cache, trace=True)  # one row; k, v come from the cache
            return DecodeStep(token, trace)

        def done(result: DecodeStep) -> None:
            if self.prefill is not prefill:
                return
            self.generated.append(result.token)
            self.decode_traces.append(result.trace)
            self.stage = len(STAGES) - 1
            self._show_stage()

        self.run_in_thread(step, done, group="generate")
