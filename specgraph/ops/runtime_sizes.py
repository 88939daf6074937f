"""Sizes a spec states symbolically, computed at run time from the input's own dims.

``reshape: [N, "${x.height // 7}", 7, "${x.width // 7}", 7, C]`` and ``pad`` amounts such as
``"${7 * ceil(x.width / 7) - x.width}"`` are symbolic dims (:class:`~specgraph.ir.dims.Sym`)
at check time.  The built module must compute each one from the tensor it receives, so a dim
is translated into a *size program* over the input's dim indices — plain nested tuples, which
the Python export can write as literals:

* ``("size", n)``            the integer n;
* ``("dim", i)``             ``x.shape[i]``;
* ``("affine", ((p, c), ...), const, div)``  ``floor((sum c * p + const) / div)`` over the
  programs p of its symbols;
* ``("add", a, b)``, ``("mul", a, b)``, ``("floordiv", a, k)``: the opaque dims' arithmetic;
* ``("exact", a, k, text, where)``  a // k where the spec holds only when k divides a: checked
  on every call, the message naming the dim (``text``) and the op (``where``).

* ``("source", k, i)``       dim i of the spec's k-th input (see below).

A symbol is found in the input where one of its dims is that symbol, or c * symbol + k (then
solved for it), else in the spec's inputs — every symbol is born in one of them, and the
forward holds them all, so ``slice: {stop: "${tokens.shape[1]}"}`` of a position table sized
by a param reads T from ``tokens``.  Before those, the inputs of the op's innermost block
(:func:`source_values`): a block's ``${x.shape[1]}`` is read from its own x.  Those tensors are
the *size sources* (:func:`reading_sizes_from`),
set by the compiler around a shape rule and around the fx emission: none inside a scan's cell,
whose split graphs take other inputs.  A dim no source shows cannot be computed, and
:func:`size_program` returns None.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator

from ..ir.dims import Dim, Sym, floordiv

SizeProgram = tuple


class _Sources:
    """The size sources' shapes, made when a size program first asks: most shape rules never
    do, and the check sets sources around every one of them."""

    def __init__(self, shapes: Iterable | Callable[[], Iterable]):
        self._shapes = shapes
        self._made: tuple[tuple[Dim, ...], ...] | None = None

    def shapes(self) -> tuple[tuple[Dim, ...], ...]:
        if self._made is None:
            shapes = self._shapes() if callable(self._shapes) else self._shapes
            self._made = tuple(tuple(s) for s in shapes)
        return self._made


# The shapes of the spec's inputs while a shape rule or an emission runs (see the module doc).
_SOURCES: ContextVar[_Sources] = ContextVar("specgraph_size_sources", default=_Sources(()))
SIZE_SOURCE = "specgraph.size_source"  # fx meta key of the stand-in for the spec's k-th input


def _source_shapes() -> tuple[tuple[Dim, ...], ...]:
    """The shapes of the size sources in force (made now if they were given as a function)."""
    return _SOURCES.get().shapes()


@contextmanager
def reading_sizes_from(shapes: Iterable | Callable[[], Iterable]) -> Iterator[None]:
    """Within: sizes the op's input does not show may be read from tensors of these ``shapes``
    (the spec's inputs, in order; or a function giving them, called only if a size is read)."""
    token = _SOURCES.set(_Sources(shapes))
    try:
        yield
    finally:
        _SOURCES.reset(token)


def source_values(scopes, scope_paths: tuple[str, ...], inputs) -> list:
    """The values (ir.graph.Value) sizes are read from besides an op's own inputs, for an op
    inside the scopes ``scope_paths`` (outermost first): the inputs of its innermost block, then
    ``inputs``, the spec's — so a block reads what it can from its own inputs (``${x.shape[1]}``
    of a block's x is x's dim, not the spec input's size it equals), and the code written for it
    needs nothing from outside it."""
    block = next((scopes[p] for p in reversed(scope_paths) if p in scopes and scopes[p].kind == "block"), None)
    own = list(block.inputs) if block is not None else []
    return own + [v for v in inputs if v not in own]


def size_program(d: Dim, input_shape: tuple[Dim, ...]) -> SizeProgram | None:
    """How to compute ``d`` from a tensor of shape ``input_shape`` (or the size sources);
    None when it cannot be."""
    if isinstance(d, int):
        return ("size", d)
    found = _read_off(d, input_shape, lambda i: ("dim", i))
    if found is not None:
        return found
    for k, shape in enumerate(_source_shapes()):  # the sources are made only here
        found = _read_off(d, shape, lambda i, k=k: ("source", k, i))
        if found is not None:
            return found
    if d.opaque is not None:
        if d.tree is None:
            return None
        kind, a, b = d.tree
        if kind == "floordiv":
            inner = size_program(a, input_shape)
            return None if inner is None else ("floordiv", inner, b)
        left, right = size_program(a, input_shape), size_program(b, input_shape)
        return None if left is None or right is None else (kind, left, right)
    terms = []
    for term, coef in d.terms:  # a symbol, or an atom (a floored quotient, a product)
        found = _symbol_program(term, input_shape) if isinstance(term, str) else size_program(term, input_shape)
        if found is None:
            return None
        terms.append((found, coef))
    # in an order of the programs alone (positive ones first), not of the symbols: so instances of a
    # block whose sizes differ (⌊W/4⌋ in one, ⌊(W + 4)/8⌋ in the next) compute them in the same code
    terms.sort(key=lambda term: (term[1] < 0, repr(term[0])))
    return ("affine", tuple(terms), d.const, d.div)


def _read_off(d: Sym, shape: tuple[Dim, ...], at) -> SizeProgram | None:
    """``d`` read off one dim of ``shape`` (``at(i)`` reads dim i): that dim itself; a dim that is
    c*d (the windows of a map padded to whole windows: dim // c); or a dim e = ⌊(t + a)/k⌋ of
    which d = ⌊(t + b)/(k*j)⌋ is a coarser floor, k dividing b - a: d = (e + (b - a)/k) // j — so a
    block computes ``⌈⌊W/4⌋/7⌉`` from its input's ⌊W/4⌋, not from the spec's W."""
    if d in shape:
        return at(shape.index(d))
    for i, dim in enumerate(shape):
        if not isinstance(dim, Sym) or dim.opaque is not None:
            continue
        if (dim.const, dim.div) == (0, 1) and len(dim.terms) == 1 and dim.terms[0][0] == d and dim.terms[0][1] > 1:
            return ("floordiv", at(i), dim.terms[0][1])
        if d.opaque is None and d.terms and dim.terms == d.terms and d.div % dim.div == 0 \
                and (d.const - dim.const) % dim.div == 0:
            return ("affine", ((at(i), 1),), (d.const - dim.const) // dim.div, d.div // dim.div)
    return None


def _symbol_program(name: str, input_shape: tuple[Dim, ...]) -> SizeProgram | None:
    """The symbol ``name`` from the input, else from a size source."""
    found = _solved(name, input_shape, lambda i: ("dim", i))
    if found is not None:
        return found
    for k, shape in enumerate(_source_shapes()):
        found = _solved(name, shape, lambda i, k=k: ("source", k, i))
        if found is not None:
            break
    return found


def _solved(name: str, shape: tuple[Dim, ...], at) -> SizeProgram | None:
    """``name`` from a dim of ``shape`` that is it, or that is c*name + k (solved: (dim - k) / c)."""
    for i, dim in enumerate(shape):
        if isinstance(dim, Sym) and dim.opaque is None and dim.div == 1 and len(dim.terms) == 1 \
                and dim.terms[0][0] == name:
            coef = dim.terms[0][1]
            if (coef, dim.const) == (1, 0):
                return at(i)
            if coef > 0:
                return ("affine", ((at(i), 1),), -dim.const, coef)
    return None


def emit_size(graph, x, program: SizeProgram):
    """fx nodes computing ``program`` from the tensor node ``x`` (an int when it is constant):
    ``x.size(2) // 7`` in the generated code, so exports and the Python source show it."""
    import operator

    def apply(fn, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return fn(a, b)
        return graph.call_function(fn, (a, b))

    kind = program[0]
    if kind == "size":
        return program[1]
    if kind == "dim":
        return graph.call_method("size", (x, program[1]))
    if kind == "source":
        source = next(n for n in graph.nodes if n.op == "placeholder" and n.meta.get(SIZE_SOURCE) == program[1])
        return graph.call_method("size", (source, program[2]))
    if kind == "affine":
        _, terms, const, div = program
        total = None
        for inner, coef in terms:
            term = emit_size(graph, x, inner)
            term = term if coef == 1 else apply(operator.mul, term, coef)
            total = term if total is None else apply(operator.add, total, term)
        total = const if total is None else apply(operator.add, total, const) if const else total
        return apply(operator.floordiv, total, div) if div != 1 else total
    if kind == "floordiv":
        return apply(operator.floordiv, emit_size(graph, x, program[1]), program[2])
    if kind == "exact":
        _, inner, k, text, shown = program
        return graph.call_function(exact_quotient, (emit_size(graph, x, inner), k, text, shown))
    fn = operator.add if kind == "add" else operator.mul
    return apply(fn, emit_size(graph, x, program[1]), emit_size(graph, x, program[2]))


def exact_quotient(value: int, k: int, text: str, where: str) -> int:
    """value // k, refusing a value k does not divide: the spec stated ``where`` for such sizes only."""
    if value % k:
        raise ValueError(f"{where} needs {text} divisible by {k}, but this input has {text} = {value}")
    return value // k


def non_negative(value: int, text: str, where: str) -> int:
    """value, refusing a negative one: the spec's ``where`` states ``text`` as a size or an amount."""
    if value < 0:
        raise ValueError(f"{where} amount {text} is {value} for this input; it must not be negative")
    return value


def exact_division(d: Sym, input_shape: tuple[Dim, ...]) -> tuple[Dim, int]:
    """``d`` = floor(e / k) as (e, k), e preferably a dim of the input: ``x.height // 7`` of an
    input of height ⌈H/2⌉ is (⌈H/2⌉, 7), not (H + 1, 14) — the run checks what the spec said."""
    for dim in input_shape:
        if isinstance(dim, Sym) and dim.opaque is None and d.div % dim.div == 0 and d.div > dim.div:
            k = d.div // dim.div
            if floordiv(dim, k) == d:
                return dim, k
    return (Sym(terms=d.terms, const=d.const) if d.terms else d.const), d.div


__all__ = ["SizeProgram", "SIZE_SOURCE", "reading_sizes_from", "source_values", "size_program", "emit_size", "exact_quotient",
           "non_negative", "exact_division"]
