"""The inference-engine lab: timing prefill and decode, a paged KV cache, tiled attention with an
online softmax, speculative decoding, extra samplers, prefix reuse, a batching simulator and the
roofline figures, all on the loaded model (numpy only)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fwdtui.core import ops
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.sampling import SamplingSettings, sampling_distribution

Progress = Callable[[float | None, str], None]
Cancelled = Callable[[], bool]


def _no_progress(fraction: float | None, text: str) -> None:
    return None


def _never() -> bool:
    return False


# ------------------------------------------------------------------------------------------------
# Work per step: FLOPs and bytes of one forward call
# ------------------------------------------------------------------------------------------------


def matmul_params(model) -> int:
    """Weights that take part in a matrix product for every token: all matrices but the lookup tables.

    An embedding table is only looked up (one row per token), unless it is also the unembedding."""
    cfg = model.config
    total = sum(w.size for w in model.weights.values() if w.ndim == 2)
    if cfg.family == "gpt2":
        total -= model.weights["wpe.weight"].size  # learned positions: a lookup
    elif "lm_head.weight" in model.weights:
        total -= model.weights["embed_tokens.weight"].size  # untied: the input table is a lookup
    return int(total)


def weight_bytes(model) -> int:
    """Bytes of weights one forward call reads from memory (each matrix once, lookups one row)."""
    try:
        from fwdtui.bench import weight_bytes_per_token  # the performance engineer's definition
        return int(weight_bytes_per_token(model))
    except ImportError:  # pragma: no cover - bench is part of the package
        return int(sum(w.nbytes for w in model.weights.values()))


@dataclass(frozen=True)
class StepCost:
    """What one forward call of `n_new` tokens after `n_past` cached ones computes and reads."""

    n_new: int
    n_past: int
    flops: float  # multiply-adds count as 2
    weight_bytes: float
    kv_bytes: float  # cache read + written

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes

    @property
    def intensity(self) -> float:
        """FLOPs per byte read: low means the memory, not the arithmetic, sets the speed."""
        return self.flops / max(1.0, self.bytes)


def step_cost(model, n_new: int, n_past: int = 0) -> StepCost:
    """FLOPs and bytes of one forward call: the matrices once for all new rows, plus attention."""
    cfg = model.config
    dense = 2.0 * matmul_params(model) * n_new  # every new row multiplies through every matrix
    # attention: q.k for every visible key and the weighted sum of v, per head and layer
    n_keys = n_new * n_past + n_new * (n_new + 1) / 2  # causal: row i sees n_past + i + 1 keys
    attn = 4.0 * cfg.n_layer * cfg.n_head * cfg.head_dim * n_keys
    kv_per_token = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4
    return StepCost(n_new, n_past, dense + attn, float(weight_bytes(model)), float(kv_per_token * (n_past + n_new)))


# ------------------------------------------------------------------------------------------------
# Prefill against decode, timed
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefillDecodeTiming:
    """Wall times of one prefill of the prompt and of each following greedy decode step."""

    n_prompt: int
    prefill_seconds: float
    decode_seconds: tuple[float, ...]
    tokens: tuple[int, ...]  # the greedy tokens decoded

    @property
    def decode_mean(self) -> float:
        return float(np.median(self.decode_seconds)) if self.decode_seconds else float("nan")


def time_prefill_decode(model, ids: Sequence[int], n_decode: int, progress: Progress = _no_progress,
                        cancelled: Cancelled = _never) -> PrefillDecodeTiming:
    """Prefill the prompt once, then decode `n_decode` greedy tokens one cached step at a time, timing each."""
    ids = list(ids)[: model.config.n_ctx - n_decode] or list(ids)[:1]
    # The first pass also pays one-off costs (touching the mapped weights, allocations), so the
    # prefill is timed as the fastest of a few fresh runs, as the decode steps are a median of many.
    prefill = float("inf")
    for run in range(3 if len(ids) <= 256 else 2):
        progress(0.0, f"prefill of the prompt (run {run + 1})")
        cache = model.new_cache()
        t0 = time.perf_counter()
        logits, _ = model.forward(ids, cache=cache, last_only=True)
        prefill = min(prefill, time.perf_counter() - t0)
        if cancelled():
            break
    steps, tokens = [], []
    for i in range(n_decode):
        if cancelled() or cache.length >= model.config.n_ctx:
            break
        progress((i + 1) / (n_decode + 1), f"decode step {i + 1} of {n_decode}")
        token = int(np.argmax(logits[-1]))
        tokens.append(token)
        t0 = time.perf_counter()
        logits, _ = model.forward([token], cache=cache, last_only=True)
        steps.append(time.perf_counter() - t0)
    return PrefillDecodeTiming(len(ids), prefill, tuple(steps), tuple(tokens))


# ------------------------------------------------------------------------------------------------
# KV cache against recomputing the prefix
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheComparison:
    """Greedy decoding with the cache and by recomputing the whole sequence each step, side by side."""

    n_prompt: int
    tokens: tuple[int, ...]
    cached_seconds: tuple[float, ...]
    recompute_seconds: tuple[float, ...]
    max_abs_diff: tuple[float, ...]  # per step, between the two ways' next-token logits
    cached_logits: np.ndarray  # [n_steps, n_vocab] of the cached way
    recompute_logits: np.ndarray  # [n_steps, n_vocab]
    bytes_per_token: int
    cache_bytes: int  # after the last step


def compare_cache(model, ids: Sequence[int], n_steps: int, progress: Progress = _no_progress,
                  cancelled: Cancelled = _never) -> CacheComparison:
    """Decode `n_steps` greedy tokens twice: one cached step each, and a full forward of everything each."""
    seq = list(ids)[: max(1, model.config.n_ctx - n_steps - 1)]
    n_prompt = len(seq)
    cache = model.new_cache()
    logits, _ = model.forward(seq, cache=cache, last_only=True)
    tokens, t_cached, t_full, diffs, rows_c, rows_f = [], [], [], [], [], []
    for i in range(n_steps):
        if cancelled():
            break
        progress(i / n_steps, f"step {i + 1} of {n_steps}: cached, then recomputed")
        token = int(np.argmax(logits[-1]))
        tokens.append(token)
        seq.append(token)
        t0 = time.perf_counter()
        logits, _ = model.forward([token], cache=cache, last_only=True)  # one new row: reads the cache
        t_cached.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        full, _ = model.forward(seq, last_only=True)  # no cache: every position again
        t_full.append(time.perf_counter() - t0)
        diffs.append(float(np.max(np.abs(full[-1] - logits[-1]))))
        rows_c.append(logits[-1])
        rows_f.append(full[-1])
    empty = np.zeros((0, model.config.vocab_size), np.float32)
    return CacheComparison(n_prompt, tuple(tokens), tuple(t_cached), tuple(t_full), tuple(diffs),
                           np.stack(rows_c) if rows_c else empty, np.stack(rows_f) if rows_f else empty,
                           cache.bytes_per_token, cache.nbytes)


# ------------------------------------------------------------------------------------------------
# PagedAttention: the cache in fixed-size blocks with a block table per sequence
# ------------------------------------------------------------------------------------------------


class PagedKVCache:
    """Keys and values in a shared pool of fixed-size blocks; each sequence has a block table.

    Pool per layer: [n_blocks, n_kv_head, block_size, head_dim]. A sequence's position p lives in
    block table[p // block_size], slot p % block_size, so memory is taken one block at a time and a
    sequence's blocks need not be next to each other.
    """

    def __init__(self, n_layer: int, n_kv_head: int, head_dim: int, block_size: int, n_blocks: int) -> None:
        self.n_layer, self.n_kv_head, self.head_dim = n_layer, n_kv_head, head_dim
        self.block_size, self.n_blocks = block_size, n_blocks
        shape = (n_layer, n_blocks, n_kv_head, block_size, head_dim)
        self.k_pool = np.zeros(shape, np.float32)
        self.v_pool = np.zeros(shape, np.float32)
        self.free: list[int] = list(range(n_blocks))  # taken from the front
        self.tables: dict[str, list[int]] = {}
        self.lengths: dict[str, int] = {}

    def append(self, seq: str, k: np.ndarray, v: np.ndarray) -> None:
        """Store k, v [n_layer, n_kv_head, n_new, head_dim] after what `seq` holds, taking blocks as needed."""
        table = self.tables.setdefault(seq, [])
        length = self.lengths.get(seq, 0)
        n_new = k.shape[2]
        needed = -(-(length + n_new) // self.block_size) - len(table)
        if needed > len(self.free):
            raise MemoryError(f"the pool has {len(self.free)} free blocks, {needed} needed")
        for _ in range(needed):
            table.append(self.free.pop(0))
        for i in range(n_new):  # position by position: each lands in (block, slot) from the table
            p = length + i
            block, slot = table[p // self.block_size], p % self.block_size
            self.k_pool[:, block, :, slot] = k[:, :, i]
            self.v_pool[:, block, :, slot] = v[:, :, i]
        self.lengths[seq] = length + n_new

    def release(self, seq: str) -> None:
        """A finished sequence gives its blocks back to the pool."""
        self.free.extend(self.tables.pop(seq, []))
        self.lengths.pop(seq, None)

    def gather(self, seq: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """The sequence's k, v [n_kv_head, length, head_dim] read through its block table."""
        table, length = self.tables[seq], self.lengths[seq]
        k = self.k_pool[layer, table]  # [n_blocks_seq, n_kv_head, block_size, head_dim]
        v = self.v_pool[layer, table]
        k = k.transpose(1, 0, 2, 3).reshape(self.n_kv_head, -1, self.head_dim)[:, :length]
        v = v.transpose(1, 0, 2, 3).reshape(self.n_kv_head, -1, self.head_dim)[:, :length]
        return k, v

    def wasted_slots(self) -> int:
        """Reserved but unused positions: only the tail of each sequence's last block."""
        return sum(len(t) * self.block_size - self.lengths[s] for s, t in self.tables.items())


def cache_layers(cache: KVCache, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All layers' k, v of a model's KVCache positions [start, stop): [n_layer, n_kv_head, n, head_dim]."""
    stop = cache.length if stop is None else stop
    k = np.stack([cache.keys(layer)[:, start:stop] for layer in range(cache.n_layer)])
    v = np.stack([cache.values(layer)[:, start:stop] for layer in range(cache.n_layer)])
    return k, v


def paged_attention(q: np.ndarray, paged: PagedKVCache, seq: str, layer: int) -> np.ndarray:
    """Attention of the newest queries q [n_head, n_q, head_dim] over a sequence's paged keys and values."""
    k, v = paged.gather(seq, layer)  # [n_kv_head, length, head_dim]
    n_k = k.shape[1]
    q_positions = np.arange(n_k - q.shape[1], n_k)
    z, _, _ = ops.attention(q, k, v, ops.causal_mask(q_positions, np.arange(n_k)))
    return z


@dataclass(frozen=True)
class Allocation:
    """Memory for a set of sequences: reserved up front to the maximum length, or block by block."""

    lengths: tuple[int, ...]
    max_len: int
    block_size: int

    @property
    def used(self) -> int:
        return int(sum(self.lengths))

    @property
    def contiguous_reserved(self) -> int:
        return self.max_len * len(self.lengths)  # each request gets room for the longest possible answer

    @property
    def paged_reserved(self) -> int:
        return int(sum(-(-n // self.block_size) * self.block_size for n in self.lengths))

    def waste(self, reserved: int) -> float:
        return 1.0 - self.used / reserved if reserved else 0.0


@dataclass(frozen=True)
class InterleavedRun:
    """Several requests that share a prompt, decoded as a server interleaves them, kept for paging.

    `events` is the order in which positions were written: (sequence, start, stop), a prefill
    writing the whole prompt at once and every decode step one position per live sequence."""

    names: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]  # per sequence: prompt + its continuation
    n_prompt: int
    keys: tuple[np.ndarray, ...]  # per sequence [n_layer, n_kv_head, length, head_dim]
    values: tuple[np.ndarray, ...]
    queries: tuple[np.ndarray, ...]  # per sequence, the newest token's q [n_layer, n_head, 1, head_dim]
    model_z: tuple[np.ndarray, ...]  # per sequence, the model's own attention output there [n_layer, n_head, 1, head_dim]
    events: tuple[tuple[str, int, int], ...]


def serve_interleaved(model, ids: Sequence[int], n_new: Sequence[int] = (9, 5, 7), arrive: Sequence[int] = (0, 2, 4),
                      progress: Progress = _no_progress, cancelled: Cancelled = _never) -> InterleavedRun:
    """Request r starts with the prompt's (r+1)-th likeliest next token, then decodes greedily; it
    arrives at step arrive[r] (its prefill) and writes one position per step until it holds
    prompt + n_new[r] tokens. Every request gets its own KVCache (the contiguous reference)."""
    n_req = len(n_new)
    names = tuple("ABCDEFGH"[:n_req])
    prompt = list(ids)[: max(1, model.config.n_ctx - max(n_new))]
    base = model.new_cache()
    progress(0.0, "prefill of the shared prompt")
    logits, _ = model.forward(prompt, cache=base, last_only=True)
    first = np.argsort(logits[-1])[::-1]  # likeliest first
    seqs, caches = [], []
    for r in range(n_req):
        cache = copy.deepcopy(base)  # same prompt: its keys and values are the same for every request
        seq = prompt + [int(first[r])]
        while len(seq) < len(prompt) + n_new[r]:
            if cancelled():
                break
            progress(len(seqs) / (n_req + 1), f"decoding request {names[r]}, token {len(seq) - len(prompt) + 1}")
            out, _ = model.forward(seq[cache.length:], cache=cache, last_only=True)
            seq.append(int(np.argmax(out[-1])))
        model.forward(seq[cache.length:], cache=cache, last_only=True)  # the newest token's k, v too
        seqs.append(seq)
        caches.append(cache)
    progress(n_req / (n_req + 1), "the newest token's queries")
    rotated = model.config.family == "llama"
    queries, zs = [], []
    for seq in seqs:  # a full forward of each sequence: q and the model's own z at its last position
        tr = model.trace(seq)
        qs = [tr[f"blocks.{i}.attn." + ("q_rot" if rotated else "q")][:, -1:] for i in range(model.config.n_layer)]
        queries.append(np.stack(qs))
        zs.append(np.stack([tr[f"blocks.{i}.attn.z"][:, -1:] for i in range(model.config.n_layer)]))
    # the schedule: a request's prefill writes the prompt at its arrival, then one position per step
    events: list[tuple[str, int, int]] = []
    written = [0] * n_req
    step = 0
    while any(written[r] < len(seqs[r]) for r in range(n_req)):
        for r in range(n_req):
            if step < arrive[r] or written[r] >= len(seqs[r]):
                continue
            stop = len(prompt) if written[r] == 0 else written[r] + 1
            events.append((names[r], written[r], stop))
            written[r] = stop
        step += 1
    kv = [cache_layers(c) for c in caches]
    return InterleavedRun(names, tuple(tuple(s) for s in seqs), len(prompt), tuple(k for k, _ in kv),
                          tuple(v for _, v in kv), tuple(queries), tuple(zs), tuple(events))


def page_run(run: InterleavedRun, block_size: int, spare_blocks: int = 2) -> PagedKVCache:
    """Replay a run's writes, in their order, into a paged pool just big enough (plus a few free blocks)."""
    n_layer, n_kv_head, _, head_dim = run.keys[0].shape
    needed = sum(-(-len(s) // block_size) for s in run.ids)
    paged = PagedKVCache(n_layer, n_kv_head, head_dim, block_size, needed + spare_blocks)
    index = {name: i for i, name in enumerate(run.names)}
    for name, start, stop in run.events:
        i = index[name]
        paged.append(name, run.keys[i][:, :, start:stop], run.values[i][:, :, start:stop])
    return paged


@dataclass(frozen=True)
class PagedCheck:
    """Per layer, the largest difference of the paged attention output from two references."""

    vs_contiguous: np.ndarray  # [n_layer]: the same q over the sequence's own contiguous cache
    vs_model: np.ndarray  # [n_layer]: the model's own attention output in a full forward


def check_paged(run: InterleavedRun, paged: PagedKVCache, seq: str) -> PagedCheck:
    """Attention of a sequence's newest token over its gathered pages, against the contiguous cache."""
    i = run.names.index(seq)
    n = len(run.ids[i])
    contiguous, model = [], []
    for layer in range(paged.n_layer):
        q = run.queries[i][layer]  # [n_head, 1, head_dim]
        z = paged_attention(q, paged, seq, layer)
        ref, _, _ = ops.attention(q, run.keys[i][layer], run.values[i][layer], np.zeros((1, n), bool))
        contiguous.append(float(np.max(np.abs(z - ref))))
        model.append(float(np.max(np.abs(z - run.model_z[i][layer]))))
    return PagedCheck(np.array(contiguous), np.array(model))


# ------------------------------------------------------------------------------------------------
# FlashAttention: tiles of keys with a running max and running sum
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileStep:
    """One tile visited for the recorded head: which queries and keys, and the running state after it."""

    q_start: int
    q_stop: int
    k_start: int
    k_stop: int
    skipped: bool  # every key of the tile is in the future of every query of the tile
    running_max: np.ndarray  # [q_tile] after the tile
    running_sum: np.ndarray  # [q_tile]


def flash_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_q: int = 16, block_k: int = 16,
                    record_head: int | None = None) -> tuple[np.ndarray, list[TileStep]]:
    """Causal attention one (query tile, key tile) at a time, never holding a whole score matrix.

    q: [n_head, n_q, head_dim]; k, v: [n_kv_head, n_k, head_dim]; the queries are the last n_q
    positions. Per query row it keeps a running max m, a running sum l of exp(s - m) and an
    accumulator of exp(s - m) @ v; a new tile with a larger max rescales the old sum and accumulator
    by exp(m_old - m_new). Returns z [n_head, n_q, head_dim] (equal to `ops.attention`) and the tiles
    walked for `record_head`.
    """
    n_head, n_q, head_dim = q.shape
    n_kv_head, n_k, _ = k.shape
    group = n_head // n_kv_head
    scale = np.float32(1.0 / np.sqrt(head_dim))
    q_pos = np.arange(n_k - n_q, n_k)
    z = np.empty_like(q)
    steps: list[TileStep] = []
    for h in range(n_head):
        kh, vh = k[h // group], v[h // group]  # [n_k, head_dim], shared within the group
        for qs in range(0, n_q, block_q):
            qt = q[h, qs:qs + block_q] * scale  # [bq, head_dim]
            pos = q_pos[qs:qs + block_q]
            m = np.full(qt.shape[0], -np.inf, np.float32)  # running max per query row
            l = np.zeros(qt.shape[0], np.float32)  # running sum of exp(s - m)
            acc = np.zeros(qt.shape, np.float32)  # running sum of exp(s - m) * v
            for ks in range(0, n_k, block_k):
                k_idx = np.arange(ks, min(ks + block_k, n_k))
                if k_idx[0] > pos[-1]:  # the whole tile is in the future: never loaded
                    if h == record_head:
                        steps.append(TileStep(qs, qs + len(pos), ks, ks + len(k_idx), True, m.copy(), l.copy()))
                    continue
                s = qt @ kh[k_idx].T  # [bq, bk]: the only scores that exist at any moment
                s[k_idx[None, :] > pos[:, None]] = -np.inf
                m_new = np.maximum(m, s.max(axis=1))  # key 0 is in the first tile, so m_new is finite
                p = np.exp(s - m_new[:, None])  # [bq, bk]
                correction = np.exp(m - m_new)  # how much smaller the old terms are against the new max
                l = l * correction + p.sum(axis=1)
                acc = acc * correction[:, None] + p @ vh[k_idx]
                m = m_new
                if h == record_head:
                    steps.append(TileStep(qs, qs + len(pos), ks, ks + len(k_idx), False, m.copy(), l.copy()))
            z[h, qs:qs + block_q] = acc / l[:, None]
    return z, steps


def attention_memory(n_head: int, n_q: int, n_k: int, head_dim: int, block_q: int, block_k: int) -> tuple[int, int]:
    """Bytes (float32) of the full score matrix of all heads, against one tile's scores plus running state."""
    full = n_head * n_q * n_k * 4
    tile = (block_q * block_k + block_q * (head_dim + 2)) * 4
    return full, tile


def layer_qkv(model, ids: Sequence[int], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The real q, k, v (after rotary for Llama) of one layer on the prompt, and the model's own z."""
    tr = model.trace(list(ids))
    p = f"blocks.{layer}.attn."
    rotated = model.config.family == "llama"
    q = tr[p + ("q_rot" if rotated else "q")]
    k = tr[p + ("k_rot" if rotated else "k")]
    return q, k, tr[p + "v"], tr[p + "z"]


# ------------------------------------------------------------------------------------------------
# Speculative decoding
# ------------------------------------------------------------------------------------------------


def draft_model(model, n_layer: int):
    """Self-speculative draft: the same model cut after its first `n_layer` blocks (weights shared,
    then the model's own final norm and unembedding)."""
    n_layer = int(max(1, min(n_layer, model.config.n_layer)))
    return model.variant(config=replace(model.config, n_layer=n_layer), name=f"{model.info.name} (first {n_layer} layers)")


@dataclass(frozen=True)
class SpecRound:
    """One draft-and-verify round."""

    drafted: tuple[int, ...]
    accepted: int  # how many drafted tokens the target kept, from the front
    extra: int  # the token the target adds itself: a correction, or a bonus after a full accept


@dataclass(frozen=True)
class SpecResult:
    tokens: tuple[int, ...]
    rounds: tuple[SpecRound, ...]
    target_passes: int
    draft_passes: int
    seconds: float

    @property
    def acceptance(self) -> float:
        drafted = sum(len(r.drafted) for r in self.rounds)
        return sum(r.accepted for r in self.rounds) / drafted if drafted else 0.0

    @property
    def tokens_per_pass(self) -> float:
        return len(self.tokens) / self.target_passes if self.target_passes else 0.0


def _catch_up(model, cache: KVCache, seq: list[int]) -> None:
    """Feed the cache everything of `seq` but its last token (which the next call feeds)."""
    if cache.length > len(seq) - 1:
        cache.truncate(len(seq) - 1)
    if cache.length < len(seq) - 1:
        model.forward(seq[cache.length:-1], cache=cache, last_only=True)


def _probs(logits: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    return np.stack([sampling_distribution(row, settings) for row in np.atleast_2d(logits)])


def accept_or_resample(p: np.ndarray, q: np.ndarray, drafted: Sequence[int],
                       rng: np.random.Generator) -> tuple[int, int]:
    """The speculative-sampling rule: keep drafted token x_i with probability min(1, p_i(x)/q_i(x));
    at the first rejection draw from max(0, p_i - q_i) renormalised; if all pass, draw a bonus from p_k.

    p: [k+1, n_vocab] target probabilities, q: [k, n_vocab] draft probabilities. Returns (number
    accepted, the extra token). The tokens that come out are distributed exactly as the target's.
    """
    for i, x in enumerate(drafted):
        if rng.random() * q[i, x] < p[i, x]:  # u < p/q without dividing by a zero q
            continue
        residual = np.maximum(p[i] - q[i], 0.0)
        total = residual.sum()
        dist = residual / total if total > 0 else p[i]
        return i, _draw(dist, rng)
    return len(drafted), _draw(p[len(drafted)], rng)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), probs.size - 1))


def speculative_decode(target, draft, ids: Sequence[int], n_new: int, k: int = 4,
                       settings: SamplingSettings | None = None, seed: int | None = 0,
                       progress: Progress = _no_progress, cancelled: Cancelled = _never) -> SpecResult:
    """Generate `n_new` tokens: the draft proposes `k` one by one, the target scores all k+1 positions in
    one pass. Greedy (temperature 0) keeps the longest prefix the target agrees with, then the target's
    own token, so the output equals the target's greedy output exactly; with sampling, the rejection
    rule of `accept_or_resample` keeps the target's distribution."""
    settings = settings or SamplingSettings(temperature=0.0)
    rng = np.random.default_rng(seed)
    greedy = settings.temperature == 0
    seq = list(ids)
    n_prompt = len(seq)
    t_cache, d_cache = target.new_cache(), draft.new_cache()
    rounds: list[SpecRound] = []
    target_passes = draft_passes = 0
    t0 = time.perf_counter()
    while len(seq) - n_prompt < n_new and not cancelled():
        room = target.config.n_ctx - len(seq)
        kk = min(k, n_new - (len(seq) - n_prompt) - 1, room - 1)  # the target adds one token itself
        if room <= 0:
            break
        progress((len(seq) - n_prompt) / n_new, f"round {len(rounds) + 1}: drafting {max(kk, 0)}")
        _catch_up(draft, d_cache, seq)
        drafted: list[int] = []
        q_rows = []
        last = seq[-1]
        for _ in range(max(0, kk)):
            logits, _ = draft.forward([last], cache=d_cache, last_only=True)
            draft_passes += 1
            if greedy:
                last = int(np.argmax(logits[-1]))
            else:
                q_rows.append(sampling_distribution(logits[-1], settings))
                last = _draw(q_rows[-1], rng)
            drafted.append(last)
        _catch_up(target, t_cache, seq)
        logits, _ = target.forward([seq[-1]] + drafted, cache=t_cache)  # [k+1, n_vocab] in one pass
        target_passes += 1
        if greedy:
            choice = np.argmax(logits, axis=-1)
            accepted = 0
            while accepted < len(drafted) and drafted[accepted] == int(choice[accepted]):
                accepted += 1
            extra = int(choice[accepted])
        else:
            q = np.array(q_rows) if q_rows else np.zeros((0, logits.shape[-1]))
            accepted, extra = accept_or_resample(_probs(logits, settings), q, drafted, rng)
        rounds.append(SpecRound(tuple(drafted), accepted, extra))
        seq += drafted[:accepted] + [extra]
        # the caches hold rejected positions now: the next round's catch-up truncates them away
        eos = target.config.eos_token_id
        if eos is not None and eos in seq[n_prompt:]:
            seq = seq[: seq.index(eos, n_prompt) + 1]
            break
    tokens = tuple(seq[n_prompt:n_prompt + n_new])
    return SpecResult(tokens, tuple(rounds), target_passes, draft_passes, time.perf_counter() - t0)


def greedy_decode(model, ids: Sequence[int], n_new: int, cancelled: Cancelled = _never) -> tuple[tuple[int, ...], float]:
    """Plain greedy decoding with the cache, one target pass per token, and its wall time."""
    t0 = time.perf_counter()
    out = []
    for token in model.generate(list(ids), n_new, temperature=0.0):
        out.append(token)
        if cancelled():
            break
    return tuple(out), time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# Sampling beyond temperature / top-k / top-p
# ------------------------------------------------------------------------------------------------


def repetition_penalty(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """Make tokens already in `history` less likely: positive logits divided by `penalty`, negative
    ones multiplied (so both move down), as in the CTRL paper and Hugging Face. 1.0 changes nothing."""
    out = np.asarray(logits, np.float64).copy()
    if penalty == 1.0 or not len(history):
        return out
    seen = np.unique(np.asarray(history, np.int64))
    seen = seen[(seen >= 0) & (seen < out.size)]
    out[seen] = np.where(out[seen] > 0, out[seen] / penalty, out[seen] * penalty)
    return out


def min_p_keep(probs: np.ndarray, min_p: float) -> np.ndarray:
    """Min-p: keep the tokens at least `min_p` times as likely as the most likely one (a bar that
    rises when the model is sure and drops when it is not). 0 keeps everything."""
    probs = np.asarray(probs)
    if min_p <= 0:
        return probs > 0
    return probs >= min_p * probs.max()


@dataclass(frozen=True)
class SamplerSettings:
    """Every knob of the sampler: the core's three plus min-p and the repetition penalty."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0


def full_distribution(logits: np.ndarray, settings: SamplerSettings, history: Sequence[int] = ()) -> np.ndarray:
    """The distribution the sampler draws from: repetition penalty, then min-p (measured at the
    temperature), then the core's temperature, top-k and top-p. logits [n_vocab] -> probs [n_vocab]."""
    z = repetition_penalty(logits, history, settings.repetition_penalty)
    core = SamplingSettings(settings.temperature, settings.top_k, settings.top_p)
    if settings.min_p > 0 and settings.temperature > 0:
        at_t = ops.softmax(z / settings.temperature)
        z = np.where(min_p_keep(at_t, settings.min_p), z, -np.inf)
    return sampling_distribution(z, core)


def entropy_bits(probs: np.ndarray) -> float:
    """How many bits of choice a distribution leaves: 0 for one certain token, log2(n) for n equal ones."""
    p = np.asarray(probs, np.float64)
    p = p[p > 0]
    return max(0.0, float(-(p * np.log2(p)).sum()))  # max: a single certain token gives -0.0


# ------------------------------------------------------------------------------------------------
# Prefix caching
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixReuse:
    """The second request's logits from a reused prefix cache and from a full recompute."""

    n_prefix: int
    n_suffix_a: int
    n_suffix_b: int
    full_seconds: float  # prefix + b from scratch
    reuse_seconds: float  # only b, after the kept prefix
    max_abs_diff: float
    reuse_logits: np.ndarray  # [n_suffix_b, n_vocab]
    full_logits: np.ndarray  # [n_suffix_b, n_vocab]
    prefix_bytes: int


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two prompts share from the start (what a prefix cache can reuse)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def reuse_prefix(model, cache: KVCache, n_prefix: int, suffix: Sequence[int]) -> tuple[KVCache, np.ndarray]:
    """A copy of `cache` cut to its first `n_prefix` positions, then only `suffix` run after it."""
    reused = copy.deepcopy(cache)  # the first request's cache stays usable by others
    reused.truncate(n_prefix)
    logits, _ = model.forward(list(suffix), cache=reused)
    return reused, logits


def compare_prefix_reuse(model, prefix: Sequence[int], suffix_a: Sequence[int], suffix_b: Sequence[int],
                         repeats: int = 2) -> PrefixReuse:
    """Serve prefix+a, then prefix+b twice: reusing a's cache of the prefix, and from scratch."""
    prefix, a, b = list(prefix), list(suffix_a), list(suffix_b)
    cache_a = model.new_cache()
    model.forward(prefix + a, cache=cache_a, last_only=True)
    full_t, reuse_t = [], []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        full, _ = model.forward(prefix + b)
        full_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reused, rows = reuse_prefix(model, cache_a, len(prefix), b)
        reuse_t.append(time.perf_counter() - t0)
    full_rows = full[len(prefix):]
    return PrefixReuse(len(prefix), len(a), len(b), float(min(full_t)), float(min(reuse_t)),
                       float(np.max(np.abs(full_rows - rows))), rows, full_rows,
                       cache_a.bytes_per_token * len(prefix))


# ------------------------------------------------------------------------------------------------
# Batching: a simulation driven by measured step costs
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    prompt_len: int
    output_len: int


def request_mix(n: int, seed: int = 0, prompt: tuple[int, int] = (8, 64), output: tuple[int, int] = (4, 96)) -> tuple[Request, ...]:
    """A seeded mix of requests: short and long prompts, short and long answers."""
    rng = np.random.default_rng(seed)
    out_lens = np.exp(rng.uniform(np.log(output[0]), np.log(output[1]), n))  # many short answers, a few long
    return tuple(Request(int(rng.integers(prompt[0], prompt[1] + 1)), max(1, int(o))) for o in out_lens)


@dataclass(frozen=True)
class PassCost:
    """Measured seconds of one forward pass over `rows` token rows, interpolated between measurements."""

    rows: tuple[int, ...]
    seconds: tuple[float, ...]

    def __call__(self, n_rows: int) -> float:
        r, s = np.asarray(self.rows, float), np.asarray(self.seconds, float)
        if n_rows <= r[-1] or len(r) < 2:
            return float(np.interp(n_rows, r, s))
        slope = (s[-1] - s[-2]) / (r[-1] - r[-2])
        return float(s[-1] + max(slope, 0.0) * (n_rows - r[-1]))


def measure_pass_cost(model, rows: Sequence[int] = (1, 2, 4, 8, 16, 32), progress: Progress = _no_progress,
                      cancelled: Cancelled = _never, repeats: int = 2) -> PassCost:
    """Time the model on 1, 2, 4... rows in one pass: what one batched step of that many tokens costs
    (the weights are read once whatever the number of rows, which is why batching pays)."""
    rng = np.random.default_rng(0)
    measured_rows, seconds = [], []
    model.forward([1], last_only=True)  # warm up
    for i, n in enumerate(rows):
        if cancelled():
            break
        n = min(n, model.config.n_ctx)
        progress(i / len(rows), f"timing one pass over {n} rows")
        ids = rng.integers(0, model.config.vocab_size, n).tolist()
        best = float("inf")
        for _ in range(max(1, repeats)):  # the best of a few: other work on the machine only adds time
            t0 = time.perf_counter()
            model.forward(ids, last_only=True)
            best = min(best, time.perf_counter() - t0)
        measured_rows.append(n)
        seconds.append(best)
    if not measured_rows:
        measured_rows, seconds = [1], [0.0]
    return PassCost(tuple(measured_rows), tuple(seconds))


@dataclass(frozen=True)
class BatchStep:
    start: float
    seconds: float
    slots: tuple[int, ...]  # request index in each slot, -1 idle or padding
    rows: int  # token rows computed (prefill rows + one per decoding slot)


@dataclass(frozen=True)
class BatchSim:
    policy: str
    batch_size: int
    steps: tuple[BatchStep, ...]
    finish: tuple[float, ...]  # per request
    first_token: tuple[float, ...]
    n_output: int

    @property
    def total_seconds(self) -> float:
        return self.steps[-1].start + self.steps[-1].seconds if self.steps else 0.0

    @property
    def utilisation(self) -> float:
        """Share of slot-steps that produced a token of a live request (the rest is idle or padding)."""
        busy = sum(sum(1 for s in st.slots if s >= 0) for st in self.steps)
        return busy / max(1, len(self.steps) * self.batch_size)

    @property
    def throughput(self) -> float:
        return self.n_output / self.total_seconds if self.total_seconds else 0.0

    @property
    def mean_latency(self) -> float:
        return float(np.mean(self.finish)) if self.finish else 0.0


def simulate_static(requests: Sequence[Request], batch_size: int, cost: Callable[[int], float]) -> BatchSim:
    """Static batching: take `batch_size` requests, prefill them, decode until the longest is done
    (finished slots are padding that still costs a row), only then start the next batch."""
    steps: list[BatchStep] = []
    finish = [0.0] * len(requests)
    first = [0.0] * len(requests)
    t = 0.0
    for g in range(0, len(requests), batch_size):
        group = list(range(g, min(g + batch_size, len(requests))))
        slots = tuple(group + [-1] * (batch_size - len(group)))
        longest_prompt = max(requests[i].prompt_len for i in group)
        rows = longest_prompt * batch_size  # prompts padded to the longest
        steps.append(BatchStep(t, cost(rows), slots, rows))
        t += steps[-1].seconds
        for i in group:
            first[i] = t  # the prefill gives each request its first token
        for step in range(1, max(requests[i].output_len for i in group)):
            live = tuple(i if i >= 0 and step < requests[i].output_len else -1 for i in slots)
            steps.append(BatchStep(t, cost(batch_size), live, batch_size))  # padding rows cost too
            t += steps[-1].seconds
            for i in group:
                if requests[i].output_len == step + 1:
                    finish[i] = t
        for i in group:
            if requests[i].output_len == 1:
                finish[i] = first[i]
    return BatchSim("static", batch_size, tuple(steps), tuple(finish), tuple(first), sum(r.output_len for r in requests))


def simulate_continuous(requests: Sequence[Request], batch_size: int, cost: Callable[[int], float]) -> BatchSim:
    """Continuous (in-flight) batching: every step, a finished request leaves its slot and a waiting
    one takes it at once, its prefill rows joining that step's decode rows."""
    steps: list[BatchStep] = []
    finish = [0.0] * len(requests)
    first = [0.0] * len(requests)
    remaining = [r.output_len for r in requests]
    slots = [-1] * batch_size
    waiting = list(range(len(requests)))
    t = 0.0
    while waiting or any(s >= 0 for s in slots):
        rows = 0
        for j in range(batch_size):
            if slots[j] < 0 and waiting:
                slots[j] = waiting.pop(0)
                rows += requests[slots[j]].prompt_len  # its prefill, in this step
            elif slots[j] >= 0:
                rows += 1  # one decode row
        seconds = cost(rows)
        steps.append(BatchStep(t, seconds, tuple(slots), rows))
        t += seconds
        for j in range(batch_size):
            i = slots[j]
            if i < 0:
                continue
            if remaining[i] == requests[i].output_len:
                first[i] = t
            remaining[i] -= 1
            if remaining[i] == 0:
                finish[i] = t
                slots[j] = -1
    return BatchSim("continuous", batch_size, tuple(steps), tuple(finish), tuple(first), sum(r.output_len for r in requests))


def fastest(costs: Sequence[PassCost]) -> PassCost:
    """Row by row, the fastest of several timing rounds over the same rows (rounds taken one after
    another spread a burst of other work on the machine over different row counts)."""
    seconds = np.min(np.array([c.seconds for c in costs], float), axis=0)
    return PassCost(costs[0].rows, tuple(float(x) for x in seconds))


def monotone_cost(cost: PassCost) -> PassCost:
    """The measured costs made non-decreasing in the rows (a pass over more rows cannot cost less:
    a dip is timing noise from other work on the machine), taking the smaller neighbour."""
    seconds = np.minimum.accumulate(np.asarray(cost.seconds, float)[::-1])[::-1]
    return PassCost(cost.rows, tuple(float(s) for s in seconds))


def finish_percentile(sim: BatchSim, q: float) -> float:
    """The q-th percentile (0..100) of the requests' times to finish: p90 is the slow tail."""
    return float(np.percentile(sim.finish, q)) if sim.finish else 0.0


def slot_timeline(sim: BatchSim, n_columns: int, t_end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Who occupies each batch slot over time, sampled at `n_columns` evenly spaced instants up to
    t_end: occupant [batch_size, n_columns] (request index, -1 idle or padding, -2 after the end)
    and prefill [batch_size, n_columns] (True where that request's first step, its prefill, runs)."""
    t_end = sim.total_seconds if t_end is None else t_end
    occupant = np.full((sim.batch_size, n_columns), -2, int)
    prefill = np.zeros((sim.batch_size, n_columns), bool)
    if not sim.steps or n_columns <= 0 or t_end <= 0:
        return occupant, prefill
    starts = np.array([s.start for s in sim.steps])
    seen: set[int] = set()
    first_step = []  # per step: the requests that appear in it for the first time
    for st in sim.steps:
        new = {i for i in st.slots if i >= 0 and i not in seen}
        seen |= new
        first_step.append(new)
    for c in range(n_columns):
        t = (c + 0.5) * t_end / n_columns  # the middle of the column
        if t >= sim.total_seconds:
            continue
        k = int(np.searchsorted(starts, t, side="right")) - 1
        for j, i in enumerate(sim.steps[k].slots):
            occupant[j, c] = i
            prefill[j, c] = i in first_step[k]
    return occupant, prefill


# ------------------------------------------------------------------------------------------------
# The roofline
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roofline:
    bandwidth: float  # bytes per second, measured
    peak_flops: float  # FLOP per second of a large float32 matrix product, measured

    @property
    def ridge(self) -> float:
        """Intensity (FLOP/byte) where the memory roof meets the compute roof."""
        return self.peak_flops / self.bandwidth

    def attainable(self, intensity: float) -> float:
        return min(self.peak_flops, self.bandwidth * intensity)


def measure_peak_flops(n: int = 768, repeats: int = 3) -> float:
    """FLOP/s of an n x n float32 matrix product, the best this CPU's BLAS does on data in cache."""
    a = np.ones((n, n), np.float32)
    b = np.ones((n, n), np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


def measure_bandwidth(n_bytes: int = 128 * 2**20, repeats: int = 4) -> float:
    """Bytes per second streamed by a matrix-vector product (bench's measurement when present)."""
    try:
        from fwdtui.bench import measure_bandwidth as bench_bandwidth
        return float(bench_bandwidth(n_bytes, repeats))
    except ImportError:  # pragma: no cover
        w = np.full((n_bytes // (4 * 4096), 4096), 0.5, np.float32)
        x = np.ones(4096, np.float32)
        w @ x
        t0 = time.perf_counter()
        for _ in range(repeats):
            w @ x
        return w.nbytes * repeats / (time.perf_counter() - t0)


def measure_roofline(bandwidth_bytes: int = 128 * 2**20) -> Roofline:
    """This machine's two roofs, measured in about a second."""
    return Roofline(measure_bandwidth(bandwidth_bytes), measure_peak_flops())
