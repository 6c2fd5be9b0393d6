"""The experiments behind the attention chapters: head roles, ablation, GQA pooling, positions, MLA,
linear attention and sparse masks. Numpy only.

Everything that runs the loaded model goes through `Model.trace` / `Model.forward` / `Model.variant`;
mechanisms the model lacks (MLA, linear attention) are computed here at small scale on seeded
random matrices, and checked against their plain forms.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from fwdtui.core.ops import attention, causal_mask, rope, softmax
from fwdtui.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def entropy_bits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in bits along `axis`; zero probabilities (masked keys) contribute nothing."""
    p = np.asarray(p, dtype=np.float64)
    logp = np.log2(np.where(p > 0, p, 1.0))  # log 1 = 0 where p = 0, so 0 * log 0 counts as 0
    return -np.sum(p * logp, axis=axis)


def kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in bits between two distributions over the vocabulary: how surprised q is by p."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    keep = p > 0
    return float(np.sum(p[keep] * (np.log2(p[keep]) - np.log2(np.maximum(q[keep], 1e-300)))))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (1 = same direction)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """[n, d] -> [n, n] cosine similarity of every pair of rows."""
    x = np.asarray(x, dtype=np.float64)
    unit = x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)
    return unit @ unit.T


def next_token_probs(model, ids: Sequence[int]) -> np.ndarray:
    """[n_vocab] probabilities of the token after `ids` (only the last row is unembedded)."""
    logits, _ = model.forward(list(ids), last_only=True)
    return softmax(logits[-1].astype(np.float64))


# --------------------------------------------------------------------------------------------
# 1. Why attention: the same word after two different contexts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextPair:
    """The last token of two texts, followed through the layers: how far apart attention pushes them."""

    text_a: str
    text_b: str
    token_a: str
    token_b: str
    same_token: bool  # both texts end with the same token id: identical before any attention
    embed_cos: float  # cosine of the two input embeddings (1.0 when the token is the same)
    after_attn: np.ndarray  # [n_layer] cosine of resid_mid (after each layer's attention)
    after_block: np.ndarray  # [n_layer] cosine of resid_post (after each whole block)


def context_pair(model, text_a: str, text_b: str) -> ContextPair:
    """Trace both texts and compare the vectors of their last token, layer by layer."""
    ids_a, ids_b = model.tokenizer.encode(text_a), model.tokenizer.encode(text_b)
    ta, tb = model.trace(ids_a), model.trace(ids_b)
    n_layer = model.config.n_layer
    after_attn = np.array([cosine(ta[f"blocks.{i}.resid_mid"][-1], tb[f"blocks.{i}.resid_mid"][-1]) for i in range(n_layer)])
    after_block = np.array([cosine(ta[f"blocks.{i}.resid_post"][-1], tb[f"blocks.{i}.resid_post"][-1]) for i in range(n_layer)])
    dec = model.tokenizer.decode
    return ContextPair(
        text_a, text_b, dec([ids_a[-1]]), dec([ids_b[-1]]), ids_a[-1] == ids_b[-1],
        cosine(ta["blocks.0.resid_pre"][-1], tb["blocks.0.resid_pre"][-1]), after_attn, after_block,
    )


# --------------------------------------------------------------------------------------------
# 2. One row of scaled dot-product attention, step by step
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionRow:
    """Every step of attention for one query token of one head."""

    dots: np.ndarray  # [n_k] q . k_j
    scaled: np.ndarray  # [n_k] dots / sqrt(head_dim) (or the dots again without the scale)
    masked: np.ndarray  # [n_k] -inf where the key is hidden
    weights: np.ndarray  # [n_k] softmax
    z: np.ndarray  # [head_dim] the weighted sum of the value vectors
    entropy: float  # bits: 0 = all weight on one key, log2(n_visible) = spread evenly
    scale: float  # the factor the dots were multiplied by


