"""Multimodal inputs: a picture cut into patches and projected into token vectors, sound cut into frames,
and where those vectors join the text in the language model's residual stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.modern._common import SCROLL_BINDINGS, Picture, bar_line, wrap_lines
from fwdtui.core import embedding_lab, modern_lab
from fwdtui.core.modern_lab import VISION_ENCODERS, PatchTokens
from fwdtui.session import Snapshot
from fwdtui.widgets.heatmap import HeatmapData, render_heatmap
from fwdtui.widgets.palette import ACCENT, DIM, cell_style, xterm
from fwdtui.widgets.vector_strip import render_vector

IMAGE_SIZE = 64
PATCH_SIZES = (8, 16, 32)
DEFAULT_WIDTH = 768  # GPT-2 small's width, used when no model is loaded
SAMPLE_RATE = 16000
_CUBE = np.array([0, 95, 135, 175, 215, 255]) / 255  # the xterm-256 colour cube's levels per channel


@dataclass(frozen=True)
class MultimodalView:
    seed: int
    patch: int
    image: np.ndarray  # [64, 64, 3] in 0..1
    cut: PatchTokens
    n_embd: int
    model_name: str | None  # None: no model loaded (GPT-2 small's width is used)
    n_ctx: int | None
    text_labels: tuple[str, ...]  # the prompt's first tokens, for the sequence picture
    n_text: int
    text_norm: float | None  # mean norm of the prompt's token embeddings in the loaded model
    spectrogram: np.ndarray  # [n_frames, n_bins] log power of 1 s of a test sound


def _xterm_rgb(pixels: np.ndarray) -> np.ndarray:
    """[..., 3] in 0..1 -> [...] hex colours: the nearest colour of the xterm-256 cube, per channel."""
    level = np.abs(pixels[..., None] - _CUBE).argmin(axis=-1)  # [..., 3] cube level 0..5
    index = 16 + 36 * level[..., 0] + 6 * level[..., 1] + level[..., 2]
    return np.vectorize(xterm, otypes=[object])(index)


def half_block_image(image: np.ndarray, columns: int) -> list[Text]:
    """An RGB image as lines of `▀` (upper pixel = foreground, lower = background), `columns` pixels wide."""
    h, w, _ = image.shape
    step = max(1, w // columns)
    small = image[: h - h % (2 * step), : w - w % step]
    small = small.reshape(small.shape[0] // step, step, small.shape[1] // step, step, 3).mean(axis=(1, 3))
    colours = _xterm_rgb(small)  # [rows, cols]
    lines = []
    for r in range(0, colours.shape[0] - 1, 2):
        line = Text()
        for c in range(colours.shape[1]):
            line.append("▀", style=cell_style(colours[r, c], colours[r + 1, c]))
        lines.append(line)
    return lines


def patch_checkerboard(image: np.ndarray, patch: int) -> np.ndarray:
    """The image with every other patch darkened, so the cut shows."""
    rows = np.arange(image.shape[0]) // patch
    cols = np.arange(image.shape[1]) // patch
    dark = (rows[:, None] + cols[None, :]) % 2 == 1  # [H, W]
    return np.where(dark[..., None], image * 0.55, image)


@register
class MultimodalChapter(Picture, Chapter):
    ID = "modern.multimodal"
    SECTION = "modern"
    TITLE = "Multimodal inputs"
    SUMMARY = "Images and sound as tokens."
    PICTURE = "mm"
    EXPLANATION = """
