"""Turning logits into the next token: temperature, top-k, top-p, greedy, with a seedable generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fwdtui.core.ops import softmax


@dataclass(frozen=True)
class SamplingSettings:
    """temperature 0 means greedy; top_k 0 and top_p 1.0 mean no cut."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be 0 or more, not {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be 0 (off) or more, not {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")


def sampling_distribution(logits: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """The probabilities the sampler actually draws from, after temperature, top-k and top-p (in that order).

    logits: [n_vocab] -> probs [n_vocab] float64 summing to 1, zero outside the kept set.
    """
    logits = np.asarray(logits, dtype=np.float64)
    logits = np.where(np.isnan(logits), -np.inf, logits)
    if not np.isfinite(logits).any() and not (logits == np.inf).any():
        return np.full(logits.shape, 1.0 / logits.size)  # nothing to prefer: uniform
    if settings.temperature == 0:
        probs = np.zeros_like(logits)
        probs[int(np.argmax(logits))] = 1.0  # greedy: all mass on the top token (first on ties)
        return probs
    if (logits == np.inf).any():  # an infinite logit takes all the mass (shared among ties)
        probs = (logits == np.inf).astype(np.float64)
        return probs / probs.sum()
    # Shift by the max before dividing: softmax does not change, the top token sits at 0, and a tiny
    # temperature sends the others to -inf instead of overflowing everything (the greedy limit).
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scaled = (logits - np.max(logits)) / settings.temperature  # <1 sharpens, >1 flattens
    scaled = np.where(np.isnan(scaled), -np.inf, scaled)
    keep = np.ones(logits.shape, dtype=bool)
    if settings.top_k and settings.top_k < logits.size:
        kth = np.partition(scaled, -settings.top_k)[-settings.top_k]
        keep &= scaled >= kth  # ties at the k-th value are kept, as in Hugging Face
    if settings.top_p < 1.0:
        masked = np.where(keep, scaled, -np.inf)
        probs = softmax(masked)
        order = np.argsort(-probs, kind="stable")
        mass_before = np.cumsum(probs[order]) - probs[order]  # probability of everything ranked above
        keep_sorted = mass_before < settings.top_p  # smallest set reaching top_p; the top token always stays
        nucleus = np.zeros_like(keep)
        nucleus[order[keep_sorted]] = True
        keep &= nucleus
    probs = softmax(np.where(keep, scaled, -np.inf))
    return probs


def sample(
    logits: np.ndarray,
    settings: SamplingSettings | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[int, np.ndarray]:
    """Draw one token id from the last row of logits; also return the distribution it was drawn from."""
    settings = settings or SamplingSettings()
    row = logits[-1] if logits.ndim == 2 else logits
    probs = sampling_distribution(row, settings)
    if settings.temperature == 0:
        return int(np.argmax(probs)), probs
    rng = rng if rng is not None else np.random.default_rng()
    # Inverse-CDF draw over the kept tokens only: one uniform number, so a seed gives the same token
    # everywhere, and float rounding can never land on a token the cut removed.
    kept = np.flatnonzero(probs)
    cdf = np.cumsum(probs[kept])
    index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    token = int(kept[min(index, kept.size - 1)])
    return token, probs
