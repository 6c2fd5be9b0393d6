"""Fixtures for the reliability tests: tiny model folders made once per module, the network kept away."""

from __future__ import annotations

import pytest

from fwdtui.testing import write_tiny_model_folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test here may reach a network or the real weights folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path_factory.mktemp("weights")))


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    write_tiny_model_folder(folder, "gpt2")
    return folder


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    write_tiny_model_folder(folder, "llama")
    return folder