def attention_row(q: np.ndarray, k: np.ndarray, v: np.ndarray, query: int, use_scale: bool = True,
                  causal: bool = True) -> AttentionRow:
    """q [n_q, head_dim] (one head), k and v [n_k, head_dim] (its kv head): the steps for row `query`."""
    head_dim = q.shape[-1]
    dots = k @ q[query]  # [n_k]
    scale = float(1.0 / np.sqrt(head_dim)) if use_scale else 1.0
    scaled = dots * np.float32(scale)
    n_k = k.shape[0]
    hidden = causal_mask(np.array([query]), np.arange(n_k))[0] if causal else np.zeros(n_k, dtype=bool)
    masked = np.where(hidden, np.float32(-np.inf), scaled)
    weights = softmax(masked)
    z = weights @ v  # [head_dim]
    return AttentionRow(dots, scaled, masked, weights, z, float(entropy_bits(weights)), scale)


def attention_inputs(trace, config, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The q, k, v that entered ops.attention in `layer` (after rotary for the Llama family)."""
    attn = f"blocks.{layer}.attn."
    if config.family == "llama":
        return trace[attn + "q_rot"], trace[attn + "k_rot"], trace[attn + "v"]
    return trace[attn + "q"], trace[attn + "k"], trace[attn + "v"]


# --------------------------------------------------------------------------------------------
# 3. Multi-head: what each head does, measured; and ablation
# --------------------------------------------------------------------------------------------


def repeated_random_ids(vocab_size: int, half: int, seed: int = 0, bos: int | None = None) -> np.ndarray:
    """[bos] + r + r with r `half` distinct random ids from the middle of the vocabulary.

    On the second copy a head that attends to "the token after the last occurrence of me" (an
    induction head) has an unambiguous target, and no word meaning can help it.
    """
    rng = np.random.default_rng(seed)
    lo, hi = vocab_size // 8, vocab_size - vocab_size // 8  # skip the special and rarest ids at the ends
    block = rng.choice(np.arange(lo, hi), size=min(half, hi - lo), replace=False)
    head = [] if bos is None else [bos]
    return np.array(head + block.tolist() + block.tolist(), dtype=np.int64)


def induction_score(pattern: np.ndarray, half: int, start: int) -> np.ndarray:
    """[n_head, n, n] -> [n_head]: mean weight a second-copy token gives the token after its first copy."""
    rows = np.arange(start + half, start + 2 * half)
    return pattern[:, rows, rows - half + 1].mean(axis=-1)


def previous_token_score(pattern: np.ndarray, start: int = 0) -> np.ndarray:
    """[n_head, n, n] -> [n_head]: mean weight each token gives the token just before it."""
    rows = np.arange(start + 1, pattern.shape[1])
    return pattern[:, rows, rows - 1].mean(axis=-1)


def sink_score(pattern: np.ndarray) -> np.ndarray:
    """[n_head, n, n] -> [n_head]: mean weight tokens (other than the first) give the first position."""
    return pattern[:, 1:, 0].mean(axis=-1)


def mean_entropy(pattern: np.ndarray) -> np.ndarray:
    """[n_head, n, n] -> [n_head]: average entropy (bits) of the rows that can see more than one key."""
    return entropy_bits(pattern[:, 1:, :]).mean(axis=-1) if pattern.shape[1] > 1 else np.zeros(pattern.shape[0])


@dataclass(frozen=True)
class HeadScores:
    """Role scores of every head, measured on a repeated random sequence."""

    ids: np.ndarray  # [n_seq] the sequence used
    half: int  # length of the random block
    start: int  # 1 when a BOS token leads the sequence
    induction: np.ndarray  # [n_layer, n_head]
    previous: np.ndarray  # [n_layer, n_head]
    sink: np.ndarray  # [n_layer, n_head]

    def best(self, kind: str) -> tuple[int, int, float]:
        """(layer, head, score) of the strongest head of a kind ("induction", "previous", "sink")."""
        table = getattr(self, kind)
        layer, head = np.unravel_index(int(np.argmax(table)), table.shape)
        return int(layer), int(head), float(table[layer, head])


def head_scores(model, half: int = 24, seed: int = 0) -> HeadScores:
    """Run the model once on [bos] + r + r and score every head of every layer."""
    cfg = model.config
    bos = cfg.bos_token_id if cfg.bos_token_id is not None else None
    half = max(2, min(half, (cfg.n_ctx - 1) // 2))
    ids = repeated_random_ids(cfg.vocab_size, half, seed, bos)
    start = 0 if bos is None else 1
    trace = model.trace(ids.tolist())
    patterns = [trace[f"blocks.{i}.attn.pattern"] for i in range(cfg.n_layer)]
    return HeadScores(
        ids, half, start,
        np.stack([induction_score(p, half, start) for p in patterns]),
        np.stack([previous_token_score(p, start) for p in patterns]),
        np.stack([sink_score(p) for p in patterns]),
    )


ROLE_THRESHOLD = 0.4  # a head that puts 40% of its weight on one role's target, on average, has that role


def head_role(induction: float, previous: float, sink: float, threshold: float = ROLE_THRESHOLD) -> str:
    """A short name for what a head mostly does, from its three scores."""
    best = max(("induction", induction), ("previous token", previous), ("first token (sink)", sink), key=lambda t: t[1])
    return best[0] if best[1] >= threshold else "mixed"


def head_ablation_weights(model, layer: int, head: int) -> dict[str, np.ndarray]:
    """The output-projection tensor with head `head`'s input slice zeroed: the head's z never reaches the stream.

    Zeroing these weights is exactly zeroing that head's z, since out = concat(z_heads) @ W_o.
    """
    cfg = model.config
    hd = cfg.head_dim
    if cfg.family == "gpt2":
        name = f"h.{layer}.attn.c_proj.weight"  # Conv1D [n_in, n_out]: the head's rows
        w = model.weights[name].copy()
        w[head * hd:(head + 1) * hd, :] = 0.0
    else:
        name = f"layers.{layer}.self_attn.o_proj.weight"  # nn.Linear [n_out, n_in]: the head's columns
        w = model.weights[name].copy()
        w[:, head * hd:(head + 1) * hd] = 0.0
    return {name: w}


def ablate_head(model, layer: int, head: int):
    """A variant of the model with one head switched off (every other tensor shared)."""
    return model.variant(replace_weights=head_ablation_weights(model, layer, head), name=f"{model.info.name} -L{layer}H{head}")


@dataclass(frozen=True)
class AblationResult:
    layer: int
    head: int
    base: np.ndarray  # [n_vocab] next-token probabilities of the full model
    ablated: np.ndarray  # [n_vocab] without the head
    kl: float  # bits


def ablation_effect(model, ids: Sequence[int], layer: int, head: int) -> AblationResult:
    """How the next-token distribution changes when one head is zeroed."""
    base = next_token_probs(model, ids)
    ablated = next_token_probs(ablate_head(model, layer, head), ids)
    return AblationResult(layer, head, base, ablated, kl_bits(base, ablated))


# --------------------------------------------------------------------------------------------
# 4. Positional encoding
# --------------------------------------------------------------------------------------------


def sinusoidal_table(n_pos: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """[n_pos, d_model]: PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d))."""
    positions = np.arange(n_pos, dtype=np.float64)[:, None]  # [n_pos, 1]
    rates = base ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # [d_model/2], fast to slow
    table = np.zeros((n_pos, d_model))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: d_model // 2])
    return table


def rotary_score(q: np.ndarray, k: np.ndarray, q_pos: int, k_pos: int, inv_freq: np.ndarray) -> float:
    """The (unscaled) score of one q and one k vector [head_dim] after rotating them to their positions."""
    q_rot = rope(q[None, None, :].astype(np.float32), np.array([q_pos]), inv_freq)[0, 0]
    k_rot = rope(k[None, None, :].astype(np.float32), np.array([k_pos]), inv_freq)[0, 0]
    return float(q_rot.astype(np.float64) @ k_rot.astype(np.float64))


def rotary_offset_table(q: np.ndarray, k: np.ndarray, inv_freq: np.ndarray, offsets: Sequence[int],
                        starts: Sequence[int]) -> np.ndarray:
    """[len(offsets), len(starts)]: score of q at start+offset with k at start. Rows are constant:
    with rotary positions the score sees only the offset, never where the pair sits."""
    return np.array([[rotary_score(q, k, s + d, s, inv_freq) for s in starts] for d in offsets])


def rope_angles(positions: Sequence[int], inv_freq: np.ndarray) -> np.ndarray:
    """[n_pos, head_dim/2] rotation angle (radians, wrapped to [0, 2pi)) of each pair at each position."""
    return np.mod(np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :], 2 * np.pi)


# --------------------------------------------------------------------------------------------
# 5. Grouped-query attention
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedAttention:
    """The attention shape of a published model, enough to size its KV cache."""

    name: str
    n_layer: int
    n_head: int
    n_kv_head: int  # for MLA: 0 (keys and values come from the shared latent)
    head_dim: int
    kv_lora_rank: int = 0  # MLA: width of the cached latent
    rope_dim: int = 0  # MLA: width of the decoupled rotary key, cached too

    @property
    def kind(self) -> str:
        if self.kv_lora_rank:
            return "MLA"
        if self.n_kv_head == self.n_head:
            return "MHA"
        return "MQA" if self.n_kv_head == 1 else "GQA"

    @property
    def values_per_token(self) -> int:
        """Numbers the KV cache keeps per token, over all layers."""
        if self.kv_lora_rank:
            return self.n_layer * (self.kv_lora_rank + self.rope_dim)
        return 2 * self.n_layer * self.n_kv_head * self.head_dim  # a key and a value per kv head

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Bytes per token of context at 16-bit precision (the usual serving dtype) unless told."""
        return self.values_per_token * bytes_per_value


