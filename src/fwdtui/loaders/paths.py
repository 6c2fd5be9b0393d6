"""Where downloaded weights live: $FWDTUI_WEIGHTS, the checkout's weights/, or the user data dir."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from fwdtui.errors import ConfigError


def _checkout_weights_dir() -> Path | None:
    """The `weights/` folder of the source checkout this file runs from, if it runs from one."""
    for folder in Path(__file__).resolve().parents:
        pyproject = folder / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
        except (OSError, ValueError):
            name = None
        if name == "fwdtui" and (folder / "weights").is_dir():
            return folder / "weights"
        # The first pyproject.toml up the tree is the project we belong to (or none of ours).
        return None
    return None


def _user_weights_dir() -> Path:
    """`$XDG_DATA_HOME/fwdtui/weights`, by default `~/.local/share/fwdtui/weights`."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "fwdtui" / "weights"


def weights_dir(create: bool = True) -> Path:
    """The folder that holds one sub-folder per downloaded model (made on demand)."""
    env = os.environ.get("FWDTUI_WEIGHTS")
    try:
        folder = Path(env).expanduser() if env else (_checkout_weights_dir() or _user_weights_dir())
    except RuntimeError as err:  # "~someone" for a user this machine does not know, or no home folder
        raise ConfigError(
            f"Cannot work out the weights folder ({err}).",
            "Set FWDTUI_WEIGHTS to a full path, e.g. FWDTUI_WEIGHTS=/home/me/fwdtui-weights.",
        ) from None
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"Cannot create the weights folder {folder}: {err.strerror or err}.",
                "Set FWDTUI_WEIGHTS to a folder you can write to.",
            ) from err
    return folder
