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
from dataclasses import dataclass, field
from typing import Iterable, Union

SYMBOL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Sym:
    """A symbolic dimension: floor((sum(c*t) + const) / div) over terms t, or an opaque product.

    A term is a symbol name, or an *atom*: a floored quotient or a product that sums with
    others (``7*⌈W/7⌉-W``, what padding W to a multiple of 7 adds), so such sums still
    cancel and simplify.  A product of two symbolic dims is opaque: it compares by its text
    (its factors sorted), and ``tree`` (``("mul", a, b)``) keeps how to evaluate it.
    """

    terms: tuple[tuple[Union[str, "Sym"], int], ...] = ()
    const: int = 0
    div: int = 1
    opaque: str | None = None
    tree: tuple | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        """As a user would write it: ``⌊H/8⌋``, ``⌈H/4⌉``, ``⌊(W - 16)/16⌋``, ``2*H + 1``; every
        floored quotient in ⌊⌋ (a bare ``H/8`` would read as exact), sums spaced."""
        if self.opaque is not None:
            return self.opaque
        numerator = _affine_text(self.terms, self.const)
        if self.div == 1:
            return numerator
        single = len(self.terms) == 1 and self.terms[0][1] == 1
        if self.const == self.div - 1:  # ceil(x/d) is floor((x + d - 1)/d)
            simple = _term_text(self.terms[0][0]) if single else f"({_affine_text(self.terms, 0)})"
            return f"⌈{simple}/{self.div}⌉"
        if self.const == 0 and single:
            return f"⌊{_term_text(self.terms[0][0])}/{self.div}⌋"
        return f"⌊({numerator})/{self.div}⌋"

    def __repr__(self) -> str:
        # What messages show (a list of dims, an f-string's !r): the user's notation, never internals.
        return str(self)

    @property
    def symbols(self) -> frozenset[str]:
        if self.opaque is not None:
            return frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.opaque))
        return frozenset().union(*({t} if isinstance(t, str) else t.symbols for t, _ in self.terms))


Dim = Union[int, Sym]


def _term_text(term: Union[str, Sym]) -> str:
    return term if isinstance(term, str) else _wrap(term)


def _affine_text(terms: tuple, const: int) -> str:
    """``2*H + W - 3``: terms in order, then the constant; minus signs as subtraction."""
    text = ""
    for term, coef in terms:
        name = _term_text(term)
        size = abs(coef)
        part = name if size == 1 else f"{size}*{name}"
        text += (part if coef > 0 else f"-{part}") if not text else (f" + {part}" if coef > 0 else f" - {part}")
    if const or not text:
        text += str(const) if not text else (f" + {const}" if const > 0 else f" - {-const}")
    return text


def symbol(name: str) -> Sym:
    """The symbolic dimension called ``name`` (e.g. N, H, T)."""
    return Sym(terms=((name, 1),))


def _make(terms: dict, const: int, div: int) -> Dim:
    terms = {k: v for k, v in terms.items() if v != 0}
    if not terms:
        return const // div
    g = math.gcd(div, const, *terms.values())
    if g > 1:
        div //= g
        const //= g
        terms = {k: v // g for k, v in terms.items()}
    if (const, div) == (0, 1) and len(terms) == 1:
        (term, coef), = terms.items()
        if coef == 1 and isinstance(term, Sym):
            return term  # the atom itself: 1*⌈W/7⌉ is ⌈W/7⌉
    return Sym(terms=tuple(sorted(terms.items(), key=lambda kv: _term_text(kv[0]))), const=const, div=div)


def _linear(d: Dim) -> tuple[dict, int]:
    """``d`` as (terms, const) of a sum; a floored quotient or a product is one term (an atom)."""
    if isinstance(d, int):
        return {}, d
    if d.opaque is None and d.div == 1:
        return dict(d.terms), d.const
    return {d: 1}, 0


def _wrap(d: Dim) -> str:
    """``d``'s text, in parentheses unless it is one symbol, a number or one ⌈...⌉ / ⌊...⌋."""
    text = str(d)
    return text if isinstance(d, int) or SYMBOL_RE.match(text) or _one_bracket(text) else f"({text})"


def _one_bracket(text: str) -> bool:
    if text[0] not in "⌈⌊":
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "⌈⌊") - (ch in "⌉⌋")
        if depth == 0:
            return i == len(text) - 1
    return False


def is_concrete(d: Dim) -> bool:
    return isinstance(d, int)


def add(a: Dim, b: Dim) -> Dim:
    """a + b."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(b, int) and isinstance(a, Sym) and a.opaque is None:
        return _make(dict(a.terms), a.const + b * a.div, a.div)  # floor(x/d) + b == floor((x + b*d)/d)
    if isinstance(a, int) and isinstance(b, Sym) and b.opaque is None:
        return add(b, a)
    (ta, ca), (tb, cb) = _linear(a), _linear(b)
    for k, v in tb.items():
        ta[k] = ta.get(k, 0) + v
    return _make(ta, ca + cb, 1)


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, mul(b, -1))


def mul(a: Dim, b: Dim) -> Dim:
    """a * b."""
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if isinstance(b, int):
        a, b = b, a
    if isinstance(a, int):
        terms, const = _linear(b)
        return _make({k: v * a for k, v in terms.items()}, const * a, 1)
    # a product of symbolic factors, flattened and sorted: (H*W)*N is H*(W*N) is H*N*W
    factors = sorted(_factors(a) + _factors(b), key=_wrap)
    tree = factors[0]
    for f in factors[1:]:
        tree = Sym(opaque="*".join(map(_wrap, [tree, f])), tree=("mul", tree, f))
    return Sym(opaque="*".join(map(_wrap, factors)), tree=tree.tree)


def _factors(d: Sym) -> list[Sym]:
    """The factors of a product of symbolic dims (the dim itself when it is no product)."""
    if d.tree is not None:
        return _factors(d.tree[1]) + _factors(d.tree[2])
    return [d]


def floordiv(a: Dim, k: int) -> Dim:
    """floor(a / k) for a positive integer k."""
    if k <= 0:
        raise ValueError(f"floordiv by non-positive {k}")
    if isinstance(a, int):
        return a // k
    if k == 1:
        return a
    if a.opaque is not None:
        return _make({a: 1}, 0, k)
    if a.div == 1:
        # floor((k*B + R)/k) == B + floor(R/k) for integer B: the terms k divides leave the
        # quotient, so ⌊(⌊W/8⌋ - 2*⌊(W - 16)/16⌋ - 2)/2⌋ is 0 and not a nest of brackets.  The
        # constant stays inside (add() folds constants into a quotient), one form per value.
        whole = {t: c // k for t, c in a.terms if c % k == 0}
        if whole:
            rest = _make({t: c for t, c in a.terms if c % k}, 0, 1)
            return add(_make(whole, 0, 1), floordiv(add(rest, a.const), k))
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
        return evaluate(d.tree[1], sizes) * evaluate(d.tree[2], sizes)
    total = d.const
    for term, coef in d.terms:
        total += coef * (sizes[term] if isinstance(term, str) else evaluate(term, sizes))
    return total // d.div
