"""The Model: weights + config + tokenizer behind one small API (logits, trace, generate)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fwdtui.core import gpt2, llama
from fwdtui.core.config import ModelConfig
from fwdtui.core.kv_cache import KVCache
from fwdtui.core.ops import rope_frequencies, softmax
from fwdtui.core.sampling import SamplingSettings, sample
from fwdtui.core.trace import NO_TRACE, Trace
from fwdtui.errors import PromptError


@dataclass
class ModelInfo:
    """Where a model came from, for the status line and `fwdtui models`."""

    name: str
    source: str = ""  # "hub", "pypi-gguf", "local folder", ...
    path: str = ""
    load_seconds: float = 0.0
    dtype: str = "float32"


class Model:
    """A loaded model. Every forward call goes through `forward`, with or without a Trace and a cache."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray], tokenizer: Any = None,
                 info: ModelInfo | None = None) -> None:
        self.config = config
        # Loaders may hand over np.memmap objects; a plain ndarray view of the same memory (no copy) skips
        # the subclass's Python hook that every `w.T` and product would otherwise run, 100+ times a token.
        self.weights = {name: w if type(w) is np.ndarray else np.asarray(w) for name, w in weights.items()}
        self.tokenizer = tokenizer
        self.info = info or ModelInfo(name="model")
        self._inv_freq: np.ndarray | None = None  # [head_dim/2] rotary frequencies; None for GPT-2
        if config.family == "llama":
            self._inv_freq = rope_frequencies(config.head_dim, config.rope_theta, config.rope_scaling)
            if config.rope_freq_factors is not None:  # llama.cpp's rope_freqs.weight: pair i turns 1/factor_i as fast
                self._inv_freq = self._inv_freq / np.asarray(config.rope_freq_factors)

    def variant(self, config: ModelConfig | None = None, replace_weights: dict[str, np.ndarray] | None = None,
                name: str | None = None) -> "Model":
        """A copy with a changed config (e.g. a sliding window) and/or some tensors replaced (e.g. a head
        zeroed); every other tensor is shared, not copied. What the playgrounds run their experiments on."""
        weights = dict(self.weights)
        weights.update(replace_weights or {})
        info = ModelInfo(name=name or self.info.name, source=self.info.source, path=self.info.path,
                         load_seconds=self.info.load_seconds, dtype=self.info.dtype)
        return Model(config or self.config, weights, self.tokenizer, info)

    @property
    def inv_freq(self) -> np.ndarray | None:
        """Rotary frequencies [head_dim/2] of a Llama-family model (None for GPT-2's learned positions)."""
        return self._inv_freq

    @property
    def n_params(self) -> int:
        # Count the real tensors (a tied unembedding is one tensor); skip buffers such as masks.
        return int(sum(w.size for w in self.weights.values()))

    def new_cache(self) -> KVCache:
        cfg = self.config
        return KVCache(cfg.n_layer, cfg.n_kv_head, cfg.head_dim, cfg.n_ctx)

    def _check_ids(self, ids: Sequence[int], start: int) -> np.ndarray:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if arr.size == 0:
            raise PromptError("The prompt has no tokens.", "Type some text first.")
        if arr.min() < 0 or arr.max() >= self.config.vocab_size:
            raise PromptError(
                f"Token id {int(arr.max() if arr.max() >= self.config.vocab_size else arr.min())} is outside "
                f"this model's vocabulary of {self.config.vocab_size}.",
                "Use ids from this model's own tokenizer.",
            )
        if start + arr.size > self.config.n_ctx:
            raise PromptError(
                f"{start + arr.size} tokens do not fit this model's context of {self.config.n_ctx}.",
                "Shorten the prompt (fwdtui keeps the last tokens when it must cut).",
            )
        return arr

    def forward(self, ids: Sequence[int], cache: KVCache | None = None, trace: bool = False,
                last_only: bool = False) -> tuple[np.ndarray, Trace | None]:
        """Run `ids` after what `cache` already holds (prefill when empty, one decode step for one id).

        Returns logits [n_seq, n_vocab] float32 ([1, n_vocab] with last_only) and the Trace when asked.
        """
        start = cache.length if cache is not None else 0
        arr = self._check_ids(ids, start)
        positions = np.arange(start, start + arr.size)
        tr = Trace(arr.tolist(), positions) if trace else NO_TRACE
        if self.config.family == "gpt2":
            logits = gpt2.gpt2_forward(self.weights, self.config, arr, positions, cache, tr, last_only)
        else:
            logits = llama.llama_forward(self.weights, self.config, arr, positions, self._inv_freq, cache, tr, last_only)
        logits = logits.astype(np.float32, copy=False)
        if trace:
            tr.record("logits", logits)
            # Computed when first read: a softmax over the whole vocabulary for every row is a tenth of
            # a 64-token forward pass, and most views read one row of the logits at most.
            tr.record_deferred("probs", lambda: softmax(logits))  # float32: shown to 3-4 digits
            return logits, tr
        return logits, None

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """[n_seq, n_vocab] logits for the whole prompt, no cache, nothing recorded."""
        return self.forward(ids)[0]

    def trace(self, ids: Sequence[int], cache: KVCache | None = None) -> Trace:
        """One forward pass with every intermediate recorded."""
        return self.forward(ids, cache=cache, trace=True)[1]

    def final_norm(self, x: np.ndarray) -> np.ndarray:
        """The model's own final norm (LayerNorm for GPT-2, RMSNorm for Llama) applied to residual vectors."""
        family = gpt2 if self.config.family == "gpt2" else llama
        return family.final_norm(self.weights, x, self.config)

    def unembed(self, x: np.ndarray) -> np.ndarray:
        """Normed vectors [n, n_embd] -> logits [n, n_vocab] through the model's own unembedding."""
        family = gpt2 if self.config.family == "gpt2" else llama
        return family.unembed(self.weights, x)

    def logit_lens(self, trace: Trace, position: int = -1) -> np.ndarray:
        """Logits [n_layer + 1, n_vocab] read off the residual stream at `position` after the embedding
        and after every block, through the final norm and unembedding (the model's own, not a bare
        projection: skipping the final norm is the common logit-lens mistake)."""
        rows = [trace["blocks.0.resid_pre"][position]]
        rows += [trace[f"blocks.{i}.resid_post"][position] for i in range(self.config.n_layer)]
        return self.unembed(self.final_norm(np.stack(rows))).astype(np.float32)  # [n_layer + 1, n_vocab]

    def generate(self, ids: Sequence[int], max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True) -> Iterator[int]:
        """Yield new token ids one by one: prefill the prompt once, then one cached decode step per token.

        Stops after the end-of-sequence token (which is yielded) or when prompt + new tokens fill the context.
        """
        settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p)
        rng = np.random.default_rng(seed)
        cache = self.new_cache()
        logits, _ = self.forward(ids, cache=cache, last_only=True)
        eos = self.config.eos_token_id
        for _ in range(max(0, int(max_new_tokens))):
            if cache.length >= self.config.n_ctx:
                return  # the sequence fills the context: a new token would have no position
            token, _ = sample(logits[-1], settings, rng)
            yield token
            if stop_at_eos and eos is not None and token == eos:
                return
            logits, _ = self.forward([token], cache=cache, last_only=True)