# From the models' published config.json files (num_hidden_layers, num_attention_heads,
# num_key_value_heads, head_dim; kv_lora_rank and qk_rope_head_dim for DeepSeek).
PUBLISHED_ATTENTION: tuple[PublishedAttention, ...] = (
    PublishedAttention("GPT-2 (124M)", 12, 12, 12, 64),
    PublishedAttention("SmolLM2-135M", 30, 9, 3, 64),
    PublishedAttention("Qwen2.5-0.5B", 24, 14, 2, 64),
    PublishedAttention("Llama 2 7B", 32, 32, 32, 128),
    PublishedAttention("Llama 3 8B", 32, 32, 8, 128),
    PublishedAttention("Mistral 7B", 32, 32, 8, 128),
    PublishedAttention("Falcon 7B", 32, 71, 1, 64),
    PublishedAttention("Llama 3 70B", 80, 64, 8, 128),
    PublishedAttention("DeepSeek-V2", 60, 128, 0, 128, kv_lora_rank=512, rope_dim=64),
    PublishedAttention("DeepSeek-V3", 61, 128, 0, 128, kv_lora_rank=512, rope_dim=64),
)


def attention_of(config, name: str) -> PublishedAttention:
    """The loaded model's own attention shape, to sit in the same table as the published ones."""
    return PublishedAttention(name, config.n_layer, config.n_head, config.n_kv_head, config.head_dim)


