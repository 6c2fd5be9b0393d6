"""Helpers for the app tests: read the screen as text, wait for workers."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App) -> str:
    """What the terminal shows right now, as plain text lines (no colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


async def settle(pilot, times: int = 3) -> None:
    """Let workers finish and the screen refresh."""
    for _ in range(times):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
