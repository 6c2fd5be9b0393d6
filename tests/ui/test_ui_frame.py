"""The index, the chapter frame and the registry: navigation, stale results, errors, help, small terminals."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ui_helpers import journey_app, screen_text, settle

from fwdtui.app import ChapterCommands, FwdtuiApp, IndexScreen
from fwdtui.chapters import LOAD_ERRORS, SECTIONS, all_entries, chapter_table, find_chapter, written_chapters
from fwdtui.chapters.base import Chapter
from fwdtui.chapters.transformer.journey import JourneyChapter
from fwdtui.errors import FwdtuiError, PromptError
from fwdtui.session import Snapshot
from fwdtui.testing import random_model

# --- the registry ---------------------------------------------------------------------------------


def test_nine_sections_with_unique_planned_ids_and_every_section_imports() -> None:
    assert [s.number for s in SECTIONS] == list(range(1, 10))
    ids = [e.id for e in all_entries()]
    assert len(ids) == len(set(ids))
    assert all(e.id.startswith(e.section.id + ".") for e in all_entries())
    assert LOAD_ERRORS == {}, LOAD_ERRORS


def test_find_chapter_by_id_or_unique_slug_and_helpful_errors() -> None:
    assert find_chapter("transformer.journey") is JourneyChapter
    assert find_chapter("journey") is JourneyChapter
    with pytest.raises(FwdtuiError, match="no chapter called 'nope'") as err:
        find_chapter("nope")
    assert "fwdtui chapters" in (err.value.fix or "")
    planned = [e.id for e in all_entries() if not e.written]
    if planned:
        with pytest.raises(FwdtuiError, match="planned but not written"):
            find_chapter(planned[0])


def test_chapter_table_lists_every_chapter_for_the_cli() -> None:
    table = chapter_table()
    assert {"id", "section", "title", "summary", "written"} <= set(table[0])
    assert table[0]["id"] == "transformer.journey" and table[0]["written"] is True
    assert {row["section"] for row in table} == {s.id for s in SECTIONS}


# --- the index -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_index_shows_all_sections_model_and_prompt(size) -> None:
    app = FwdtuiApp(model=random_model("gpt2"), prompt="Hello there")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = screen_text(app)
        for section in SECTIONS:
            assert f"{section.number} {section.title}"[: 28] in text
        assert "Model random-gpt2 · gpt2 ·" in text and "K parameters · 2 layers" in text
        assert "“Hello there”" in text
        planned = [e for e in all_entries() if not e.written]
        if planned:
            # jump to the section of the first unwritten chapter: it is marked, never offered as working
            await pilot.press(str(planned[0].section.number))
            await settle(pilot)
            assert "not written yet" in screen_text(app)


async def test_enter_opens_the_journey_and_escape_returns() -> None:
    app = journey_app(chapter=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JourneyChapter)
        text = screen_text(app)
        assert "Inside the Transformer › The journey of a prompt" in text
        assert "1/17 text" in text
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)


async def test_number_keys_jump_to_a_section_and_planned_chapters_do_not_open() -> None:
    app = journey_app(chapter=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("9")
        await settle(pilot)
        assert "▶ 9 Architecture Explorer" in screen_text(app)
        if not any(e.written for e in all_entries() if e.section.id == "explorer"):
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, IndexScreen)
            assert "planned, not" in screen_text(app)


async def test_missing_model_is_explained_on_the_index_and_in_chapters() -> None:
    app = FwdtuiApp(model_spec="no-such-model", chapter_id=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "No model" in text and "no-such-model" in text
        app.open_chapter("transformer.journey")
        await settle(pilot)
        text = screen_text(app)
        assert "This chapter needs a model" in text and "Fix:" in text


async def test_without_any_model_the_app_opens_and_says_how_to_get_one() -> None:
    app = FwdtuiApp(load=False, chapter_id="transformer.journey")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "needs a model and none is loaded" in text
        assert "fwdtui download" in text


async def test_small_terminal_shows_a_notice_instead_of_the_screen() -> None:
    app = journey_app()
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "at least 80x24" in text and "60x20" in text
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        assert "at least 80x24" not in screen_text(app)


async def test_help_screen_lists_the_chapter_keys_from_the_bindings() -> None:
    app = journey_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        text = screen_text(app)
        assert "Append the chosen token and run one cached decode step" in text  # g's tooltip
        assert "Next attention head / Previous attention head" in text
        assert "Show or hide the source of this view" in text  # a frame key
        assert "Edit the prompt every chapter uses" in text  # an app key
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JourneyChapter)


async def test_code_panel_toggles_and_shows_the_stage_source() -> None:
    app = journey_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "def prepare_prompt" not in screen_text(app)
        await pilot.press("c")
        await settle(pilot)
        assert "fwdtui/prompt.py:" in screen_text(app)
        app.screen.action_stage(5)  # attention
        await settle(pilot)
        assert "def mha" in screen_text(app)


async def test_command_palette_has_an_entry_per_chapter() -> None:
    app = journey_app(chapter=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        provider = ChapterCommands(app.screen)
        names = [hit.text async for hit in provider.discover()]
        for cls in written_chapters():
            assert f"Open: {cls.TITLE}" in names
        await pilot.press("ctrl+p")
        await pilot.press(*"journey")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JourneyChapter)


# --- the frame: stale results and errors -----------------------------------------------------------


class SlowChapter(Chapter):
    """Computes the prompt's length, but only when the test lets it."""

    ID = "transformer.slow-test"
    SECTION = "transformer"
    TITLE = "Slow test"
    NEEDS_MODEL = False

    def __init__(self, session: Any, gate: threading.Event) -> None:
        super().__init__(session)
        self.gate = gate
        self.drawn: list[str] = []

    def compute(self, snapshot: Snapshot) -> str:
        self.gate.wait(5)
        return snapshot.prompt

    def draw(self, result: str) -> None:
        self.drawn.append(result)


