"""Serving frameworks compared: what vLLM, TGI, llama.cpp, SGLang, TensorRT-LLM and Ollama each do."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, heading, note
from fwdtui.session import Snapshot


@dataclass(frozen=True)
class Framework:
    name: str
    runs_on: str
    kv_memory: str  # how the KV cache is managed
    batching: str
    prefix: str
    speculative: str
    quantization: str
    summary: str  # our own words


# Each cell is checked against the project's own documentation or source (see AS_OF); keep cells within
# CELL_MAX characters so the table never cuts one short, and the summaries in our own words.
FRAMEWORKS = (
    Framework("vLLM", "GPUs (also CPU, TPU)", "PagedAttention", "continuous", "yes (block hashes)",
              "EAGLE, MTP, draft, n-gram", "FP8, NVFP4, INT8, GPTQ/AWQ",
              "The project that introduced PagedAttention: the KV cache in fixed blocks with a block table per "
              "request, so memory is not reserved for the longest possible answer. A scheduler admits and "
              "preempts requests every step; an OpenAI-compatible HTTP server on top. GGUF files now need a "
              "separate plugin."),
    Framework("TGI", "GPUs, Gaudi, Inferentia", "paged", "continuous", "yes (since v3)", "Medusa, n-gram",
              "GPTQ, AWQ, FP8, EETQ, EXL2",
              "Hugging Face's Text Generation Inference: a Rust router in front of Python model servers, with "
              "continuous batching, paged attention and tensor parallelism. In maintenance mode since December "
              "2025 (minor fixes only): its maintainers now point new users to vLLM, SGLang, llama.cpp or MLX."),
    Framework("llama.cpp", "CPUs, Apple, GPUs", "one cache, slots", "continuous (server slots)",
              "prompt cache (slot + RAM)", "draft, EAGLE3, MTP, n-gram", "GGUF: Q2_K–Q8_0, IQ types",
              "Plain C/C++ with no dependencies; runs quantized GGUF files on laptops, desktops and servers, on "
              "CPUs and through Metal, CUDA, HIP, Vulkan or SYCL, splitting a model between CPU and GPU when it "
              "does not fit. Its server shares one KV cache between parallel slots and keeps old prompts in RAM "
              "to reuse."),
    Framework("SGLang", "GPUs (also TPU, NPU, CPU)", "paged token pool", "continuous", "RadixAttention",
              "EAGLE, MTP, draft, n-gram", "GPTQ, AWQ, FP8, FP4",
              "Keeps every cached prefix in a radix tree, so requests that share any prefix (few-shot examples, "
              "agent loops, chat turns) reuse it automatically; a low-overhead scheduler and fast structured "
              "(JSON, regex) output."),
    Framework("TensorRT-LLM", "NVIDIA GPUs", "paged blocks", "in-flight", "yes (KV block reuse)",
              "EAGLE3, MTP, draft, n-gram", "FP8, NVFP4, INT4 AWQ/GPTQ",
              "NVIDIA's own server, tuned for its newest GPUs and their FP8 and FP4 number formats. It used to "
              "compile each model into a TensorRT engine for one GPU; that route has been removed, and models now "
              "load straight from Hugging Face checkpoints into PyTorch with NVIDIA's kernels."),
    Framework("Ollama", "CPUs, Apple, GPUs", "one cache, slots", "parallel requests", "per slot", "none documented",
              "GGUF (Q4_K_M, Q8_0, etc.)",
              "A friendly local runner: one command pulls a model from its library and serves it, with a "
              "Modelfile format and a local REST API. It began as a wrapper around llama.cpp; newer models run "
              "on Ollama's own engine over the same GGML tensor library. Made for running models on your own "
              "machine."),
)
CELL_MAX = 26  # widest table cell, in characters
AS_OF = "Table: the projects' own docs as read in December 2026; it may age."

COLUMNS = (("KV memory", "kv_memory"), ("batching", "batching"), ("prefix reuse", "prefix"),
           ("speculative", "speculative"), ("quantization", "quantization"), ("runs on", "runs_on"))


@register
class ServingChapter(Picture, Chapter):
    ID = "engine.serving"
    SECTION = "engine"
    TITLE = "Serving frameworks"
    PICTURE = "serving"
    SUMMARY = "What vLLM, TGI, llama.cpp, SGLang, TensorRT-LLM and Ollama do, compared."
    EXPLANATION = """
