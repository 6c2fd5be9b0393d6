"""The Trace: every intermediate of one forward call, under stable dotted names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


class Trace(Mapping[str, np.ndarray]):
    """Read-only once the forward pass is done; the TUI draws from it and never recomputes the model.

    `ids` are the tokens of this call's rows and `positions` their absolute positions (after a KV
    cache they do not start at 0). Names are listed in docs/architecture.md and pinned by a test.
    """

    def __init__(self, ids: list[int], positions: np.ndarray) -> None:
        self.ids = list(ids)
        self.positions = positions
        self._tensors: dict[str, np.ndarray] = {}

    def record(self, name: str, value: np.ndarray) -> None:
        self._tensors[name] = value

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in this trace; it holds {len(self._tensors)} names, e.g. {list(self._tensors)[:4]}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def layer(self, index: int) -> dict[str, np.ndarray]:
        """The intermediates of block `index`, without the `blocks.L.` prefix."""
        prefix = f"blocks.{index}."
        return {k[len(prefix):]: v for k, v in self._tensors.items() if k.startswith(prefix)}

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._tensors.values())


class NoTrace:
    """Stands in for a Trace when nothing is recorded, so the forward pass reads the same either way."""

    def record(self, name: str, value: np.ndarray) -> None:
        pass


NO_TRACE = NoTrace()
