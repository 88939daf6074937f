"""Tensor dimensions that may be symbolic.

A dimension is an ``int`` or a :class:`Sym`.  A ``Sym`` is kept in the canonical form

    floor((c1*s1 + c2*s2 + ... + const) / div)

which is closed under the arithmetic of convolution and pooling (add an integer, floor-divide
by a positive integer), so ``H`` through ResNet's stem becomes exactly ``ceil(H/4)`` and two
branches of an inception module compare equal symbolically.  Anything outside that form
(a product of two symbols, an integer times a floored quotient) becomes an opaque symbol
compared by its text: still exact, only less simplifiable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Union

SYMBOL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Sym:
    """A symbolic dimension: floor((sum(c*s) + const) / div), or an opaque expression text."""

    terms: tuple[tuple[str, int], ...] = ()
    const: int = 0
    div: int = 1
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return self.opaque
        numerator = _affine_text(self.terms, self.const)
        if self.div == 1:
            return numerator
        simple = _affine_text(self.terms, 0)
        single = len(self.terms) == 1 and self.terms[0][1] == 1
        if self.const == 0:
            return f"{simple}/{self.div}" if single else f"({simple})/{self.div}"
        if self.const == self.div - 1:
            return f"⌈{simple}/{self.div}⌉" if single else f"⌈({simple})/{self.div}⌉"
        return f"⌊({numerator})/{self.div}⌋"

    def __repr__(self) -> str:
        return f"Sym({self})"

    @property
    def symbols(self) -> frozenset[str]:
        if self.opaque is not None:
            return frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.opaque))
        return frozenset(s for s, _ in self.terms)


Dim = Union[int, Sym]


def _affine_text(terms: tuple[tuple[str, int], ...], const: int) -> str:
    parts: list[str] = []
    for name, coef in terms:
        if coef == 1:
            text = name
        elif coef == -1:
            text = f"-{name}"
        else:
            text = f"{coef}*{name}"
        if parts and not text.startswith("-"):
            text = "+" + text
        parts.append(text)
    if const or not parts:
        parts.append(f"{const:+d}" if parts else str(const))
    return "".join(parts)


def symbol(name: str) -> Sym:
    """The symbolic dimension called ``name`` (e.g. N, H, T)."""
    return Sym(terms=((name, 1),))


def _make(terms: dict[str, int], const: int, div: int) -> Dim:
    terms = {k: v for k, v in terms.items() if v != 0}
    if not terms:
        return const // div
    g = math.gcd(div, const, *terms.values())
    if g > 1:
        div //= g
        const //= g
        terms = {k: v // g for k, v in terms.items()}
    return Sym(terms=tuple(sorted(terms.items())), const=const, div=div)


def _opaque(text: str) -> Sym:
    return Sym(opaque=text)


def _wrap(d: Dim) -> str:
    text = str(d)
    return text if isinstance(d, int) or SYMBOL_RE.match(text) else f"({text})"


def is_concrete(d: Dim) -> bool:
    return isinstance(d, int)


def add(a: Dim, b: Dim) -> Dim:
    """a + b."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(b, int):
        a, b = b, a
    # now b is a Sym
    if isinstance(a, int):
        if b.opaque is not None:
            return _opaque(f"{b}{a:+d}") if a else b
        return _make(dict(b.terms), b.const + a * b.div, b.div)
    if a.opaque is None and b.opaque is None and a.div == 1 and b.div == 1:
        terms = dict(a.terms)
        for k, v in b.terms:
            terms[k] = terms.get(k, 0) + v
        return _make(terms, a.const + b.const, 1)
    return _opaque(f"{a}+{_wrap(b)}")


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, mul(b, -1))


def mul(a: Dim, b: Dim) -> Dim:
    """a * b."""
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if isinstance(b, int):
        a, b = b, a
    if isinstance(a, int):
        if a == 0:
            return 0
        if a == 1:
            return b
        if b.opaque is None and b.div == 1:
            return _make({k: v * a for k, v in b.terms}, b.const * a, 1)
        return _opaque(f"{a}*{_wrap(b)}")
    left, right = sorted([_wrap(a), _wrap(b)])
    return _opaque(f"{left}*{right}")


def floordiv(a: Dim, k: int) -> Dim:
    """floor(a / k) for a positive integer k."""
    if k <= 0:
        raise ValueError(f"floordiv by non-positive {k}")
    if isinstance(a, int):
        return a // k
    if k == 1:
        return a
    if a.opaque is not None:
        return _opaque(f"⌊{_wrap(a)}/{k}⌋")
    # floor(floor(x/d)/k) == floor(x/(d*k)) for integer x and positive d, k
    return _make(dict(a.terms), a.const, a.div * k)


def ceildiv(a: Dim, k: int) -> Dim:
    """ceil(a / k) for a positive integer k."""
    return floordiv(add(a, k - 1), k)


def product(dims: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def dim_text(d: Dim) -> str:
    return str(d)


def parse_dim(value: object) -> Dim:
    """A dimension written in a spec: a positive int or a symbol name like N or H."""
    if isinstance(value, bool):
        raise ValueError(f"a dimension is a positive integer or a symbol name, not {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"a dimension must be positive, found {value}")
        return value
    if isinstance(value, str) and SYMBOL_RE.match(value):
        return symbol(value)
    raise ValueError(f"a dimension is a positive integer or a symbol name, not {value!r}")


def evaluate(d: Dim, sizes: dict[str, int]) -> int:
    """The integer value of ``d`` when each symbol takes its value from ``sizes``."""
    if isinstance(d, int):
        return d
    if d.opaque is not None:
        raise KeyError(f"cannot evaluate opaque dimension {d}")
    total = d.const
    for name, coef in d.terms:
        total += coef * sizes[name]
    return total // d.div
