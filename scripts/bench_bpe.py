"""Benchmark our BPE trainer against the naive full-recount trainer on ~1 MB of text.

    python scripts/bench_bpe.py                      # 4,096 vocab (3,840 merges) on 1 MB
    python scripts/bench_bpe.py --naive-merges 100   # a cheaper naive run to extrapolate from

The naive trainer recounts every pair of every unique chunk after each merge, so it runs only a
few hundred merges (or until --naive-seconds), and its full time is extrapolated two ways:
linearly from its first merges, and from the mean of its cost per merge at the start and at
the end (one naive merge timed, best of 3, on the chunks as they are after our 3,840 merges).
The two agree within noise: chunks shrink as merges go on, but the table of distinct pairs
grows, so a full recount costs about the same all along. `--minbpe-merges` also times the
minbpe way of working on every chunk of the text instead of the unique chunk -> count table.
"""

from __future__ import annotations

import argparse
import platform
import time

from fwdtui.tokenizers.corpus import benchmark_text
from fwdtui.tokenizers.trainer import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    BPETrainer,
    count_chunks,
    get_stats,
    merge,
    naive_steps,
    split_text,
)


def _naive_merge_seconds(words: list[list[int]], freqs: list[int], new_id: int) -> float:
    """Time one naive merge (full recount, pick the best, merge everywhere), best of 3."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        stats = get_stats(words, freqs)
        if stats:
            pair = min(stats, key=lambda p: (-stats[p], p))
            [merge(word, pair, new_id) for word in words]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_000_000, help="size of the training text")
    parser.add_argument("--vocab-size", type=int, default=4096, help="256 bytes + merges")
    parser.add_argument("--pattern", choices=["gpt2", "gpt4"], default="gpt4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-merges", type=int, default=200)
    parser.add_argument("--naive-seconds", type=float, default=60.0, help="time cap for naive")
    parser.add_argument("--minbpe-merges", type=int, default=10,
                        help="merges for the all-chunks minbpe-style run (0 to skip)")
    args = parser.parse_args()
    pattern = GPT4_SPLIT_PATTERN if args.pattern == "gpt4" else GPT2_SPLIT_PATTERN
    n_merges = args.vocab_size - 256

    text = benchmark_text(args.bytes, seed=args.seed)
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    print(f"text: {len(text.encode('utf-8')):,} bytes (benchmark_text seed {args.seed}), "
          f"{args.pattern} split pattern, {n_merges:,} merges -> vocab {args.vocab_size:,}")

    # ours: chunk counting is part of the cost, so it is inside the timer
    t0 = time.perf_counter()
    counts = count_chunks(text, pattern)
    t_count = time.perf_counter() - t0
    trainer = BPETrainer(counts)
    ours = [step for _, step in zip(range(n_merges), trainer.steps())]
    t_ours = time.perf_counter() - t0
    print(f"chunks: {sum(counts.values()):,} in the text, {len(counts):,} unique "
          f"(counted in {t_count:.2f} s)")
    print(f"ours : {len(ours):,} merges in {t_ours:.2f} s "
          f"= {len(ours) / t_ours:,.0f} merges/s (incl. counting)")

    # naive: same table, full recount after every merge, capped
    deadline = time.perf_counter() + args.naive_seconds
    t0 = time.perf_counter()
    naive = []
    for step in naive_steps(count_chunks(text, pattern)):
        naive.append(step)
        if len(naive) >= min(args.naive_merges, n_merges) or time.perf_counter() > deadline:
            break
    t_naive = time.perf_counter() - t0
    assert naive == ours[: len(naive)], "naive and fast trainers disagree"
    per_merge_start = t_naive / len(naive)
    per_merge_end = _naive_merge_seconds(trainer.words, trainer.freqs, 256 + len(ours))
    linear = per_merge_start * len(ours)
    mean = (per_merge_start + per_merge_end) / 2 * len(ours)
    print(f"naive: {len(naive):,} merges in {t_naive:.2f} s = {per_merge_start * 1e3:.1f} ms/merge "
          f"at the start, {per_merge_end * 1e3:.1f} ms/merge at the end; same merges as ours")
    print(f"naive extrapolated to {len(ours):,} merges: {linear:,.0f} s linear, "
          f"{mean:,.0f} s from the start/end mean")
    print(f"ratio naive/ours: {linear / t_ours:,.0f}x linear, {mean / t_ours:,.0f}x mean")

    if args.minbpe_merges > 0:
        # minbpe's way: every chunk of the text as its own list, no unique table
        chunks = [list(chunk.encode("utf-8")) for chunk in split_text(text, pattern)]
        t0 = time.perf_counter()
        for k in range(args.minbpe_merges):
            stats = get_stats(chunks)
            pair = max(stats, key=stats.get)
            chunks = [merge(chunk, pair, 256 + k) for chunk in chunks]
        per_merge = (time.perf_counter() - t0) / args.minbpe_merges
        print(f"minbpe-style (all {len(chunks):,} chunks): {per_merge * 1e3:.0f} ms/merge, "
              f"~{per_merge * len(ours):,.0f} s for {len(ours):,} merges linear "
              f"({per_merge * len(ours) / t_ours:,.0f}x ours)")


if __name__ == "__main__":
    main()