def kv_head_options(config) -> list[int]:
    """The numbers of key/value heads the loaded model can be pooled down to (divisors of its own)."""
    n = config.n_kv_head
    return [d for d in range(n, 0, -1) if n % d == 0]


def pool_kv_weights(model, n_kv_head: int) -> tuple[dict[str, np.ndarray], object]:
    """Average the key and value projections of each group of kv heads: (replaced tensors, new config).

    Llama family: the k/v projections shrink to `n_kv_head` heads and the config says so (real GQA).
    GPT-2 (whose forward pass splits k and v into n_head heads): each head's k/v weights are replaced
    by its group's mean, repeated across the group, which computes exactly the same thing.
    """
    cfg = model.config
    if n_kv_head < 1 or cfg.n_kv_head % n_kv_head:
        raise ConfigError(
            f"{cfg.n_kv_head} key/value heads cannot be pooled into {n_kv_head} equal groups.",
            f"Pick one of {kv_head_options(cfg)}.",
        )
    hd = cfg.head_dim
    group = cfg.n_kv_head // n_kv_head
    replaced: dict[str, np.ndarray] = {}
    if cfg.family == "gpt2":
        n_embd = cfg.n_embd
        for suffix in ("weight", "bias"):
            name = f"h.{{}}.attn.c_attn.{suffix}"
            for layer in range(cfg.n_layer):
                w = model.weights[name.format(layer)].copy()  # [n_embd, 3*n_embd] or [3*n_embd]
                for part in (1, 2):  # k, v
                    cols = w[..., part * n_embd:(part + 1) * n_embd]
                    heads = cols.reshape(cols.shape[:-1] + (n_kv_head, group, hd))
                    pooled = np.repeat(heads.mean(axis=-2, keepdims=True), group, axis=-2)
                    w[..., part * n_embd:(part + 1) * n_embd] = pooled.reshape(cols.shape)
                replaced[name.format(layer)] = w
        return replaced, cfg
    for layer in range(cfg.n_layer):
        for proj in ("k_proj", "v_proj"):
            for suffix in ("weight", "bias"):
                name = f"layers.{layer}.self_attn.{proj}.{suffix}"
                if name not in model.weights:
                    continue
                w = model.weights[name]  # [n_kv*hd, n_embd] or [n_kv*hd]
                heads = w.reshape((n_kv_head, group, hd) + w.shape[1:])
                replaced[name] = heads.mean(axis=1).reshape((n_kv_head * hd,) + w.shape[1:]).astype(np.float32)
    return replaced, dataclasses.replace(cfg, n_kv_head=n_kv_head)


