"""The code panel: the real source of the core functions behind a visual, read with `inspect`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Iterable

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import ScrollableContainer
from textual.widgets import Static

SYNTAX_THEME = "monokai"


def source_of(function: Callable[..., Any]) -> tuple[str, str, int]:
    """(source, location, first line) of a function, as it is in the installed package."""
    target = inspect.unwrap(function)
    lines, first = inspect.getsourcelines(target)
    path = Path(inspect.getsourcefile(target) or "?")
    # show the path from the package root ("fwdtui/core/ops.py"), not the user's checkout
    parts = path.parts
    location = "/".join(parts[parts.index("fwdtui") :]) if "fwdtui" in parts else path.name
    qualname = getattr(target, "__qualname__", getattr(target, "__name__", "?"))
    return "".join(lines), f"{location}:{first}  {qualname}", first


def code_renderable(functions: Iterable[Callable[..., Any]]) -> RenderableType:
    """Every function's source, highlighted, under a header naming its file and line."""
    parts: list[RenderableType] = []
    for function in functions:
        try:
            source, location, first = source_of(function)
        except (OSError, TypeError) as err:  # built-ins and functions made at run time
            name = getattr(function, "__qualname__", repr(function))
            parts.append(Text(f"{name}: source not available ({err})", style="italic"))
            continue
        parts.append(Text(location, style="bold reverse"))
        parts.append(
            Syntax(
                source,
                "python",
                theme=SYNTAX_THEME,
                line_numbers=True,
                start_line=first,
                word_wrap=True,  # wrapped rather than cut: no sideways scrolling needed
                background_color="default",
            )
        )
        parts.append(Text(""))
    if not parts:
        parts.append(Text("No code for this view.", style="italic"))
    return Group(*parts)


class CodePanel(ScrollableContainer, can_focus=True):
    """A scrollable panel showing the source of the given functions; `c` toggles it in chapters."""

    DEFAULT_CSS = """
    CodePanel { background: $surface; border-left: vkey $primary; }
    CodePanel > Static { width: 100%; }
    """

    def __init__(self, functions: Iterable[Callable[..., Any]] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.functions: tuple[Callable[..., Any], ...] = tuple(functions)

    def compose(self):  # type: ignore[override]
        yield Static(code_renderable(self.functions), id="code-source")

    def set_functions(self, functions: Iterable[Callable[..., Any]]) -> None:
        """Show other functions (a chapter changes them as its view changes)."""
        functions = tuple(functions)
        if functions == self.functions:
            return
        self.functions = functions
        if self.is_mounted:
            self.query_one("#code-source", Static).update(code_renderable(functions))
            self.scroll_home(animate=False)
