"""Helpers for the app tests: read the screen as text, wait for workers, build an app on a tiny model."""

from __future__ import annotations

from textual.app import App
from textual.worker import WorkerFailed

from fwdtui.app import FwdtuiApp
from fwdtui.testing import random_model

PROMPT = "Hello, wörld! Hello"  # 20 byte tokens, two of them halves of "ö"


def screen_text(app: App) -> str:
    """What the terminal shows right now, as plain text lines (no colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


async def settle(pilot, times: int = 3) -> None:
    """Let workers finish and the screen refresh."""
    for _ in range(times):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # the app shows the error itself; the test asserts on the screen
        await pilot.pause()


def journey_app(family: str = "gpt2", prompt: str = PROMPT, chapter: str | None = "transformer.journey") -> FwdtuiApp:
    """The app on a seeded random model, opened on the journey (or the index)."""
    return FwdtuiApp(chapter_id=chapter, model=random_model(family, seed=0), prompt=prompt)
