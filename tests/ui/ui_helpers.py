"""Helpers for the app tests: read the screen as text, wait for workers, build an app on a tiny model,
open a chapter and press its keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import App
from textual.worker import WorkerCancelled, WorkerFailed

from fwdtui.app import FwdtuiApp
from fwdtui.testing import random_model

PROMPT = "Hello, wörld! Hello"  # 20 byte tokens, two of them halves of "ö"
CHAPTER_PROMPT = "the cat sat on the mat"  # 22 byte tokens: the chapter tests' prompt


def screen_text(app: App) -> str:
    """What the terminal shows right now, as plain text lines (no colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


async def settle(pilot, times: int = 3) -> None:
    """Let workers finish and the screen refresh."""
    for _ in range(times):
        try:
            await pilot.app.workers.wait_for_complete()
        except (WorkerFailed, WorkerCancelled):
            pass  # the app shows the error itself (or dropped a stale run); the test asserts on the screen
        await pilot.pause()


def journey_app(family: str = "gpt2", prompt: str = PROMPT, chapter: str | None = "transformer.journey") -> FwdtuiApp:
    """The app on a seeded random model, opened on the journey (or the index)."""
    return FwdtuiApp(chapter_id=chapter, model=random_model(family, seed=0), prompt=prompt)


def chapter_app(chapter: str, family: str | None = "gpt2", prompt: str | None = CHAPTER_PROMPT,
                model: Any = None) -> FwdtuiApp:
    """The app opened on `chapter` with `model`, or else a seeded random model of `family` (no
    family: no model); it loads nothing from disk."""
    if model is None and family:
        model = random_model(family, seed=0)
    return FwdtuiApp(chapter_id=chapter, model=model, prompt=prompt, load=False)


def assert_drawn(text: str) -> None:
    """Nothing on the screen failed: no traceback, no failed view, no canvas that could not draw."""
    assert "Traceback" not in text and "This view failed" not in text and "could not draw" not in text, text


async def read_screen(app: App, pilot, keys: Sequence[str] = (), until: str | None = None,
                      gone: str | None = None) -> str:
    """Settle, press `keys` (settling after each), then wait (up to 60 settles) until `until` shows
    and `gone` has gone; check that nothing failed and return the screen."""
    await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)
    for _ in range(60):  # chapters that fill in row by row start one worker after another
        text = screen_text(app)
        if (until is None or until in text) and (gone is None or gone not in text):
            break
        await settle(pilot, 1)
    text = screen_text(app)
    assert_drawn(text)
    return text