def pooled_model(model, n_kv_head: int):
    """A variant of the model with its key/value heads averaged down to `n_kv_head`."""
    replaced, cfg = pool_kv_weights(model, n_kv_head)
    return model.variant(config=cfg, replace_weights=replaced, name=f"{model.info.name} kv{n_kv_head}")


@dataclass(frozen=True)
class PoolingResult:
    n_kv_head: int
    kl: float  # bits, next-token distribution of the pooled model against the original
    top1_same: bool
    top_before: int
    top_after: int
    p_top_after: float  # probability the pooled model gives the original's top token


def pooling_damage(model, ids: Sequence[int], n_kv_head: int, base: np.ndarray | None = None) -> PoolingResult:
    """Pool the kv heads and measure how the next-token distribution moves."""
    base = next_token_probs(model, ids) if base is None else base
    pooled = next_token_probs(pooled_model(model, n_kv_head), ids)
    top = int(np.argmax(base))
    return PoolingResult(n_kv_head, kl_bits(base, pooled), top == int(np.argmax(pooled)), top, int(np.argmax(pooled)),
                         float(pooled[top]))


# --------------------------------------------------------------------------------------------
# 6. Multi-head latent attention (small scale)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLAWeights:
    """A small multi-head latent attention layer (DeepSeek-V2's shape), seeded random.

    Keys and values are both rebuilt from one shared latent c = x @ w_dkv; only c (and a small
    shared rotary key) are cached per token.
    """

    w_dkv: np.ndarray  # [d_model, d_latent]   down to the latent that is cached
    w_uk: np.ndarray  # [n_head, d_latent, d_nope]  latent -> content key of each head
    w_uv: np.ndarray  # [n_head, d_latent, d_v]     latent -> value of each head
    w_kr: np.ndarray  # [d_model, d_rope]   the decoupled rotary key, one for all heads (cached)
    w_q: np.ndarray  # [n_head, d_model, d_nope]   content query
    w_qr: np.ndarray  # [n_head, d_model, d_rope]  rotary query
    w_o: np.ndarray  # [n_head, d_v, d_model]     output projection
    inv_freq: np.ndarray  # [d_rope/2]

    @property
    def n_head(self) -> int:
        return self.w_q.shape[0]

    @property
    def d_latent(self) -> int:
        return self.w_dkv.shape[1]

    @property
    def d_rope(self) -> int:
        return self.w_kr.shape[1]

    @property
    def d_qk(self) -> int:
        return self.w_q.shape[2] + self.w_qr.shape[2]


