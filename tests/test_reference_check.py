"""core.reference: a stored transformers reference is found by the weights' own bytes and compared live."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fwdtui.cli import main
from fwdtui.core import reference
from fwdtui.testing import random_model, write_tiny_model_folder

PROMPT_IDS = [72, 101, 108, 108, 111]


def write_reference(folder, model, logits, name="tiny"):
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name, "fingerprint": reference.fingerprint(model), "prompt": "Hello", "prompt_ids": PROMPT_IDS,
        "computed_by": "a test"}))
    np.savez(folder / f"{name}.npz", last_logits=logits.astype(np.float32))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_matching_reference_is_found_and_agrees(tmp_path, family):
    model = random_model(family, seed=1)
    theirs = model.logits(PROMPT_IDS)[-1] + np.float32(1e-5)  # what another engine's rounding looks like
    write_reference(tmp_path, model, theirs)
    result = reference.check(model, tmp_path)
    assert result is not None and result.ok
    assert result.max_abs_diff == pytest.approx(1e-5, rel=0.05)
    assert result.same_top10 and result.our_top == result.their_top
    assert "match a test on 'Hello'" in result.summary()


def test_a_wrong_reference_is_reported_as_not_matching(tmp_path):
    model = random_model("llama", seed=1)
    theirs = model.logits(PROMPT_IDS)[-1].copy()
    theirs[int(np.argmin(theirs))] += 100.0  # a different winner, far beyond rounding
    write_reference(tmp_path, model, theirs)
    result = reference.check(model, tmp_path)
    assert result is not None and not result.ok and result.our_top != result.their_top
    assert "DO NOT match" in result.summary()


def test_other_weights_find_no_reference(tmp_path):
    write_reference(tmp_path, random_model("gpt2", seed=1), np.zeros(257))
    assert reference.check(random_model("gpt2", seed=2), tmp_path) is None
    # the same weights through `variant` (shared tensors) are the same model
    model = random_model("gpt2", seed=1)
    assert reference.fingerprint(model.variant()) == reference.fingerprint(model)


def test_unreadable_reference_files_are_skipped(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text(json.dumps({"name": "x"}))
    assert reference.stored_references(tmp_path) == []


def test_shipped_references_are_well_formed():
    refs = reference.stored_references()
    assert [r.name for r in refs] == ["smollm2-135m"]
    with np.load(refs[0].logits_file, allow_pickle=False) as data:
        assert data["last_logits"].shape == (49152,) and data["last_logits"].dtype == np.float32
    assert len(refs[0].fingerprint) == 64 and refs[0].prompt_ids


def test_trust_line_names_the_suite_check_without_a_reference():
    line = reference.trust_line(random_model("gpt2", seed=3))
    assert line.startswith("No stored reference for these weights") and "6e-6" in line


def test_cli_check_without_a_reference(tmp_path, capsys):
    write_tiny_model_folder(tmp_path, "gpt2")
    assert main(["check", "--model", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no stored reference for these weights" in out
