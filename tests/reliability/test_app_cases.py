"""The app under stress, through Textual's Pilot: small terminals, resizes and key presses while a
worker runs, prompt and model switched mid-computation (the stale result is dropped), no model at all.

The journey chapter's `compute` is wrapped so that a test can hold a computation in flight
(on a threading.Event) and see exactly which results reach `draw`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from ui.ui_helpers import assert_drawn, screen_text, settle

from fwdtui.app import FwdtuiApp
from fwdtui.chapters.base import Chapter
from fwdtui.chapters.transformer.journey import JourneyChapter
from fwdtui.testing import random_model

PROMPT = "the cat sat"
SMALL_NOTICE = "needs at least 80x24"


class Gate:
    """Holds JourneyChapter.compute until released; records what was computed and what was drawn."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.open.set()
        self.started = threading.Event()
        self.computed: list[tuple[str, str]] = []  # (prompt, model name) per finished compute
        self.drawn: list[tuple[str, str]] = []
        self.prompts: dict[int, tuple[Any, str]] = {}
        compute, draw = JourneyChapter.compute, JourneyChapter.draw
        gate = self

        def slow_compute(chapter, snapshot):
            gate.started.set()
            assert gate.open.wait(timeout=20), "the test never released the computation"
            result = compute(chapter, snapshot)
            gate.prompts[id(result)] = (result, snapshot.prompt)  # results are frozen: remember beside them
            gate.computed.append((snapshot.prompt, snapshot.model.info.name))
            return result

        def recording_draw(chapter, result):
            gate.drawn.append((gate.prompts[id(result)][1], result.model.info.name))
            return draw(chapter, result)

        monkeypatch.setattr(JourneyChapter, "compute", slow_compute)
        monkeypatch.setattr(JourneyChapter, "draw", recording_draw)

    def hold(self) -> None:
        self.open.clear()
        self.started.clear()

    def release(self) -> None:
        self.open.set()


def make_app(name: str = "model-a", family: str = "gpt2", prompt: str = PROMPT, chapter: str | None = "transformer.journey"):
    model = random_model(family, seed=0)
    model.info.name = name
    return FwdtuiApp(chapter_id=chapter, model=model, prompt=prompt)


async def wait_for(pilot, condition, what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- small terminals ----------------------------------------------------------------------------


@pytest.mark.parametrize("size, chapter", [((79, 24), None), ((80, 23), None), ((20, 5), None), ((1, 1), None),
                                           ((79, 24), "transformer.journey"), ((40, 12), "transformer.journey")])
async def test_small_terminal_shows_a_notice(size: tuple[int, int], chapter: str | None) -> None:
    app = make_app(chapter=chapter)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert app.is_running
        text = " ".join(screen_text(app).split())
        if size[0] >= 40:  # room for the whole notice: what is wrong and what to do
            assert "at least 80x24" in text and "larger" in text, text
        elif size[0] >= 20:  # room for the start of it (a 1x1 terminal shows nothing; not crashing is what counts)
            assert "80x24" in text, text
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        text = screen_text(app)
        assert SMALL_NOTICE not in text
        if chapter:
            assert isinstance(app.screen, JourneyChapter) and app.screen.result is not None


async def test_resizing_while_a_worker_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    gate.hold()
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, gate.started.is_set, "the computation to start")
        for size in [(60, 20), (120, 40), (80, 24), (79, 23), (200, 60), (100, 30)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
        assert gate.drawn == []  # still in flight
        gate.release()
        await settle(pilot)
        assert gate.drawn == [(PROMPT, "model-a")]
        assert isinstance(app.screen, JourneyChapter) and app.screen.result is not None
        assert SMALL_NOTICE not in screen_text(app) and "failed" not in screen_text(app)


# --- stale results ------------------------------------------------------------------------------


async def test_prompt_changed_mid_computation_drops_the_stale_result(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    gate.hold()
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, gate.started.is_set, "the first computation")
        app.set_prompt("a dog ran")  # while the first computation is held
        await pilot.pause()
        gate.release()
        await settle(pilot)
        assert ("the cat sat", "model-a") not in gate.drawn  # computed for the old prompt: never drawn
        assert gate.drawn[-1] == ("a dog ran", "model-a")
        result = app.screen.result
        assert result.model.tokenizer.decode(result.trace.ids) == "a dog ran"


async def test_model_switched_mid_computation_drops_the_stale_result(monkeypatch: pytest.MonkeyPatch,
                                                                     tiny_llama: Path) -> None:
    gate = Gate(monkeypatch)
    gate.hold()
    app = make_app(name="model-a")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, gate.started.is_set, "the first computation")
        app.load_model(str(tiny_llama))  # loads in its own worker, then swaps the model
        await wait_for(pilot, lambda: app.session.model is not None and app.session.model.config.family == "llama",
                       "the new model")
        gate.release()
        await settle(pilot)
        assert all(model != "model-a" for _, model in gate.drawn), gate.drawn
        assert gate.drawn[-1] == (PROMPT, tiny_llama.name)
        assert app.screen.result.model.config.family == "llama"


