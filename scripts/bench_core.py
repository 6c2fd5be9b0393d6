"""Quick before/after figures for a change to the core, steady even on a machine shared with others.

`fwdtui bench` reports wall-clock medians, which is what a user sees, but on a busy machine they move
by 2x from one minute to the next. To compare two versions of the code, this script times the same
workloads by CPU time on one BLAS thread and keeps the best of several runs: neighbours then add
little, and a 5% change shows. Usage:

    OPENBLAS_NUM_THREADS=1 python scripts/bench_core.py            # CPU time, one thread (for A/B)
    python scripts/bench_core.py --wall                              # wall clock, all threads

Run it on the code before and after a change and compare the lines. It uses the same random GPT-2
124M folder as `fwdtui bench` (written once to the temp directory).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fwdtui
from fwdtui.bench import random_gpt2_folder


def best_ms(fn, clock, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall", action="store_true", help="wall clock instead of CPU time")
    parser.add_argument("--lengths", default="16,64,256,1024", help="prefill lengths")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time

    t0 = time.perf_counter()
    model = fwdtui.load_model(random_gpt2_folder())
    figures = {"load ms": (time.perf_counter() - t0) * 1e3}
    rng = np.random.default_rng(0)

    cache = model.new_cache()
    prompt = rng.integers(0, model.config.vocab_size, 16).tolist()

    def decode8() -> None:
        cache.truncate(0)
        logits, _ = model.forward(prompt, cache=cache, last_only=True)
        for _ in range(8):
            logits, _ = model.forward([int(np.argmax(logits[-1]))], cache=cache, last_only=True)

    def prefill_only() -> None:
        cache.truncate(0)
        model.forward(prompt, cache=cache, last_only=True)

    # The decode steps alone: 8 steps after the prefill, less the prefill.
    figures["decode ms/token"] = (best_ms(decode8, clock, args.runs) - best_ms(prefill_only, clock, args.runs)) / 8
    for n in (int(s) for s in args.lengths.split(",")):
        ids = rng.integers(0, model.config.vocab_size, n).tolist()
        figures[f"prefill {n}"] = best_ms(lambda: model.forward(ids, cache=model.new_cache(), last_only=True), clock,
                                          args.runs if n < 1024 else max(2, args.runs // 2))
    ids = rng.integers(0, model.config.vocab_size, 64).tolist()
    figures["logits 64"] = best_ms(lambda: model.logits(ids), clock, args.runs)
    figures["trace 64"] = best_ms(lambda: model.trace(ids), clock, args.runs)
    print(("wall" if args.wall else "cpu") + " ms, best of runs: " + "  ".join(f"{k}: {v:.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