def random_mla(seed: int = 0, d_model: int = 64, n_head: int = 4, d_latent: int = 16, d_nope: int = 16,
               d_rope: int = 8, rope_theta: float = 10000.0) -> MLAWeights:
    """Seeded random MLA weights; d_v = d_nope + d_rope so ops.attention can run the plain form."""
    from fwdtui.core.ops import rope_frequencies

    rng = np.random.default_rng(seed)
    d_v = d_nope + d_rope

    def mat(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-2])).astype(np.float32)

    return MLAWeights(mat(d_model, d_latent), mat(n_head, d_latent, d_nope), mat(n_head, d_latent, d_v),
                      mat(d_model, d_rope), mat(n_head, d_model, d_nope), mat(n_head, d_model, d_rope),
                      mat(n_head, d_v, d_model), rope_frequencies(d_rope, rope_theta))


@dataclass(frozen=True)
class MLAOutput:
    out: np.ndarray  # [n_seq, d_model]
    pattern: np.ndarray  # [n_head, n_seq, n_seq]
    cached_per_token: int  # numbers kept per token by this form


def mla_plain(x: np.ndarray, w: MLAWeights) -> MLAOutput:
    """MLA computed the obvious way: rebuild every head's keys and values from the latent, then attend."""
    n_seq = x.shape[0]
    positions = np.arange(n_seq)
    c = x @ w.w_dkv  # [n_seq, d_latent]  <- the cache
    k_rope = rope((x @ w.w_kr)[None], positions, w.inv_freq)  # [1, n_seq, d_rope]  <- cached too
    k_nope = np.einsum("sl,hld->hsd", c, w.w_uk)  # [n_head, n_seq, d_nope]
    v = np.einsum("sl,hlv->hsv", c, w.w_uv)  # [n_head, n_seq, d_v]
    k = np.concatenate([k_nope, np.repeat(k_rope, w.n_head, axis=0)], axis=-1)  # [n_head, n_seq, d_qk]
    q_nope = np.einsum("sm,hmd->hsd", x, w.w_q)
    q_rope = rope(np.einsum("sm,hmr->hsr", x, w.w_qr), positions, w.inv_freq)
    q = np.concatenate([q_nope, q_rope], axis=-1)  # [n_head, n_seq, d_qk]
    z, _, pattern = attention(q, k, v, causal_mask(positions, positions))  # z: [n_head, n_seq, d_v]
    out = np.einsum("hsv,hvm->sm", z, w.w_o)  # [n_seq, d_model]
    return MLAOutput(out, pattern, w.d_latent + w.d_rope)


def mla_absorbed(x: np.ndarray, w: MLAWeights) -> MLAOutput:
    """MLA as served: W_uk folded into the query and W_uv into the output, so keys and values are never
    rebuilt; every head attends straight over the cached latents.

    q_nope . (c W_uk) = (q_nope W_uk^T) . c   and   (sum_j p_j c_j W_uv) W_o = (sum_j p_j c_j)(W_uv W_o).
    """
    n_seq = x.shape[0]
    positions = np.arange(n_seq)
    c = x @ w.w_dkv  # [n_seq, d_latent]
    k_rope = rope((x @ w.w_kr)[None], positions, w.inv_freq)[0]  # [n_seq, d_rope]
    q_nope = np.einsum("sm,hmd->hsd", x, w.w_q)  # [n_head, n_seq, d_nope]
    q_latent = np.einsum("hsd,hld->hsl", q_nope, w.w_uk)  # [n_head, n_seq, d_latent]: the query moved into latent space
    q_rope = rope(np.einsum("sm,hmr->hsr", x, w.w_qr), positions, w.inv_freq)  # [n_head, n_seq, d_rope]
    scores = (q_latent @ c.T + q_rope @ k_rope.T) / np.float32(np.sqrt(w.d_qk))  # [n_head, n_seq, n_seq]
    scores = np.where(causal_mask(positions, positions)[None], np.float32(-np.inf), scores)
    pattern = softmax(scores)
    z_latent = pattern @ c  # [n_head, n_seq, d_latent]: mix latents, not values
    w_vo = np.einsum("hlv,hvm->hlm", w.w_uv, w.w_o)  # [n_head, d_latent, d_model], precomputed once in practice
    out = np.einsum("hsl,hlm->sm", z_latent, w_vo)
    return MLAOutput(out, pattern, w.d_latent + w.d_rope)


