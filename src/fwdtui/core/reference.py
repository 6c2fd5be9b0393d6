"""Checking the loaded model against a stored reference: our logits next to transformers' on the same weights.

A reference is two files in `fwdtui/references/`: `<name>.json` (which weights it belongs to, the prompt
ids, who computed it) and `<name>.npz` (transformers' logits for the last prompt position, float32).
`scripts/make_smollm2_reference.py` writes them with torch and transformers; nothing here needs either.
The weights are recognised by a fingerprint of their own bytes, not by a file name, so a model loaded
from its GGUF or from the dequantized cache beside it is the same model.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fwdtui.core.model import Model

TOLERANCE = 2e-3  # largest |ours - theirs| we accept on float32 logits of this size: summation-order rounding


def fingerprint(model: Model) -> str:
    """sha256 of the model's shape and a few of its tensors' bytes: equal for the same weights however loaded."""
    cfg = model.config
    w = model.weights
    embed = w["wte.weight"] if cfg.family == "gpt2" else w["embed_tokens.weight"]
    final = w["ln_f.weight"] if cfg.family == "gpt2" else w["norm.weight"]
    h = hashlib.sha256(f"{cfg.family}/{cfg.n_layer}/{cfg.n_embd}/{cfg.vocab_size}".encode())
    for tensor in (embed[:4], embed[-4:], final):
        h.update(np.ascontiguousarray(tensor, dtype=np.float32).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Reference:
    name: str
    fingerprint: str
    prompt: str
    prompt_ids: tuple[int, ...]
    computed_by: str  # "transformers 5.25.0, torch 2.13.0+cpu, LlamaForCausalLM on the same GGUF"
    logits_file: Path


@dataclass(frozen=True)
class Check:
    """Our last-position logits on the reference prompt against the stored ones."""

    reference: Reference
    max_abs_diff: float
    max_abs_logit: float
    same_top10: bool
    our_top: int
    their_top: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE and self.our_top == self.their_top

    def summary(self) -> str:
        verdict = "match" if self.ok else "DO NOT match"
        return (f"{verdict} {self.reference.computed_by} on {self.reference.prompt!r}: largest difference "
                f"{self.max_abs_diff:.1e} (logits up to {self.max_abs_logit:.0f}), "
                f"{'the same' if self.same_top10 else 'a different'} top 10")


def _references_dir() -> Path:
    return Path(str(resources.files("fwdtui") / "references"))


def stored_references(folder: Path | None = None) -> list[Reference]:
    """Every reference in `folder` (default: the ones shipped with fwdtui); unreadable files are skipped."""
    out = []
    for meta in sorted((folder or _references_dir()).glob("*.json")):
        try:
            d = json.loads(meta.read_text(encoding="utf-8"))
            out.append(Reference(name=str(d["name"]), fingerprint=str(d["fingerprint"]), prompt=str(d["prompt"]),
                                 prompt_ids=tuple(int(i) for i in d["prompt_ids"]),
                                 computed_by=str(d["computed_by"]), logits_file=meta.with_suffix(".npz")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def find_reference(model: Model, folder: Path | None = None) -> Reference | None:
    """The stored reference for exactly these weights, or None."""
    mine = fingerprint(model)
    return next((r for r in stored_references(folder) if r.fingerprint == mine), None)


def check(model: Model, folder: Path | None = None) -> Check | None:
    """Run the reference prompt through `model` now and compare with the stored logits; None if no reference."""
    ref = find_reference(model, folder)
    if ref is None:
        return None
    with np.load(ref.logits_file, allow_pickle=False) as data:
        theirs = np.asarray(data["last_logits"], dtype=np.float32)
    ours = model.logits(list(ref.prompt_ids))[-1]
    if ours.shape != theirs.shape:
        return Check(ref, float("inf"), float(np.abs(theirs).max()), False, int(np.argmax(ours)), int(np.argmax(theirs)))
    return Check(
        reference=ref,
        max_abs_diff=float(np.abs(ours - theirs).max()),
        max_abs_logit=float(np.abs(theirs).max()),
        same_top10=np.argsort(-ours)[:10].tolist() == np.argsort(-theirs)[:10].tolist(),
        our_top=int(np.argmax(ours)),
        their_top=int(np.argmax(theirs)),
    )


# What the test suite checks for every model, stored reference or not (README, "Why you can trust the numbers").
SUITE_CHECK = ("fwdtui's tests match transformers' logits on random GPT-2, Llama, Qwen2 and Mistral models "
               "to under 6e-6")


_LINES: "weakref.WeakKeyDictionary[Model, str]" = weakref.WeakKeyDictionary()


def trust_line(model: Model) -> str:
    """One sentence for the screen: how these weights' logits compare with a reference (cached per model)."""
    line = _LINES.get(model)
    if line is None:
        result = check(model)
        if result is None:
            line = f"No stored reference for these weights; {SUITE_CHECK}."
        else:
            line = f"Checked just now: these weights' logits {result.summary()}."
        _LINES[model] = line
    return line
