"""The shared session: prompt changes, versions for stale results, snapshots that fit the context."""

from __future__ import annotations

import pytest

from fwdtui.errors import PromptError
from fwdtui.session import GENERATION_RESERVE, Session
from fwdtui.testing import random_model


def test_every_change_bumps_the_version_and_an_equal_prompt_does_not() -> None:
    session = Session("abc")
    v0 = session.version
    session.set_prompt("abc")
    assert session.version == v0
    session.set_prompt("abd")
    assert session.version == v0 + 1
    session.set_model(random_model("gpt2"))
    assert session.version == v0 + 2
    assert session.status.state == "ready" and session.status.name == "random-gpt2"


def test_empty_prompt_is_refused_with_a_fix() -> None:
    session = Session("abc")
    with pytest.raises(PromptError) as err:
        session.set_prompt("   ")
    assert err.value.fix and session.prompt == "abc"


def test_snapshot_tokenizes_once_and_cuts_long_prompts_from_the_left() -> None:
    model = random_model("gpt2")  # byte tokens, context of 128
    session = Session("x" * 200 + "END", model)
    snap = session.snapshot()
    limit = model.config.n_ctx - GENERATION_RESERVE
    assert len(snap.ids) == limit
    assert bytes(snap.ids[-3:]) == b"END"  # the end of the prompt is kept
    assert snap.notices and "dropped" in snap.notices[0]
    assert snap.version == session.version and snap.model is model


def test_snapshot_without_a_model_has_no_ids_and_require_model_says_how_to_get_one() -> None:
    snap = Session("abc").snapshot()
    assert snap.ids == () and snap.model is None
    with pytest.raises(Exception) as err:
        snap.require_model()
    assert "press m" in str(err.value).lower()