async def test_keys_faster_than_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry pressed 15 times and playground keys mashed while each computation is slow: one clean result."""
    gate = Gate(monkeypatch)
    gate.hold()
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, gate.started.is_set, "the first computation")
        await pilot.press(*(["ctrl+r"] * 15), "right", "left", "h", "t", "t", "k", "n", "r", "home", "c", "c")
        gate.release()
        await settle(pilot, times=5)
        assert app.is_running and isinstance(app.screen, JourneyChapter)
        assert gate.drawn and set(gate.drawn) == {(PROMPT, "model-a")}
        assert len(gate.drawn) <= 2  # exclusive workers: the retries cancelled each other
        assert "failed" not in screen_text(app)


async def test_chapters_switched_faster_than_they_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        first = app.screen
        assert isinstance(first, JourneyChapter)
        gate.hold()
        await pilot.press(*(["right_square_bracket"] * 2), *(["left_square_bracket"] * 2))
        gate.release()
        await settle(pilot, times=5)
        assert app.is_running and isinstance(app.screen, Chapter)
        assert_drawn(screen_text(app))


async def test_prompts_that_need_notices_in_the_app() -> None:
    long_prompt = "ab " * 200  # more than the 128-token context of the random model
    app = make_app(prompt=long_prompt)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        text = " ".join(screen_text(app).split())
        assert "were dropped" in text
        app.set_prompt("a\x00b \ud800 c")  # NUL and a lone surrogate
        await settle(pilot)
        text = " ".join(screen_text(app).split())
        assert "not valid UTF-8" in text or "control character" in text
        app.set_prompt("")  # refused in place; the old prompt stays
        await settle(pilot)
        assert app.session.prompt == "a\x00b \ud800 c" and app.is_running


# --- no model -----------------------------------------------------------------------------------


async def test_no_model_downloaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path / "empty"))
    app = FwdtuiApp(chapter_id="transformer.journey")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = " ".join(screen_text(app).split())
        assert "No model is downloaded yet" in text and "fwdtui download" in text, text
        assert app.session.status.state == "error"
        await pilot.press("escape")  # the index says the same
        await settle(pilot)
        assert "No model is downloaded yet" in " ".join(screen_text(app).split())


@pytest.mark.parametrize("breakage", ["missing", "bad-config", "truncated"])
async def test_broken_model_is_reported_in_place(tmp_path: Path, tiny_gpt2: Path, breakage: str) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_gpt2, folder)
    if breakage == "missing":
        shutil.rmtree(folder)
    elif breakage == "bad-config":
        (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 1000000000}')
    else:
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    app = FwdtuiApp(chapter_id="transformer.journey", model_spec=str(folder))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert app.is_running and app.session.status.state == "error"
        error = app.session.status.error
        text = " ".join(screen_text(app).split())
        assert error.message[:40] in text, (error.message, text)
        assert "Traceback" not in text and "bug in fwdtui" not in text


async def test_a_model_without_a_tokenizer(tmp_path: Path, tiny_gpt2: Path) -> None:
    import shutil

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_gpt2, folder)
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    app = FwdtuiApp(chapter_id="transformer.journey", model_spec=str(folder))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, times=5)
        text = " ".join(screen_text(app).split())
        assert "tokenizer" in text and "This view failed" not in text, text
