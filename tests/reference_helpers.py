"""What the reference tests share: where the tiny seeded checkpoints are (fixtures/models, written
with their transformers outputs by scripts/make_reference_fixtures.py) and which family each is."""

from __future__ import annotations

import json
from pathlib import Path

MODELS = Path(__file__).parent / "fixtures" / "models"


def fixture_names(family: str) -> list[str]:
    """Folders on disk whose reference.json says they are this family ("gpt2", or "llama" for the rest)."""
    names = []
    for ref in sorted(MODELS.glob("*/reference.json")):
        is_gpt2 = json.loads(ref.read_text())["model_type"] == "gpt2"
        if is_gpt2 == (family == "gpt2"):
            names.append(ref.parent.name)
    return names


def config_json(name: str) -> dict:
    """The checkpoint's config.json, as a dict."""
    return json.loads((MODELS / name / "config.json").read_text())
