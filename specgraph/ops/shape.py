"""Reshaping ops: flatten, reshape, permute, identity.

Nothing here imports torch at module level: checking a spec never needs it.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import Annotated, Union

from pydantic import AfterValidator, InstanceOf, WithJsonSchema, field_validator

from ..ir.dims import SYMBOL_RE, Dim, Sym, floordiv, is_concrete, mul, product, symbol
from ..ir.traits import Trait
from .base import Int, Op, OpParams, ShapeError, arg_type, normalize_dim
from .registry import register_op
from .rules import require
from .runtime_sizes import emit_size, exact_division, size_program


# ---- ops ----------------------------------------------------------------------------------

@register_op
class Identity(Op):
    """Passes its input through. Shape: [*] -> [*]. Emits no fx node at all."""

    name = "identity"
    category = "reshape"
    traits = frozenset({Trait.ROW_WISE, Trait.IDENTITY_IN_EVAL})

    def infer(self, p, inputs):
        return [inputs[0]]

    def emit(self, p, graph, args):
        return args[0]


@register_op
class Flatten(Op):
    """Merges dims start_dim..end_dim into one. Shape: [N, C, H, W] -> [N, C*H*W] by default.

    The merged size is the product of the dims, symbolic when any of them is.
    """

    name = "flatten"
    category = "reshape"
    traits = frozenset({Trait.VIEW})  # when the strides allow it (Op.view_strides: reshape's rule); else a copy

    class Params(OpParams):
        start_dim: Int = 1
        end_dim: Int = -1

    def infer(self, p, inputs):
        t = inputs[0]
        start = normalize_dim(p.start_dim, t.rank, "start_dim")
        end = normalize_dim(p.end_dim, t.rank, "end_dim")
        if start > end:
            raise ShapeError(f"flatten start_dim {p.start_dim} comes after end_dim {p.end_dim} "
                             f"for input {t}", code="E405")
        merged = product(t.shape[start:end + 1])
        return [t.with_shape((*t.shape[:start], merged, *t.shape[end + 1:]))]

    def emit(self, p, graph, args):
        import torch
        return graph.call_function(torch.flatten, (args[0],),
                                   {"start_dim": p.start_dim, "end_dim": p.end_dim})

    def describe(self, p):
        return "" if (p.start_dim, p.end_dim) == (1, -1) else f"{p.start_dim}..{p.end_dim}"


# an entry an expression computed from the input's dims (``${x.height // 7}``): a symbolic dim
SymbolicEntry = Annotated[InstanceOf[Sym], WithJsonSchema({"type": "string", "description": "an expression "
                                                            "over the input's dims, e.g. ${x.height // 7}"})]


def _symbol_entry(name: str) -> Sym:
    if not SYMBOL_RE.match(name):
        raise ValueError(f"{name!r} is not a symbol name")
    return symbol(name)


# a symbol name ("N"): that symbolic dim, held as one from here on
SymbolName = Annotated[str, AfterValidator(_symbol_entry)]
ShapeEntry = Union[Int, SymbolName, SymbolicEntry]


def _factors(d: Dim) -> tuple[Fraction, Counter]:
    """A dim as (concrete factor, multiset of symbolic factors): 4*H -> (4, {H}), H*W -> (1, {H, W})."""
    if is_concrete(d):
        return Fraction(d), Counter()
    if d.tree is not None and d.tree[0] == "mul":
        (ca, sa), (cb, sb) = _factors(d.tree[1]), _factors(d.tree[2])
        return ca * cb, sa + sb
    if d.opaque is None and d.div == 1:
        g = math.gcd(d.const, *(c for _, c in d.terms))
        if g > 1:
            return Fraction(g), Counter({floordiv(d, g): 1})
    return Fraction(1), Counter({d: 1})


def _count(shape, exact: dict | None = None) -> tuple[Fraction, Counter]:
    """A shape's element count as (concrete product, multiset of symbolic factors); a dim that
    ``exact`` maps to (e, k) — it is floor(e / k) — is counted as e / k."""
    const, syms = Fraction(1), Counter()
    for d in shape:
        if exact and d in exact:
            e, k = exact[d]
            c, s = _factors(e)
            c /= k
        else:
            c, s = _factors(d)
        const, syms = const * c, syms + s
    return const, syms


@register_op
class Reshape(Op):
    """Reshapes to ``shape``: each entry a positive int, -1 (at most one, inferred), a symbol
    name such as "N" standing for that symbolic dim, or an expression over the input's dims
    (``"${x.height // 7}"``). Shape: [*] -> shape.

    Element counts are compared symbolically: each side is factored into a concrete product
    and a multiset of symbolic factors, so [N, 64, H, W] -> [N, -1] gives [N, 64*H*W]. An
    entry floor(e / k) that only fits when k divides e ([N, H, W, C] -> [N, H/7, 7, W/7, 7, C])
    is accepted with that condition checked on every call, the message naming the dim.
    Symbolic entries are computed at run time from the input's dims; an entry needing a symbol
    the input does not show may be the one the run infers (-1).
    """

    name = "reshape"
    aliases = ('view',)
    category = "reshape"
    traits = frozenset({Trait.VIEW})  # when the strides allow it (Op.view_strides: reshape's rule); else a copy

    class Params(OpParams):
        shape: list[ShapeEntry]

        @field_validator("shape")
        @classmethod
        def _entries(cls, v):
            for e in v:
                if isinstance(e, int) and e != -1 and e <= 0:
                    raise ValueError(f"reshape entries are positive ints, -1 or symbols, not {e}")
            if sum(1 for e in v if isinstance(e, int) and e == -1) > 1:
                raise ValueError("reshape allows at most one -1")
            return v

    def _target(self, p) -> list[Dim | None]:
        return [None if isinstance(e, int) and e == -1 else e for e in p.shape]

    def _text(self, p) -> str:
        return "[" + ", ".join("-1" if d is None else str(d) for d in self._target(p)) + "]"

    def _plan(self, p, t):
        """(the target with -1 inferred, the exact divisions the run must check)."""
        target = self._target(p)
        mismatch = ShapeError(f"reshape cannot turn {t} into {self._text(p)}: element counts differ",
                              code="E403", hint="the product of the new shape must equal the product of the input's")
        have_c, have_s = _count(t.shape)
        have_atoms = set(have_s)
        # floor(e / k) entries the input does not itself show are counted as e / k, on condition
        exact = {d: exact_division(d, t.shape) for d in target
                 if isinstance(d, Sym) and d.opaque is None and d.div > 1 and d not in have_atoms}
        for divisions in ({}, exact) if exact else ({},):
            want_c, want_s = _count([d for d in target if d is not None], divisions)
            if None not in target:
                if (have_c, have_s) == (want_c, want_s):
                    return target, divisions
                continue
            rest, ratio = have_s - want_s, have_c / want_c
            if want_s - have_s or ratio.denominator != 1:
                continue
            inferred = mul(int(ratio), product(sorted(rest.elements(), key=str)))
            return [inferred if d is None else d for d in target], divisions
        raise mismatch

    def _programs(self, p, t) -> list:
        """One size program per entry (see runtime_sizes), None for the one torch infers."""
        target, divisions = self._plan(p, t)
        programs = []
        for entry, d in zip(self._target(p), target):
            if entry is None:
                programs.append(None)
            elif d in divisions:  # floor(e / k), stated where k divides e: checked on every call
                e, k = divisions[d]
                inner = size_program(e, t.shape)
                if inner is None:
                    raise ShapeError(f"reshape entry {d} is exact only when {k} divides {e}, which cannot be "
                                     f"computed from the input {t}", code="E406",
                                     hint="write the entry from the input's own dims")
                programs.append(("exact", inner, k, str(e), f"reshape to {self._text(p)}"))
            else:
                programs.append(size_program(d, t.shape))
        unknown = [i for i, prog in enumerate(programs) if prog is None]
        if len(unknown) > 1:
            names = ", ".join("-1" if target[i] is None else str(target[i]) for i in unknown)
            raise ShapeError(f"reshape to {self._text(p)} cannot compute {names} from the input {t} at run time",
                             code="E406", hint="write the entries from the input's own dims (${x.shape[1] // 2}), "
                                               "or -1 for the one size to infer")
        return programs

    def infer(self, p, inputs):
        t = inputs[0]
        self._programs(p, t)
        target, divisions = self._plan(p, t)
        for e, k in divisions.values():  # also computed on each call; stated here to be told where
            require(e, multiple_of=k, code="E403", message=f"reshape to {self._text(p)} needs {e} divisible by {k}",
                    hint="choose input sizes for which the division is exact")
        return [t.with_shape(target)]

    def emit(self, p, graph, args):
        import torch

        programs = self._programs(p, arg_type(args[0]))
        computed = [prog for prog in programs if prog is None or prog[0] != "size"]
        if len(computed) == 1 and (computed[0] is None or computed[0][0] != "exact"):
            sizes = [-1 if prog is None or prog[0] != "size" else prog[1] for prog in programs]  # torch infers it
        else:
            sizes = [-1 if prog is None else emit_size(graph, args[0], prog) for prog in programs]
        return graph.call_function(torch.reshape, (args[0], sizes))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return self._text(p)


@register_op
class Permute(Op):
    """Reorders dims. Shape: [d0, d1, ...] -> [d_dims[0], d_dims[1], ...]."""

    name = "permute"
    aliases = ('dimshuffle',)
    category = "reshape"
    traits = frozenset({Trait.VIEW})

    class Params(OpParams):
        dims: list[Int]

    def view_strides(self, p, shape, strides, out_shape):
        return tuple(strides[d % len(shape)] for d in p.dims)

    def infer(self, p, inputs):
        t = inputs[0]
        if sorted(p.dims) != list(range(t.rank)):
            raise ShapeError(f"permute dims {p.dims} are not a permutation of 0..{t.rank - 1} "
                             f"for the rank-{t.rank} input {t}", code="E405",
                             hint=f"list each of 0..{t.rank - 1} exactly once")
        return [t.with_shape(t.shape[i] for i in p.dims)]

    def emit(self, p, graph, args):
        import torch
        return graph.call_function(torch.permute, (args[0], list(p.dims)))

    def describe(self, p):
        return "(" + ", ".join(map(str, p.dims)) + ")"


__all__ = ["Identity", "Flatten", "Reshape", "Permute"]