async def test_a_result_for_an_older_prompt_is_dropped() -> None:
    gate = threading.Event()
    app = FwdtuiApp(load=False, prompt="first")
    async with app.run_test(size=(80, 24)) as pilot:
        chapter = SlowChapter(app.session, gate)
        await app.push_screen(chapter)
        await pilot.pause()
        app.set_prompt("second")  # the first computation is still waiting
        await pilot.pause()
        gate.set()
        await settle(pilot)
        assert chapter.drawn == ["second"]
        assert chapter.result == "second"


class FailingChapter(Chapter):
    ID = "transformer.failing-test"
    SECTION = "transformer"
    TITLE = "Failing test"
    NEEDS_MODEL = False

    def compute(self, snapshot: Snapshot) -> None:
        raise PromptError("The prompt is far too long.", "Press p and shorten it.")


class BuggyChapter(Chapter):
    ID = "transformer.buggy-test"
    SECTION = "transformer"
    TITLE = "Buggy test"
    NEEDS_MODEL = False

    def compute(self, snapshot: Snapshot) -> int:
        return 1

    def draw(self, result: int) -> None:
        raise ZeroDivisionError("division by zero")


async def test_errors_are_shown_in_place_with_the_fix_never_as_a_traceback() -> None:
    app = FwdtuiApp(load=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(FailingChapter(app.session))
        await settle(pilot)
        text = screen_text(app)
        assert "The prompt is far too long." in text and "Fix: Press p and shorten it." in text
        await app.push_screen(BuggyChapter(app.session))
        await settle(pilot)
        text = screen_text(app)
        assert "This view failed: ZeroDivisionError: division by zero" in text
        assert "Traceback" not in text


async def test_model_switcher_lists_known_models_and_reports_a_bad_path() -> None:
    app = journey_app(chapter=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        text = screen_text(app)
        assert "gpt2" in text and "smollm2-135m" in text
        await pilot.press("tab")
        await pilot.press(*"/nowhere/model")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
        # the model already loaded stays in use; the error is a notification
        assert app.session.model is not None and app.session.status.state == "ready"
        assert "Model random-gpt2" in screen_text(app)
        assert any("/nowhere/model" in n.message for n in app._notifications)


async def test_ctrl_s_saves_the_screen_as_svg_in_the_current_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = journey_app("gpt2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        files = list(tmp_path.glob("fwdtui-transformer.journey-*.svg"))
        assert len(files) == 1 and not list(tmp_path.glob("*.part"))
        svg = files[0].read_text(encoding="utf-8")
        assert svg.startswith("<svg") and "journey" in svg
        # a folder that cannot be written: a message with the fix, no file, no half-written file
        blocked = tmp_path / "not-a-folder"
        blocked.write_text("x")
        assert app.action_save_svg(blocked) is None
        await settle(pilot)
        assert any("Start fwdtui from a folder you can write to" in n.message for n in app._notifications)
        assert any(f"Saved {files[0]}" in n.message for n in app._notifications)


async def test_a_long_breadcrumb_keeps_its_text_and_the_model_status_gives_way() -> None:
    """At 80 columns a chapter's own line (here "neighbours of ...") wins over the model status."""
    app = journey_app("gpt2")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        chapter = app.screen
        chapter.update_breadcrumb("a long note about what this view shows right now")
        await settle(pilot)
        top = screen_text(app).splitlines()[0]
        assert "(1 of 52)  a long note" in top and top.rstrip().endswith("…") and "model random" not in top
        chapter.update_breadcrumb("")
        await settle(pilot)
        assert "model random-gpt2" in screen_text(app).splitlines()[0]