Every idea of this section is inside the servers people run: a **KV cache** managed in pages,
**continuous batching** of many users, **prefix caching**, **speculative decoding** and
**quantized** weights. They differ in what they run on and what they optimise: throughput for many
users on GPUs, or one user on a laptop. A summary in our own words (features change quickly:
check each project's documentation). `↑`/`↓` choose a framework, `→` another column.
"""
    NEEDS_MODEL = False
    CODE_FUNCTIONS = ()
    BINDINGS = [
        Binding("down", "pick(1)", "Next", key_display="↓", tooltip="Describe the next framework"),
        Binding("up", "pick(-1)", "Prev", key_display="↑", show=False, tooltip="Describe the previous framework"),
        Binding("right", "column(1)", "Column", key_display="→", tooltip="Compare another feature"),
        Binding("left", "column(-1)", "Column", key_display="←", show=False, tooltip="The previous feature"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.selected = 0
        self.first_column = 0

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> tuple[Framework, ...]:
        return FRAMEWORKS

    def draw(self, result: tuple[Framework, ...]) -> None:
        self.update_breadcrumb(result[self.selected].name)
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_pick(self, delta: int) -> None:
        self.selected = (self.selected + delta) % len(FRAMEWORKS)
        self.redraw()

    def action_column(self, delta: int) -> None:
        self.first_column = (self.first_column + delta) % len(COLUMNS)
        self.redraw()

    def _picture(self, frameworks: tuple[Framework, ...], width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        name_w = max(len(f.name) for f in frameworks) + 2
        cols = COLUMNS[self.first_column:] + COLUMNS[: self.first_column]
        widths = [max(len(title), *(len(getattr(f, attr)) for f in frameworks)) for title, attr in cols]
        shown, used = [], name_w + 2
        for (title, attr), w in zip(cols, widths):
            w = min(w, CELL_MAX)
            if used + w + 2 > width and shown:
                break
            shown.append((title, attr, w))
            used += w + 2
        out.append("  " + "".ljust(name_w) + "".join(t.ljust(w + 2) for t, _, w in shown) + "\n", style=f"bold {DIM}")
        for i, f in enumerate(frameworks):
            mark = "▶ " if i == self.selected else "  "
            style = f"bold {ACCENT}" if i == self.selected else ""
            cells = "".join((getattr(f, a) if len(getattr(f, a)) <= w else getattr(f, a)[: w - 1] + "…").ljust(w + 2)
                            for _, a, w in shown)
            out.append((mark + f.name.ljust(name_w) + cells)[:width] + "\n", style=style)
        hidden = len(COLUMNS) - len(shown)
        if hidden:
            out.append(f"  {hidden} more column{'s' if hidden > 1 else ''}: press →\n", style=DIM)
        out.append_text(note(AS_OF, width))
        f = frameworks[self.selected]
        out.append("\n")
        out.append_text(heading(f.name))
        out.append_text(note(f.summary, width, style=""))
        for title, attr in COLUMNS:
            out.append_text(note(f"{title}: {getattr(f, attr)}", width))
        out.append("\n")
        out.append_text(note("Where the chapters of this section show up: the KV cache and PagedAttention in every "
                             "row's memory column; continuous batching in 'batching'; prefix caching (SGLang's "
                             "radix tree, vLLM's hashed blocks); speculative decoding; quantization formats from "
                             "section 7. fwdtui itself is none of these: it runs one request at a time in numpy, "
                             "to show the arithmetic.", width))
        return out
