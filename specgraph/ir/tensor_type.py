"""The static type of a tensor, which shape inference passes from node to node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .dims import Dim, evaluate


@dataclass(frozen=True)
class TensorType:
    """The static type of a tensor: its shape (ints and symbols) and dtype name."""

    shape: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return "[" + ", ".join(map(str, self.shape)) + "]"

    def with_shape(self, shape: Iterable[Dim]) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def concrete(self, **sizes: int) -> tuple[int, ...]:
        """The shape with symbols replaced by ``sizes`` (e.g. N=1), for counting MACs and bytes."""
        return tuple(evaluate(d, sizes) for d in self.shape)


__all__ = ["TensorType"]
