"""An einsum equation's text, read the way torch.einsum reads it (no torch needed).

An equation is input terms separated by commas, then optionally ``->`` and the output term:
``bhqd,bhkd->bhqk``.  A term holds one subscript per dim, a letter a-z or A-Z, and at most one
``...`` standing for any number of dims (the batch dims, which broadcast across the operands
aligned on the right, as numpy does).  Spaces are ignored; the three dots of ``...`` must touch.

Without ``->`` (the implicit form) the output is ``...`` (when an input has one) followed by
the letters that appear exactly once in the inputs, in ASCII order (A-Z before a-z): torch's
rule, so ``ij,jk`` means ``ij,jk->ik`` and ``ii`` means ``ii->`` (the trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

ELLIPSIS = "..."

Term = tuple[str, ...]  # one subscript per entry: a letter, or ELLIPSIS


@dataclass(frozen=True)
class Equation:
    """A parsed equation: the subscripts of each input term and of the output term."""

    inputs: tuple[Term, ...]
    output: Term

    @property
    def text(self) -> str:
        """The explicit form (``->`` and the output always written), what torch is given."""
        return ",".join(map("".join, self.inputs)) + "->" + "".join(self.output)

    def letters(self, k: int) -> Term:
        """The letters of input ``k``, without its ellipsis."""
        return tuple(s for s in self.inputs[k] if s != ELLIPSIS)

    def has_ellipsis(self, k: int) -> bool:
        return ELLIPSIS in self.inputs[k]


class EquationError(ValueError):
    """The text is not an equation torch.einsum accepts; the message says where and why."""


def _term(text: str, start: int, end: int, equation: str) -> Iterator[str]:
    """The subscripts of ``equation[start:end]``, one term; spaces skipped."""
    i, seen_ellipsis = start, False
    while i < end:
        c = text[i]
        if c == " ":
            i += 1
        elif c.isascii() and c.isalpha():
            yield c
            i += 1
        elif c == ".":
            if text[i:i + 3] != ELLIPSIS or i + 3 > end:
                raise EquationError(f"equation '{equation}': the '.' at index {i} is not part of a '...'")
            if seen_ellipsis:
                raise EquationError(f"equation '{equation}': a term has at most one '...', found a second "
                                    f"at index {i}")
            seen_ellipsis = True
            yield ELLIPSIS
            i += 3
        else:
            raise EquationError(f"equation '{equation}': {c!r} at index {i} is not a subscript "
                                f"(letters a-z and A-Z, '...', ',' between inputs and one '->')")


@lru_cache(maxsize=256)
def parse_equation(equation: str) -> Equation:
    """The equation read as torch reads it; :class:`EquationError` where torch would refuse it
    whatever the operands (an unknown character, a stray '.', an output subscript twice or
    not among the inputs)."""
    arrow = equation.find("->")
    if arrow >= 0 and equation.find("->", arrow + 2) >= 0:
        raise EquationError(f"equation '{equation}' has more than one '->'")
    lhs_end = arrow if arrow >= 0 else len(equation)
    inputs: list[Term] = []
    start = 0
    while True:
        comma = equation.find(",", start, lhs_end)
        stop = comma if comma >= 0 else lhs_end
        inputs.append(tuple(_term(equation, start, stop, equation)))
        if comma < 0:
            break
        start = comma + 1
    if arrow < 0:
        return Equation(tuple(inputs), _implicit_output(inputs))
    if "," in equation[arrow + 2:]:
        raise EquationError(f"equation '{equation}': the output after '->' is one term, without ','")
    output = tuple(_term(equation, arrow + 2, len(equation), equation))
    used = {s for term in inputs for s in term}
    for s in output:
        if output.count(s) > 1:
            raise EquationError(f"equation '{equation}': output subscript '{s}' appears more than once")
        if s != ELLIPSIS and s not in used:
            raise EquationError(f"equation '{equation}': output subscript '{s}' is in no input term")
    return Equation(tuple(inputs), output)


def _implicit_output(inputs: list[Term]) -> Term:
    """torch's output of an equation without '->': the ellipsis first, then the letters used once."""
    letters = [s for term in inputs for s in term if s != ELLIPSIS]
    once = sorted(s for s in set(letters) if letters.count(s) == 1)
    return ((ELLIPSIS,) if any(ELLIPSIS in term for term in inputs) else ()) + tuple(once)


__all__ = ["ELLIPSIS", "Equation", "EquationError", "parse_equation"]