A language model reads a sequence of vectors, one per token, each as wide as the model (`d_model`).
Anything cut into pieces and turned into such vectors can be read too. A **vision encoder** (ViT)
cuts an image into square **patches**, flattens each patch's pixels into one long vector and
multiplies it by a learned matrix: one patch, one vector. After the encoder's own transformer layers,
a small **projector** maps those vectors to the language model's width and they are placed in the
sequence next to the text's token embeddings: the same residual stream, the same attention. Sound is
cut the same way, into short overlapping **frames** of a spectrogram. Below, a seeded picture made in
numpy goes through the first step with an **untrained** (random) projection: real encoders learn it.
`s` patch size · `i` another picture · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (modern_lab.patchify, modern_lab.embed_patches, modern_lab.random_projection,
                      modern_lab.audio_frames, modern_lab.audio_tokens)
    NEEDS_MODEL = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "patch_size", "Patch size", tooltip="Cut the picture into 8, 16 or 32 pixel patches"),
        Binding("i", "image", "Picture", tooltip="Draw another seeded picture"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.patch = 16
        self.seed = 0

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> MultimodalView:
        image = modern_lab.synthetic_image(IMAGE_SIZE, self.seed)
        model = snapshot.model
        n_embd = model.config.n_embd if model is not None else DEFAULT_WIDTH
        cut = modern_lab.embed_patches(image, self.patch, n_embd, seed=self.seed)
        labels: tuple[str, ...] = ()
        text_norm = None
        n_text = len(snapshot.ids)
        if model is not None and n_text:
            table = embedding_lab.embedding_matrix(model)  # [n_vocab, n_embd]
            text_norm = float(np.linalg.norm(table[list(snapshot.ids)].astype(np.float64), axis=-1).mean())
            tok = model.tokenizer
            if tok is not None:
                labels = tuple(tok.token_bytes(int(t)).decode("utf-8", errors="replace") for t in snapshot.ids[:8])
        spectrogram = modern_lab.audio_frames(modern_lab.synthetic_sound(1.0, SAMPLE_RATE, self.seed), SAMPLE_RATE)
        return MultimodalView(self.seed, self.patch, image, cut, n_embd, model.info.name if model else None,
                              model.config.n_ctx if model else None, labels, n_text, text_norm, spectrogram)

    def draw(self, result: MultimodalView) -> None:
        n = result.cut.patches.shape[0]
        self.update_breadcrumb(f"patch {result.patch}px · {n} image tokens · d_model {result.n_embd}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_patch_size(self) -> None:
        self.patch = PATCH_SIZES[(PATCH_SIZES.index(self.patch) + 1) % len(PATCH_SIZES)]
        self.recompute()

    def action_image(self) -> None:
        self.seed += 1
        self.recompute()

    # --- picture ----------------------------------------------------------------------------------
    def _picture(self, v: MultimodalView, width: int) -> Text:
        w = max(40, min(width - 2, 100))
        out = Text(no_wrap=True, overflow="crop")
        for part in (self._image(v, w), self._vectors(v, w), self._counts(v, w), self._sound(v, w),
                     self._joining(v, w)):
            out.append_text(part)
            out.append("\n")
        return out

    def _image(self, v: MultimodalView, w: int) -> Text:
        rows, cols = v.cut.grid
        out = Text()
        out.append(f"1. A {IMAGE_SIZE}×{IMAGE_SIZE} picture (seed {v.seed}) cut into {v.patch}×{v.patch}-pixel "
                   f"patches: {rows}×{cols} = {rows * cols}\n", style="bold")
        # columns per picture (a character is 1 cell wide, 2 high): the large one only when it fits on screen
        pix = 32 if w >= 70 and self.picture_canvas().room() >= 20 else 16
        left = half_block_image(v.image, pix)
        right = half_block_image(patch_checkerboard(v.image, v.patch), pix)
        out.append(f"{'the picture':<{pix}}   {'its patches (every other one darker)'}\n"[: w + 1], style=DIM)
        for a, b in zip(left, right):
            out.append_text(a)
            out.append("   ")
            out.append_text(b)
            out.append("\n")
        if pix < IMAGE_SIZE:
            out.append(f"(drawn at 1 character per {IMAGE_SIZE // pix}×{2 * IMAGE_SIZE // pix} pixels)\n", style=DIM)
        return out

    def _vectors(self, v: MultimodalView, w: int) -> Text:
        out = Text()
        n_in = v.cut.patches.shape[1]
        k = len(v.cut.patches) // 2 + v.cut.grid[1] // 2  # a patch near the middle
        k = min(k, len(v.cut.patches) - 1)
        out.append(f"2. Each patch flattened, then projected to d_model = {v.n_embd}\n", style="bold")
        patch, token = v.cut.patches[k], v.cut.tokens[k]
        out.append(f"patch {k}: {v.patch}×{v.patch} pixels × 3 colours = {n_in:,} numbers in 0..1, "
                   f"norm {np.linalg.norm(patch):.2f}\n", style=DIM)
        out.append_text(render_vector(patch, w, "patch", stats=False))
        out.append(f"\n  × W [{n_in:,} × {v.n_embd}]  seeded random, untrained: a real encoder learns W\n",
                   style=DIM)
        out.append(f"token {k}: {v.n_embd} numbers, norm {np.linalg.norm(token):.2f}\n", style=DIM)
        out.append_text(render_vector(token, w, "token", stats=False))
        out.append("\n")
        for line in wrap_lines("A bigger patch means fewer tokens, each summarising more pixels; a real encoder "
                               "then runs transformer layers over these vectors so each patch sees the others.", w):
            out.append(line + "\n", style=DIM)
        return out

    def _counts(self, v: MultimodalView, w: int) -> Text:
        out = Text()
        out.append("3. How many tokens an image costs\n", style="bold")
        rows = [(f"this picture, {v.patch}px", len(v.cut.patches), "")]
        rows += [(e.name, e.n_tokens, (f"{e.merge}×{e.merge} merged" if e.merge > 1 else "+cls" if e.cls else ""))
                 for e in VISION_ENCODERS]
        top = max(n for _, n, _ in rows)
        label_w = 30 if w >= 90 else 22
        for name, n, note in rows:
            fits = f" {100 * n / v.n_ctx:.0f}% ctx" if v.n_ctx else ""
            name = name.replace(" (LLaVA-1.5)", "") if len(name) > label_w else name
            out.append_text(bar_line(name, n / top, f"{n:>4} {note:<5}{fits}", w, label_w=label_w,
                                     style=cell_style(ACCENT)))
        context = f"{v.model_name}'s context of {v.n_ctx}" if v.n_ctx else "a model's context"
        out.append(f"Tokens = (side / patch)², +1 class token (+cls), ÷4 when 2×2 neighbours are merged;\n"
                   f"ctx = share of {context}.\n", style=DIM)
        return out

    def _sound(self, v: MultimodalView, w: int) -> Text:
        out = Text()
        frames = v.spectrogram  # [n_frames, n_bins]
        out.append(f"4. Sound: 1 s of a test tone and a rising chirp → {frames.shape[0]} frames\n", style="bold")
        n_rows, n_cols = 16, max(8, min(frames.shape[0], w - 8))
        top_hz = 4000  # speech and our test sound live below 4 kHz
        hz_per_bin = SAMPLE_RATE / 2 / (frames.shape[1] - 1)
        # frequency on rows (high at the top), time on columns; averaged down to fit
        bins = np.array_split(np.arange(int(top_hz / hz_per_bin) + 1), n_rows)
        times = np.array_split(np.arange(frames.shape[0]), n_cols)
        small = np.array([[frames[np.ix_(t, b)].mean() for t in times] for b in bins])[::-1]  # [n_rows, n_cols]
        labels = tuple(f"{top_hz * (n_rows - r) / n_rows / 1000:g}k" if r % 4 == 0 else "" for r in range(n_rows))
        out.append_text(render_heatmap(HeatmapData(small, row_labels=labels, row_name="Hz", col_name="frame",
                                                   fmt="{:.0f}"), w, n_rows // 2 + 3))
        out.append("\n")
        n30 = modern_lab.audio_tokens(30)
        for line in wrap_lines(f"Colour: log power of each frequency in each 25 ms window. Whisper-style "
                               f"encoders take a frame every 10 ms, so 30 s = {30_000 // 10:,} frames; a stride-2 "
                               f"convolution halves them: {n30:,} tokens.", w):
            out.append(line + "\n", style=DIM)
        return out

    def _joining(self, v: MultimodalView, w: int) -> Text:
        out = Text()
        n_img = len(v.cut.patches)
        out.append("5. Where they enter the language model\n", style="bold")
        seq = Text("  ")
        seq.append(f"[{n_img} image tokens]", style=cell_style(xterm(16), ACCENT))
        for label in v.text_labels or ("(your", "prompt)"):
            seq.append(" ")
            seq.append(label.replace("\n", "↵").replace(" ", "·"), style=cell_style(xterm(255), xterm(24)))
        if v.n_text > len(v.text_labels) and v.text_labels:
            seq.append(f" …{v.n_text - len(v.text_labels)} more")
        seq.append("  → block 0 …", style=DIM)
        out.append_text(seq)
        out.append("\n")
        patch_norm = float(np.linalg.norm(v.cut.tokens, axis=-1).mean())
        if v.model_name is None:
            out.append(f"No model loaded: d_model {v.n_embd} is GPT-2 small's width (press m to load one).\n",
                       style=DIM)
            out.append(f"Mean size (norm) of the projected patches: {patch_norm:.2f}\n")
            return out
        out.append(f"Both are rows of {v.model_name}'s residual stream, {v.n_embd} numbers wide. Mean norm:\n")
        out.append(f"  text token embeddings {v.text_norm:.2f}  ·  projected patches {patch_norm:.2f}"
                   f"  (×{patch_norm / max(v.text_norm or 1e-9, 1e-9):.1f})\n", style=cell_style(ACCENT, bold=True))
        for line in wrap_lines("An untrained projection lands the patches at a size and in directions the model "
                               "has never seen. A multimodal model trains the projector (LLaVA: a two-layer MLP), "
                               "and usually the language model too, on image-caption pairs until image tokens "
                               "read like words to it.", w):
            out.append(line + "\n", style=DIM)
        return out
