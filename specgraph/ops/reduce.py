"""Reductions over dims and adding a unit dim: what word2vec's CBOW average and
negative-sampling dot products need.

mean / sum:  [*] -> [*] without ``dim`` (or with it as 1 when ``keepdim``).
unsqueeze:   [*] -> [*] with a new dim of size 1 at ``dim``.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Int, Op, OpParams, ShapeError, normalize_dim
from .registry import register_op


def _dims(p, rank: int) -> list[int]:
    dims = p.dim if isinstance(p.dim, list) else [p.dim]
    out = [normalize_dim(d, rank, "dim") for d in dims]
    if len(set(out)) != len(out):
        raise ShapeError(f"dim lists an axis twice: {p.dim}", code="E405")
    return out


class _Reduce(Op):
    category = "reshape"
    function_name = ""

    class Params(OpParams):
        # at least one dim: torch reads an empty list as "every dim" (sum(x, dim=[]) is a scalar),
        # the opposite of what the list says
        dim: Union[Int, Annotated[list[Int], Field(min_length=1)]]
        keepdim: Bool = False

    def infer(self, p, inputs):
        t = inputs[0]
        axes = _dims(p, t.rank)
        shape = [1 if i in axes else d for i, d in enumerate(t.shape)] if p.keepdim else \
            [d for i, d in enumerate(t.shape) if i not in axes]
        return [t.with_shape(shape)]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(getattr(torch, self.function_name), (args[0],),
                                   {"dim": p.dim if isinstance(p.dim, int) else tuple(p.dim), "keepdim": p.keepdim})

    def describe(self, p):
        return f"dim {p.dim}"


@register_op
class Mean(_Reduce):
    """Average over ``dim`` (one or several). [*] -> [*] less those dims."""

    name = "mean"
    function_name = "mean"
    input_dtypes = FLOAT_DTYPES


@register_op
class Sum(_Reduce):
    """Sum over ``dim`` (one or several). [*] -> [*] less those dims."""

    name = "sum"
    function_name = "sum"


@register_op
class Unsqueeze(Op):
    """Insert a dim of size 1 at ``dim`` (counted in the output). [*] -> [*] with one more dim."""

    name = "unsqueeze"
    category = "reshape"
    traits = frozenset({Trait.VIEW})

    class Params(OpParams):
        dim: Int

    def view_strides(self, p, shape, strides, out_shape):
        axis = p.dim % len(out_shape)
        new = list(strides)
        new.insert(axis, shape[axis] * strides[axis] if axis < len(shape) else 1)
        return tuple(new)

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank + 1, "dim")
        shape = list(t.shape)
        shape.insert(axis, 1)
        return [t.with_shape(shape)]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.unsqueeze, (args[0], p.dim))

    def describe(self, p):
        return f"dim {p.dim}"
