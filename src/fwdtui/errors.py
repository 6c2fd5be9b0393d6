"""The errors a user can cause, each with a message that names the fix."""

from __future__ import annotations


class FwdtuiError(Exception):
    """Base of every error we expect a user to meet; the CLI and the app show `str(err)` only."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n{fix}")


class ModelNotFoundError(FwdtuiError):
    """A model name or path that names nothing we can load."""


class WeightsError(FwdtuiError):
    """A weights, config or tokenizer file that is missing, corrupt, truncated or foreign."""


class DownloadError(FwdtuiError):
    """A download that could not finish: no network, a wrong hash, a full disk."""


class PromptError(FwdtuiError):
    """A prompt the model cannot take as it is (empty, too long, undecodable)."""


class ConfigError(FwdtuiError):
    """A model configuration with missing or absurd values."""
