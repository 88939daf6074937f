"""Reshaping ops: flatten, reshape, permute, identity.

Nothing here imports torch at module level: checking a spec never needs it.
"""

from __future__ import annotations

from collections import Counter
from typing import Union

from pydantic import field_validator

from ..ir.dims import SYMBOL_RE, Dim, is_concrete, mul, product, symbol
from ..ir.traits import Trait
from .base import Int, Op, OpParams, ShapeError, normalize_dim
from .registry import register_op


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


ShapeEntry = Union[Int, str]


def _factor(shape) -> tuple[int, Counter]:
    """A shape's element count as (concrete product, multiset of symbolic factors)."""
    const, syms = 1, Counter()
    for d in shape:
        if is_concrete(d):
            const *= d
        else:
            syms[d] += 1
    return const, syms


@register_op
class Reshape(Op):
    """Reshapes to ``shape``: each entry a positive int, -1 (at most one, inferred) or a
    symbol name such as "N" standing for that symbolic dim. Shape: [*] -> shape.

    Element counts are compared symbolically: each side is factored into a concrete product
    and a multiset of symbolic factors, so [N, 64, H, W] -> [N, -1] gives [N, 64*H*W].
    Symbol entries become -1 at run time when they are the only unknown; otherwise a tiny
    module reads their sizes from the input's dims.
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
                if isinstance(e, str) and not SYMBOL_RE.match(e):
                    raise ValueError(f"reshape entry {e!r} is not a symbol name")
                if isinstance(e, int) and e != -1 and e <= 0:
                    raise ValueError(f"reshape entries are positive ints, -1 or symbols, not {e}")
            if sum(1 for e in v if e == -1) > 1:
                raise ValueError("reshape allows at most one -1")
            return v

    def _target(self, p) -> list[Dim | None]:
        return [None if e == -1 else symbol(e) if isinstance(e, str) else e for e in p.shape]

    def infer(self, p, inputs):
        t = inputs[0]
        target = self._target(p)
        for e in p.shape:
            # the emitted code reads a symbol's size from the input dim it names
            if isinstance(e, str) and symbol(e) not in t.shape:
                raise ShapeError(f"reshape entry '{e}' is not a dim of the input {t}", code="E403",
                                 hint="a symbol entry must name one of the input's dims; "
                                      "use -1 for the one size to infer")
        have_c, have_s = _factor(t.shape)
        want_c, want_s = _factor([d for d in target if d is not None])
        mismatch = ShapeError(
            f"reshape cannot turn {t} into [{', '.join(map(str, p.shape))}]: element counts differ",
            code="E403", hint="the product of the new shape must equal the product of the input's")
        if None not in target:
            if (have_c, have_s) != (want_c, want_s):
                raise mismatch
            return [t.with_shape(target)]
        rest = have_s - want_s
        if want_s - have_s or have_c % want_c:
            raise mismatch
        inferred = mul(have_c // want_c, product(sorted(rest.elements(), key=str)))
        return [t.with_shape(inferred if d is None else d for d in target)]

    def build(self, p, inputs):
        unknown = [e for e in p.shape if isinstance(e, str) or e == -1]
        if len(unknown) <= 1:
            return None  # emitted: torch.reshape with the one unknown as -1
        sources = []
        for e in p.shape:
            if isinstance(e, str):
                sources.append(("dim", inputs[0].shape.index(symbol(e))))
            else:
                sources.append(("size", e))
        from .torch_modules import Reshape

        return Reshape(tuple(sources), tuple(p.shape))

    def emit(self, p, graph, args):
        import torch
        sizes = [-1 if isinstance(e, str) else e for e in p.shape]
        return graph.call_function(torch.reshape, (args[0], sizes))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return "[" + ", ".join(map(str, p.shape)) + "]"


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
