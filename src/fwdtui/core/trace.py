"""The Trace: every intermediate of one forward call, under stable dotted names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

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
        self._deferred: dict[str, Callable[[], np.ndarray]] = {}

    def record(self, name: str, value: np.ndarray) -> None:
        self._tensors[name] = value

    def record_deferred(self, name: str, compute: Callable[[], np.ndarray]) -> None:
        """An entry computed from recorded ones on first read (e.g. probs from logits): costs nothing
        when nobody looks at it, and is the same array on every read after."""
        self._deferred[name] = compute

    def __getitem__(self, name: str) -> np.ndarray:
        compute = self._deferred.get(name) if name not in self._tensors else None
        if compute is not None:  # two threads reading at once both compute; the first result stays
            self._tensors.setdefault(name, compute())
            self._deferred.pop(name, None)
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in this trace; it holds {len(self)} names, e.g. {list(self._tensors)[:4]}") from None

    def __iter__(self) -> Iterator[str]:
        return iter([*self._tensors, *(n for n in self._deferred if n not in self._tensors)])

    def __len__(self) -> int:
        return len(self._tensors) + sum(n not in self._tensors for n in self._deferred)

    def layer(self, index: int) -> dict[str, np.ndarray]:
        """The intermediates of block `index`, without the `blocks.L.` prefix."""
        prefix = f"blocks.{index}."
        return {k[len(prefix):]: self[k] for k in self if k.startswith(prefix)}

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._tensors.values())


class NoTrace:
    """Stands in for a Trace when nothing is recorded, so the forward pass reads the same either way."""

    def record(self, name: str, value: np.ndarray) -> None:
        pass


NO_TRACE = NoTrace()
