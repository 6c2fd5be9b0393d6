"""The state every chapter shares: the loaded model, its loading status and the current prompt."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from fwdtui.errors import FwdtuiError, PromptError
from fwdtui.prompt import DEFAULT_PROMPT, prepare_prompt

if TYPE_CHECKING:  # the app must open before the core is imported, so only for type checkers
    from fwdtui.core.model import Model

# positions kept free after the prompt for the tokens the journey generates
GENERATION_RESERVE = 16

ModelState = Literal["none", "loading", "ready", "error"]


@dataclass(frozen=True)
class ModelStatus:
    """What the app can say about the model right now (shown on the index and in chapters)."""

    state: ModelState = "none"
    name: str = ""
    message: str = ""  # "downloading model.safetensors", "reading weights", ...
    progress: float | None = None  # 0..1 when known
    error: FwdtuiError | None = None

    def describe(self) -> str:
        """One line for a status bar."""
        if self.state == "ready":
            return f"model {self.name}"
        if self.state == "loading":
            pct = "" if self.progress is None else f" {self.progress:.0%}"
            what = f": {self.message}" if self.message else ""
            return f"loading {self.name}{pct}{what}…"
        if self.state == "error" and self.error is not None:
            return f"no model ({self.error.message})"
        return "no model"


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the session handed to a compute worker.

    A worker reads only this, never the live session, so a prompt or model change while it runs
    cannot mix two states; `version` lets the frame drop results computed for an older state.
    """

    version: int
    prompt: str
    model: Model | None
    ids: tuple[int, ...]  # the prompt's token ids (empty without a model)
    notices: tuple[str, ...]  # what was changed to make the prompt fit (dropped tokens, bad bytes)
    progress: Callable[[float | None, str], None] = field(compare=False, repr=False)
    cancelled: Callable[[], bool] = field(compare=False, repr=False)

    def require_model(self) -> Model:
        """The model, or an error that says how to get one."""
        if self.model is None:
            raise FwdtuiError(
                "This chapter needs a model and none is loaded yet.",
                "Wait for loading to finish, or press m to choose a model "
                "(`fwdtui download` fetches the default one).",
            )
        return self.model


def _noop_progress(fraction: float | None, message: str) -> None:
    return None


def _never() -> bool:
    return False


class Session:
    """Mutable shared state owned by the App; chapters read it through `snapshot()`.

    Every change to the prompt or the model bumps `version`, which is how stale results are
    recognised (a result carries the version it was computed for).
    """

    def __init__(self, prompt: str = DEFAULT_PROMPT, model: Model | None = None) -> None:
        self._lock = threading.Lock()
        self.prompt = prompt
        self.model: Model | None = model
        self.status = ModelStatus()
        if model is not None:
            self.status = ModelStatus(state="ready", name=model_name(model))
        self.version = 0

    # --- changes (called on the UI thread) ---------------------------------------------------
    def set_prompt(self, prompt: str) -> None:
        """Replace the prompt; an empty prompt is refused with a message."""
        if not prompt.strip():
            raise PromptError("The prompt is empty.", "Type at least one character.")
        with self._lock:
            if prompt != self.prompt:
                self.prompt = prompt
                self.version += 1

    def set_model(self, model: Model | None) -> None:
        """Install a newly loaded model (or none)."""
        with self._lock:
            self.model = model
            self.version += 1
            if model is None:
                self.status = ModelStatus()
            else:
                self.status = ModelStatus(state="ready", name=model_name(model))

    def set_status(self, status: ModelStatus) -> None:
        """Loading progress or a loading error; does not change what chapters compute on."""
        self.status = status

    # --- reading ----------------------------------------------------------------------------
    def snapshot(
        self,
        progress: Callable[[float | None, str], None] = _noop_progress,
        cancelled: Callable[[], bool] = _never,
    ) -> Snapshot:
        """Freeze the current state, tokenizing the prompt once for every chapter."""
        with self._lock:
            model, prompt, version = self.model, self.prompt, self.version
        ids: tuple[int, ...] = ()
        notices: tuple[str, ...] = ()
        if model is not None:
            prepared = prepare_prompt(model, prompt, reserve=GENERATION_RESERVE)
            ids, notices = tuple(prepared.ids), tuple(prepared.notices)
        return Snapshot(version, prompt, model, ids, notices, progress, cancelled)


def model_name(model: Any) -> str:
    """The display name of a model, tolerant of a model without `info`."""
    info = getattr(model, "info", None)
    name = getattr(info, "name", None) if info is not None else None
    return str(name or getattr(getattr(model, "config", None), "model_type", "model"))