def mla_cache_table(w: MLAWeights, n_kv_gqa: int) -> list[tuple[str, int]]:
    """Numbers cached per token per layer for the same head count: MHA, GQA, MQA and MLA."""
    d = w.d_qk
    return [
        (f"MHA ({w.n_head} kv heads)", 2 * w.n_head * d),
        (f"GQA ({n_kv_gqa} kv heads)", 2 * n_kv_gqa * d),
        ("MQA (1 kv head)", 2 * d),
        (f"MLA (latent {w.d_latent} + rope {w.d_rope})", w.d_latent + w.d_rope),
    ]


# --------------------------------------------------------------------------------------------
# 7. Sparse attention
# --------------------------------------------------------------------------------------------


def sliding_window_mask(n: int, window: int, sinks: int = 0) -> np.ndarray:
    """[n, n] True = hidden: each query sees its last `window` keys (plus the first `sinks`)."""
    pos = np.arange(n)
    return causal_mask(pos, pos, window, sinks)


def strided_mask(n: int, stride: int) -> np.ndarray:
    """Sparse Transformer's strided pattern: the last `stride` keys, and every stride-th key before them."""
    pos = np.arange(n)
    offset = pos[:, None] - pos[None, :]  # [n, n] how far back the key is
    visible = (offset >= 0) & ((offset < stride) | (offset % stride == 0))
    return ~visible


def dilated_mask(n: int, window: int, dilation: int) -> np.ndarray:
    """`window` keys spaced `dilation` apart, counting back from the query itself."""
    pos = np.arange(n)
    offset = pos[:, None] - pos[None, :]
    visible = (offset >= 0) & (offset % dilation == 0) & (offset < window * dilation)
    return ~visible


def block_sparse_mask(n: int, block: int) -> np.ndarray:
    """Block-sparse (BigBird-like, causal): the query's own block, the block before it, and the first block."""
    pos = np.arange(n)
    qb, kb = pos[:, None] // block, pos[None, :] // block
    visible = (pos[None, :] <= pos[:, None]) & ((kb == qb) | (kb == qb - 1) | (kb == 0))
    return ~visible


