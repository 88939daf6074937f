"""Conditions a shape rule holds only under, on sizes that only the input decides.

Torch refuses a reflect padding of 3 on a dim of size 3, a center crop with an odd border is
misaligned, a 7-wide window needs 7 pixels.  With concrete sizes the op decides at check time;
with a symbolic H it cannot, and the condition is not dropped: the op states it as a
:class:`Requirement` on a size over the graph inputs' symbols (``H - 3 >= 1``), which

* is decided at check time when it can be (it holds for every H >= 1, or for none) — the
  first by :func:`decide`, the second an error where the op raised it;
* is otherwise kept on the node (``Node.requires``) and checked on every call of the built
  module, before any op runs, with the op's location and code (torch/input_check.py).

Symbols are positive integers (a declared dim is at least 1): :func:`bounds` works over that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dims import Dim, Sym, evaluate, lower_bound


@dataclass(frozen=True)
class Requirement:
    """``size >= at_least`` (the default, 1: a size must be positive) or, with ``multiple_of``,
    ``size % multiple_of == 0``; with ``training_only``, in training mode only.  ``size`` is a dim over the graph inputs' symbols; ``code`` and
    ``message`` are what the op says when the condition fails (``message`` states the rule:
    "reflect padding 3 needs dim 3 above 3"), ``hint`` how to fix it."""

    size: Dim
    at_least: int | None = 1
    multiple_of: int | None = None
    code: str = "E404"
    message: str = ""
    hint: str | None = None
    training_only: bool = False  # torch asks it in training mode only (batch norm's batch of 2)

    def holds(self, value: int) -> bool:
        if self.multiple_of is not None:
            return value % self.multiple_of == 0
        return value >= self.at_least

    @property
    def condition(self) -> str:
        """The condition as text: ``W - 3 >= 1``, ``H - H2 divisible by 2``."""
        if self.multiple_of is not None:
            return f"{self.size} divisible by {self.multiple_of}"
        return f"{self.size} >= {self.at_least}"

    def decide(self) -> bool | None:
        """True when it holds for every size of the symbols, False when for none, else None."""
        if isinstance(self.size, int):
            return self.holds(self.size)
        if self.multiple_of is not None:
            return _divisibility(self.size, self.multiple_of)
        low, high = bounds(self.size)
        if low >= self.at_least:
            return True
        proven = lower_bound(self.size)  # floors relaxed, so that terms cancel: 7*⌈W/7⌉ - W >= 0
        if proven is not None and math.ceil(proven) >= self.at_least:
            return True
        if high is not None and high < self.at_least:
            return False
        return None

    @property
    def key(self) -> tuple:
        """What it asks, whoever says so: two rules asking the same are checked once."""
        return self.size, self.at_least, self.multiple_of, self.training_only

    def value(self, sizes: dict[str, int]) -> int:
        """The size at ``sizes`` (each symbol's value)."""
        return evaluate(self.size, sizes)


def bounds(d: Dim) -> tuple[int, int | None]:
    """(lowest, highest or None for unbounded) value of ``d`` when every symbol is >= 1."""
    if isinstance(d, int):
        return d, d
    if d.opaque is not None:
        if d.tree is None or d.tree[0] != "mul":
            return _UNKNOWN
        (la, ha), (lb, hb) = bounds(d.tree[1]), bounds(d.tree[2])
        if la < 0 or lb < 0:
            return _UNKNOWN
        return la * lb, None if ha is None or hb is None else ha * hb
    low, high = d.const, d.const
    for term, coef in d.terms:
        tl, th = (1, None) if isinstance(term, str) else bounds(term)
        if coef > 0:
            low = low + coef * tl if low is not None else None
            high = None if high is None or th is None else high + coef * th
        else:
            low = None if low is None or th is None else low + coef * th
            high = None if high is None else high + coef * tl
    if low is None:
        return _UNKNOWN
    return low // d.div, None if high is None else high // d.div


# A dim nothing is known of: any integer (symbols are positive, but a difference need not be).
_UNKNOWN = (-(1 << 62), None)


def _divisibility(d: Sym, k: int) -> bool | None:
    """Whether k divides the affine ``d`` always (True), never (False), or depending on the sizes."""
    if d.opaque is not None or d.div != 1:
        return None
    if all(c % k == 0 for _, c in d.terms):
        return d.const % k == 0
    return None


def merged(requirements) -> tuple[Requirement, ...]:
    """``requirements`` without repeats (an op's own rule and the compiler's "every output dim
    is positive" may ask the same), the first of each kept."""
    first: dict[tuple, Requirement] = {}
    for req in requirements:
        first.setdefault(req.key, req)
    return tuple(first.values())


__all__ = ["Requirement", "bounds", "merged"]
