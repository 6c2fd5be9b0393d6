"""Regenerate the SVG screenshots in screenshots/: the index and the journey's stages, deterministically.

`fwdtui screenshots [--out DIR] [--model NAME]` runs the app headless at fixed sizes, presses the
keys of each shot and saves what the screen shows. With the same model and prompt the files are
byte-for-byte the same on every run (the load time, which varies, is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

SCREENSHOT_PROMPT = "The quick brown fox jumps over the lazy dog. The quick brown fox"


@dataclass(frozen=True)
class Shot:
    """One screenshot: where to open, which keys to press, at which terminal size."""

    name: str
    chapter: str | None
    keys: tuple[str, ...] = ()
    size: tuple[int, int] = (100, 30)


def _spaces(n: int) -> tuple[str, ...]:
    return ("space",) * n


SHOTS: tuple[Shot, ...] = (
    Shot("index", None),
    Shot("index-80x24", None, size=(80, 24)),
    Shot("journey-01-text", "transformer.journey"),
    Shot("journey-02-tokens", "transformer.journey", _spaces(1)),
    Shot("journey-03-embeddings", "transformer.journey", _spaces(2)),
    Shot("journey-04-positions", "transformer.journey", _spaces(3)),
    Shot("journey-05-norm", "transformer.journey", _spaces(4)),
    Shot("journey-06-attention", "transformer.journey", _spaces(5) + ("full_stop", "full_stop")),
    Shot("journey-07-weighted-mix", "transformer.journey", _spaces(6)),
    Shot("journey-10-mlp", "transformer.journey", _spaces(9)),
    Shot("journey-11-residual", "transformer.journey", _spaces(10)),
    Shot("journey-13-logits", "transformer.journey", _spaces(12)),
    Shot("journey-14-probabilities", "transformer.journey", _spaces(13)),
    Shot("journey-15-logit-lens", "transformer.journey", _spaces(14)),
    Shot("journey-16-sampling", "transformer.journey", _spaces(15) + ("k", "k")),
    Shot("journey-17-kv-cache", "transformer.journey", ("g", "g", "g")),
    Shot("journey-code-panel", "transformer.journey", _spaces(5) + ("c",)),
    Shot("journey-80x24", "transformer.journey", _spaces(5), size=(80, 24)),
    Shot("help", "transformer.journey", ("question_mark",), size=(100, 40)),
)

_TERMINAL_ID = re.compile(r"terminal-\d+")


def normalise_svg(svg: str) -> str:
    """Replace the per-render ids Rich puts in an SVG, so equal screens give equal files."""
    return _TERMINAL_ID.sub("terminal", svg)


async def capture(shot: Shot, model: Any, prompt: str) -> str:
    """Run the app headless for one shot and return its SVG."""
    from textual.worker import WorkerFailed

    from fwdtui.app import FwdtuiApp

    app = FwdtuiApp(chapter_id=shot.chapter, model=model, prompt=prompt)

    async def settle(pilot: Any) -> None:
        for _ in range(3):
            try:
                await pilot.app.workers.wait_for_complete()
            except WorkerFailed:
                pass  # the screen shows the error; the screenshot records it
            await pilot.pause()

    async with app.run_test(size=shot.size) as pilot:
        await settle(pilot)
        for key in shot.keys:
            await pilot.press(key)
            await settle(pilot)
        return normalise_svg(app.export_screenshot(title=f"fwdtui · {shot.name}"))


def steady_model(model: Any) -> Any:
    """The model with its load time cleared, so the index line does not change between runs."""
    model.info = replace(model.info, load_seconds=0.0)
    return model


def make_screenshots(out: Path, model: Any, prompt: str = SCREENSHOT_PROMPT,
                     shots: Sequence[Shot] = SHOTS) -> list[Path]:
    """Write one SVG per shot into `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    model = steady_model(model)
    written = []
    for shot in shots:
        path = out / f"{shot.name}.svg"
        path.write_text(asyncio.run(capture(shot, model, prompt)), encoding="utf-8")
        written.append(path)
    return written


def _load(spec: str | None) -> Any:
    from fwdtui import load_model
    from fwdtui.loaders.registry import default_model_name

    name = spec or default_model_name()
    if name is None:
        from fwdtui.testing import random_model

        print("no model downloaded: using a tiny random model (run `fwdtui download smollm2-135m` for real ones)")
        return random_model("llama", seed=0)
    return load_model(name)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """`fwdtui screenshots`: regenerate screenshots/ (the CLI passes its parsed arguments)."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="fwdtui screenshots", description=__doc__)
        parser.add_argument("--out", default="screenshots")
        parser.add_argument("--model", default=None)
        args = parser.parse_args(list(sys.argv[1:] if args is None else args))
    model = _load(getattr(args, "model", None))
    for path in make_screenshots(Path(args.out), model):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
