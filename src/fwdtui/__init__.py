"""fwdtui: a terminal course on the forward pass of a real language model, computed live in numpy."""

from __future__ import annotations

__version__ = "0.1.0"


def load_model(spec, progress=None):
    """Load a model by registry name ("gpt2", "smollm2-135m") or by path; see `fwdtui.loaders.load_model`."""
    from fwdtui.loaders import load_model as _load

    return _load(spec, progress=progress)


__all__ = ["load_model", "__version__"]
