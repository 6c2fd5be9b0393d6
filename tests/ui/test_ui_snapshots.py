"""SVG snapshots that pin the look of the index and key journey stages (tiny seeded model).

The committed SVGs in tests/ui/snapshots/ are what the screens looked like when last reviewed.
After an intended change, look at the new SVGs and rewrite them with
`FWDTUI_UPDATE_SNAPSHOTS=1 python -m pytest tests/ui/test_ui_snapshots.py`.
Only the journey is registered while they are taken, so other chapters being written do not
change the index picture. Textual's SVG output changes between its versions, so the snapshots are
compared only under the Textual version that made them.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from pathlib import Path

import pytest
import textual

from fwdtui.chapters import base
from fwdtui.chapters.transformer.journey import JourneyChapter
from fwdtui.screenshots import Shot, capture, steady_model
from fwdtui.testing import random_model

SNAPSHOTS = Path(__file__).parent / "snapshots"
VERSION_FILE = SNAPSHOTS / "TEXTUAL_VERSION"
UPDATE = os.environ.get("FWDTUI_UPDATE_SNAPSHOTS") == "1"
PROMPT = "Hello, wörld! Hello"

CASES = [
    Shot("index", None, size=(100, 30)),
    Shot("index-80x24", None, size=(80, 24)),
    Shot("journey-tokens", "transformer.journey", ("space",), size=(100, 30)),
    Shot("journey-attention-80x24", "transformer.journey", ("space",) * 5, size=(80, 24)),
    Shot("journey-sampling", "transformer.journey", ("space",) * 15 + ("k", "k"), size=(100, 30)),
    Shot("journey-kv-cache", "transformer.journey", ("g", "g"), size=(100, 30)),
]


@pytest.fixture
def only_the_journey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_REGISTRY", {JourneyChapter.ID: JourneyChapter})


@pytest.mark.parametrize("shot", CASES, ids=[c.name for c in CASES])
def test_snapshot(shot: Shot, only_the_journey: None) -> None:
    made_with = VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else None
    if not UPDATE and made_with != textual.__version__:
        pytest.skip(f"snapshots were made with textual {made_with}, this is {textual.__version__}")
    family = "llama" if "kv" in shot.name else "gpt2"
    svg = asyncio.run(capture(shot, steady_model(random_model(family, seed=0)), PROMPT))
    path = SNAPSHOTS / f"{shot.name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        VERSION_FILE.write_text(textual.__version__ + "\n")
        return
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        new = Path(os.environ.get("TMPDIR", "/tmp")) / f"fwdtui-snapshot-{shot.name}.svg"
        new.write_text(svg, encoding="utf-8")
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), svg.splitlines(True), n=0))[:20])
        pytest.fail(f"{shot.name} looks different; the new one is {new}\n{diff}")
