"""Compare fwdtui's SmolLM2-135M logits with transformers' on the same GGUF, and print the figures.

With torch + transformers installed it runs both engines live on several prompts (transformers
dequantizes the GGUF itself); without them it compares against the committed reference
(src/fwdtui/references/smollm2-135m.npz, made by scripts/make_smollm2_reference.py).

    python scripts/compare_smollm2.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import fwdtui
from fwdtui.loaders.registry import local_path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Once upon a time, in a small village by the sea, there lived",
    "1, 1, 2, 3, 5, 8, 13,",
]


def main() -> int:
    gguf = local_path("smollm2-135m")
    if gguf is None or gguf.suffix != ".gguf":
        print("SmolLM2's GGUF is not under weights/: run `fwdtui download smollm2-135m` first.")
        return 2
    t0 = time.perf_counter()
    ours = fwdtui.load_model("smollm2-135m")
    print(f"fwdtui: loaded {gguf.name} in {time.perf_counter() - t0:.2f} s")
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        ref = np.load(ROOT / "src" / "fwdtui" / "references" / "smollm2-135m.npz")
        last = ours.logits(ref["input_ids"].tolist())[-1]
        diff = np.abs(last - ref["last_logits"]).max()
        print(f"no torch here: against the committed reference, last-row max |diff| = {diff:.2e}")
        return 0
    t0 = time.perf_counter()
    theirs = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32)
    theirs.eval()
    print(f"transformers: loaded the same GGUF in {time.perf_counter() - t0:.2f} s")
    worst = 0.0
    for prompt in PROMPTS:
        ids = ours.tokenizer.encode(prompt)
        a = ours.logits(ids)
        with torch.no_grad():
            b = theirs(torch.tensor([ids])).logits[0].numpy()
        diff = float(np.abs(a - b).max())
        scale = float(np.abs(b).max())
        agree = float((a.argmax(-1) == b.argmax(-1)).mean())
        worst = max(worst, diff)
        print(f"{len(ids):>3} tokens  max |diff| {diff:.2e} (logits up to {scale:.1f})  argmax agrees at {agree:.0%}"
              f"  {prompt[:40]!r}")
    print(f"largest difference over all positions of all prompts: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