def visible_pairs(kind: str, n: int, window: int = 4, sinks: int = 0, stride: int = 4, block: int = 4) -> int:
    """How many (query, key) scores one layer computes for `n` tokens, counted row by row without an
    n x n mask (so the cost curves reach long contexts)."""
    i = np.arange(n, dtype=np.int64)  # query positions
    if kind == "full":
        per_row = i + 1
    elif kind == "window":
        per_row = np.minimum(i + 1, window) + np.minimum(sinks, np.maximum(0, i + 1 - window))
    elif kind == "strided":
        per_row = np.minimum(i + 1, stride) + np.where(i >= stride, i // stride, 0)
    elif kind == "block":
        qb = i // block
        per_row = (i % block + 1) + np.where(qb >= 1, block, 0) + np.where(qb >= 2, block, 0)
    else:
        raise ValueError(f"unknown sparse pattern {kind!r}")
    return int(per_row.sum())


@dataclass(frozen=True)
class WindowEffect:
    window: int | None  # None = full attention
    kl: float  # bits, against full attention
    top1_same: bool
    top: int  # the top next token with this window
    p_full_top: float  # probability given to full attention's top token


def window_sweep(model, ids: Sequence[int], windows: Sequence[int], sinks: int = 0,
                 cancelled: Callable[[], bool] = lambda: False,
                 progress: Callable[[float, str], None] | None = None) -> list[WindowEffect]:
    """Run the model with shrinking sliding windows (through its own causal mask) and compare the
    next-token distribution with full attention."""
    base = next_token_probs(model, ids)
    top = int(np.argmax(base))
    out = [WindowEffect(None, 0.0, True, top, float(base[top]))]
    for i, w in enumerate(windows):
        if cancelled():
            break
        if progress is not None:
            progress((i + 1) / (len(windows) + 1), f"running the model with a window of {w}")
        cfg = dataclasses.replace(model.config, sliding_window=int(w), attention_sinks=int(sinks))
        probs = next_token_probs(model.variant(config=cfg), ids)
        out.append(WindowEffect(int(w), kl_bits(base, probs), int(np.argmax(probs)) == top, int(np.argmax(probs)),
                                float(probs[top])))
    return out


# --------------------------------------------------------------------------------------------
# 8. Hybrids: linear attention, recurrent and parallel
# --------------------------------------------------------------------------------------------


def feature_map(x: np.ndarray) -> np.ndarray:
    """elu(x) + 1: a positive feature map, so the "attention weights" stay positive (Katharopoulos et al.)."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def linear_attention_parallel(q: np.ndarray, k: np.ndarray, v: np.ndarray, decay: float = 1.0) -> np.ndarray:
    """q, k [n, d_k], v [n, d_v] -> [n, d_v], all at once like softmax attention but with phi(q).phi(k)
    in place of exp(q.k), and older keys weighted by decay^(i-j) (1.0 = no forgetting)."""
    n = q.shape[0]
    fq, fk = feature_map(q), feature_map(k)
    offset = np.arange(n)[:, None] - np.arange(n)[None, :]  # [n, n]
    weights = np.where(offset >= 0, decay ** np.maximum(offset, 0), 0.0) * (fq @ fk.T)  # [n, n], causal
    return (weights @ v) / weights.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class RecurrentRun:
    out: np.ndarray  # [n, d_v]
    state_numbers: int  # size of the state carried from token to token (constant)
    kv_cache_numbers: np.ndarray  # [n] what softmax attention would have cached after each token


def linear_attention_recurrent(q: np.ndarray, k: np.ndarray, v: np.ndarray, decay: float = 1.0) -> RecurrentRun:
    """The same layer one token at a time: a fixed-size state S = sum_j phi(k_j) v_j^T (and its
    normaliser) is all that is kept, however long the sequence grows."""
    n, d_k = k.shape
    d_v = v.shape[1]
    state = np.zeros((d_k, d_v))  # [d_k, d_v]
    norm = np.zeros(d_k)  # [d_k]
    out = np.zeros((n, d_v))
    for t in range(n):
        fk, fq = feature_map(k[t]), feature_map(q[t])
        state = decay * state + np.outer(fk, v[t])  # forget a little, then write this token
        norm = decay * norm + fk
        out[t] = (fq @ state) / (fq @ norm)  # read with the query
    return RecurrentRun(out, state.size + norm.size, 2 * d_k * np.arange(1, n + 1))


@dataclass(frozen=True)
class HybridLayout:
    """How a published hybrid interleaves its layers (one repeating unit)."""

    name: str
    unit: str  # letters, one per layer: A full attention, S sliding-window attention, L linear/recurrent
    note: str


PUBLISHED_HYBRIDS: tuple[HybridLayout, ...] = (
    HybridLayout("Jamba (AI21)", "LLLLALLL", "Mamba layers with one attention layer in eight (1:7)"),
    HybridLayout("Griffin / RecurrentGemma", "LLS", "two RG-LRU recurrent blocks, then local attention"),
    HybridLayout("Samba (Microsoft)", "LS", "Mamba and sliding-window attention alternate"),
    HybridLayout("MiniMax-01", "LLLLLLLA", "seven lightning (linear) attention layers, one softmax"),
    HybridLayout("Qwen3-Next", "LLLA", "three Gated DeltaNet layers, one gated full attention"),
    HybridLayout("Gemma 2", "SA", "not linear: local sliding-window and global layers alternate"),
    HybridLayout("Gemma 3", "SSSSSA", "five local layers to one global"),
)
