"""The KV cache: keys and values of every past position, so decoding one token costs one row."""

from __future__ import annotations

import numpy as np

BLOCK = 256  # positions added per growth step; a whole block is allocated at once, never per token


class KVCache:
    """Per layer, keys and values [n_kv_head, capacity, head_dim] preallocated in blocks of positions."""

    def __init__(self, n_layer: int, n_kv_head: int, head_dim: int, max_len: int, dtype=np.float32) -> None:
        self.n_layer, self.n_kv_head, self.head_dim, self.max_len = n_layer, n_kv_head, head_dim, max_len
        self.dtype = np.dtype(dtype)
        self.length = 0  # positions filled in every layer
        self._k: list[np.ndarray] = [self._empty(0) for _ in range(n_layer)]
        self._v: list[np.ndarray] = [self._empty(0) for _ in range(n_layer)]

    def _empty(self, capacity: int) -> np.ndarray:
        return np.zeros((self.n_kv_head, capacity, self.head_dim), dtype=self.dtype)

    @property
    def capacity(self) -> int:
        return self._k[0].shape[1] if self._k else 0

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_cap = min(self.max_len, -(-needed // BLOCK) * BLOCK)
        new_cap = max(new_cap, needed)
        for store in (self._k, self._v):
            for i, old in enumerate(store):
                grown = self._empty(new_cap)
                grown[:, : self.length] = old[:, : self.length]
                store[i] = grown

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store this call's k, v [n_kv_head, n_new, head_dim] after the past; return views of all of it.

        Layers are filled in order; the last layer's append advances `length`.
        """
        n_new = k.shape[1]
        start = self.length
        if layer == 0:
            self._reserve(start + n_new)
        self._k[layer][:, start : start + n_new] = k
        self._v[layer][:, start : start + n_new] = v
        if layer == self.n_layer - 1:
            self.length = start + n_new
        end = start + n_new
        return self._k[layer][:, :end], self._v[layer][:, :end]

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on (stepping back, or rejecting speculative tokens)."""
        self.length = max(0, min(length, self.length))

    @property
    def nbytes(self) -> int:
        """Bytes the filled positions take: 2 (k and v) x layers x kv heads x positions x head_dim x 4."""
        return 2 * self.n_layer * self.n_kv_head * self.length * self.head_dim * self.dtype.itemsize

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.n_layer * self.n_kv_head * self.head_dim * self.dtype.itemsize

    def keys(self, layer: int) -> np.ndarray:
        return self._k[layer][:, : self.length]

    def values(self, layer: int) -> np.ndarray:
        return self._v[layer][:, : self.length]
