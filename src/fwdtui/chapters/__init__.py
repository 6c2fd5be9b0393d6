"""The course: importing this package imports every section package, whose chapters register."""

from __future__ import annotations

import importlib

from fwdtui.chapters.base import (
    SECTIONS,
    Chapter,
    ChapterEntry,
    Section,
    all_entries,
    chapter_table,
    find_chapter,
    register,
    section_entries,
    written_chapters,
)

# section id -> why its package failed to import (shown on the index instead of crashing the app)
LOAD_ERRORS: dict[str, str] = {}


def _import_sections() -> None:
    for section in SECTIONS:
        name = f"fwdtui.chapters.{section.id}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # the package exists but something it imports does not
                LOAD_ERRORS[section.id] = f"{type(err).__name__}: {err}"
        except Exception as err:  # one broken section must not take the course down
            LOAD_ERRORS[section.id] = f"{type(err).__name__}: {err}"


_import_sections()

__all__ = [
    "LOAD_ERRORS",
    "SECTIONS",
    "Chapter",
    "ChapterEntry",
    "Section",
    "all_entries",
    "chapter_table",
    "find_chapter",
    "register",
    "section_entries",
    "written_chapters",
]
