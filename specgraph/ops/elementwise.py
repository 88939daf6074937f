"""Elementwise math on one tensor: neg, abs, exp, log, sqrt, rsqrt, pow, clamp.
Shape: [*] -> [*] (unchanged).  Each is one functional call (``y = torch.exp(x)``); numbers
as the second operand of add/sub/mul/div are their `by:` param (ops/merge.py)."""

from __future__ import annotations

from typing import Optional

from .activation import _Activation
from pydantic import model_validator

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Float, Op, OpParams, ShapeError, input_details
from .registry import register_op


class _Unary(_Activation):
    category = "math"


@register_op
class Neg(_Unary):
    """-x."""
    name = "neg"
    function = "torch.neg"
    input_dtypes = None  # integers too


@register_op
class Abs(_Unary):
    """|x|."""
    name = "abs"
    function = "torch.abs"
    input_dtypes = None


@register_op
class Exp(_Unary):
    """e ** x."""
    name = "exp"
    function = "torch.exp"


@register_op
class Log(_Unary):
    """The natural logarithm (-inf at 0, nan below)."""
    name = "log"
    function = "torch.log"


@register_op
class Sqrt(_Unary):
    """The square root (nan below 0)."""
    name = "sqrt"
    function = "torch.sqrt"


@register_op
class Rsqrt(_Unary):
    """1 / sqrt(x) (RMSNorm's scale)."""
    name = "rsqrt"
    function = "torch.rsqrt"


@register_op
class Pow(_Unary):
    """x ** exponent."""
    name = "pow"
    function = "torch.pow"

    class Params(OpParams):
        exponent: Float

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.pow, (args[0], p.exponent))

    def describe(self, p):
        return f"** {p.exponent:g}"


@register_op
class Clamp(_Unary):
    """x limited to [min, max]; either bound may be left out (not both)."""
    name = "clamp"
    function = "torch.clamp"
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        min: Optional[Float] = None
        max: Optional[Float] = None

        @model_validator(mode="after")
        def _bounds(self):
            if self.min is None and self.max is None:
                raise ValueError("give `min`, `max` or both, e.g. {op: clamp, min: 0, max: 6}")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min must not exceed max, found {self.min} and {self.max}")
            return self

    def kwargs(self, p):
        return {k: v for k, v in (("min", p.min), ("max", p.max)) if v is not None}


@register_op
class Where(Op):
    """condition ? a : b, element by element: condition (bool), a and b broadcast together.
    Shape: broadcast of the three."""

    name = "where"
    category = "math"
    min_inputs = max_inputs = 3
    traits = frozenset({Trait.ROW_WISE, Trait.MERGE})

    def infer(self, p, inputs):
        from .merge import broadcast_shape

        cond, a, b = inputs
        if cond.dtype != "bool":
            raise ShapeError(f"where's condition is a bool tensor, found {cond.dtype} {cond}", code="E409",
                             details=input_details(inputs), hint="compare first, e.g. a mask input of dtype bool")
        if a.dtype != b.dtype:
            raise ShapeError(f"where's two values need one dtype, found {a.dtype} and {b.dtype}", code="E409",
                             details=input_details(inputs))
        return [a.with_shape(broadcast_shape(self.name, inputs))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.where, tuple(args))


__all__ = ["Where", "Neg", "Abs", "Exp", "Log", "Sqrt", "Rsqrt", "Pow", "Clamp"]
