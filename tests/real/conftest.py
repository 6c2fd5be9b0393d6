"""Tests on the real SmolLM2-135M-Instruct weights: skipped when they are not under weights/."""

import pytest


@pytest.fixture(scope="session")
def smollm2():
    from fwdtui import load_model
    from fwdtui.loaders.registry import local_path

    if local_path("smollm2-135m") is None:
        pytest.skip("SmolLM2-135M is not downloaded (fwdtui download smollm2-135m)")
    return load_model("smollm2-135m")
