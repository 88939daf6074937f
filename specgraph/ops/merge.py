"""Ops joining several tensors (add, mul, concat) and splitting one into named ports
(chunk, split).

Errors about disagreeing inputs list every input's full shape as an ``InputDetail`` each;
the compiler writes them with the producing nodes' names.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Optional

from pydantic import Field, field_validator, model_validator

from ..ir.dims import Dim, add, floordiv, is_concrete
from ..ir.traits import Trait
from .base import (FLOAT_DTYPES, Float, Int, Op, OpParams, PositiveInt, ShapeError, Str, TensorType, input_details,
                   normalize_dim)
from .registry import register_op
from .rules import require, unless_along_batch

CHANNEL_HINT = ("the branches give different channel counts; a 1×1 conv2d (projection) on "
                "the shorter path fixes it")
PORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _disagree(op: str, axis: int, found: list[Dim], inputs, why: str) -> ShapeError:
    sizes = ", ".join(dict.fromkeys(map(str, found)))
    return ShapeError(f"{op}: inputs disagree on dim {axis} ({sizes}); {why}", code="E402",
                      hint=CHANNEL_HINT if axis == 1 else None, details=input_details(inputs))


def broadcast_shape(op: str, inputs: list[TensorType]) -> tuple[Dim, ...]:
    """numpy broadcasting: shapes align on the right, and a dim of 1 stretches to any size.

    A symbolic dim broadcasts only against 1 or an equal symbolic dim: N against 8 might
    fit at run time, but nothing proves it, so it is refused.
    """
    rank = max(t.rank for t in inputs)
    out: list[Dim] = []
    for axis in range(rank):
        dims = [t.shape[axis - rank + t.rank] for t in inputs if axis - rank + t.rank >= 0]
        sizes = list(dict.fromkeys(d for d in dims if d != 1))
        if len(sizes) > 1:
            why = "they cannot broadcast (each must be equal or 1)"
            if not all(is_concrete(d) for d in sizes):
                why += "; a symbolic size broadcasts only against 1 or the same symbol"
            raise _disagree(op, axis, dims, inputs, why)
        out.append(sizes[0] if sizes else 1)
    return tuple(out)


class _ScalarParams(OpParams):
    by: Optional[Float] = None  # a number as the second operand: {op: mul, by: 0.5} is x * 0.5


class _Broadcasting(Op):
    """Elementwise over 2+ inputs with broadcasting, or over one input and the number ``by``.
    Shape: broadcast of the input shapes ([*] -> [*] with ``by``)."""

    category = "merge"
    min_inputs = 2
    max_inputs = None
    Params = _ScalarParams
    function = operator.add
    # a new tensor; the backward of add, sub, mul and div reads the inputs, never the result
    traits = frozenset({Trait.ROW_WISE, Trait.MERGE, Trait.OVERWRITABLE_OUTPUT})

    def input_range(self, p):
        return (1, 1) if p.by is not None else (self.min_inputs, self.max_inputs)

    def infer(self, p, inputs):
        if p.by is not None:
            if inputs[0].dtype not in FLOAT_DTYPES:  # an int tensor times 0.5 would turn float
                raise ShapeError(f"{self.name} with `by` expects a floating-point input, found {inputs[0].dtype} "
                                 f"{inputs[0]}", code="E409", details=input_details(inputs))
            return [inputs[0]]
        return [inputs[0].with_shape(broadcast_shape(self.name, inputs))]

    def emit(self, p, graph, args):
        if p.by is not None:
            return graph.call_function(self.function, (args[0], p.by))
        node = args[0]
        for other in args[1:]:  # a chain of binary ops reads as `add_1 = add + z`
            node = graph.call_function(self.function, (node, other))
        return node

    def describe(self, p):
        return "" if p.by is None else f"by {p.by:g}"


@register_op
class Add(_Broadcasting):
    """Elementwise sum (ResNet skip edges). [*a], [*b], ... -> [broadcast(a, b, ...)]."""

    name = "add"
    aliases = ('plus',)
    function = operator.add
    traits = frozenset({Trait.ROW_WISE, Trait.MERGE, Trait.INPLACE_SAFE, Trait.OVERWRITABLE_OUTPUT})

    def node_traits(self, p, inputs):
        # in place: `a + b` or `a + by` overwrites a; a chain's later adds read a fresh sum anyway
        return self.traits if len(inputs) <= 2 else self.traits - {Trait.INPLACE_SAFE}

    def make_in_place(self, fx_node):
        # `a + b` -> `a.add_(b)`, `a + 0.5` -> `a.add_(0.5)`
        if fx_node.op != "call_function" or fx_node.target is not operator.add or fx_node.kwargs \
                or len(fx_node.args) != 2 or not hasattr(fx_node.args[0], "op"):
            return False
        fx_node.op, fx_node.target = "call_method", "add_"
        return True


@register_op
class Mul(_Broadcasting):
    """Elementwise product (gates, attention). [*a], [*b], ... -> [broadcast(a, b, ...)]."""

    name = "mul"
    aliases = ('multiply',)
    function = operator.mul


@register_op
class Sub(_Broadcasting):
    """Elementwise difference a - b (GRU's interpolation between states). [*a], [*b] -> [broadcast(a, b)]."""

    name = "sub"
    max_inputs = 2
    function = operator.sub


@register_op
class Div(_Broadcasting):
    """Elementwise quotient a / b (attention's 1/sqrt(d) scale, with `by`). [*a], [*b] -> [broadcast(a, b)]."""

    name = "div"
    aliases = ('divide', 'truediv')
    max_inputs = 2
    function = operator.truediv

    def infer(self, p, inputs):
        if p.by is None and any(t.dtype not in FLOAT_DTYPES for t in inputs):  # torch's / of ints is float
            raise ShapeError(f"div expects floating-point inputs, found {', '.join(t.dtype for t in inputs)}",
                             code="E409", details=input_details(inputs))
        return super().infer(p, inputs)


@register_op
class Concat(Op):
    """Joins inputs along ``dim``; every other dim must agree. Shape: sizes on dim add up."""

    name = "concat"
    aliases = ('cat', 'concatenate')
    category = "merge"
    max_inputs = None
    traits = frozenset({Trait.ROW_WISE, Trait.MERGE})

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    class Params(OpParams):
        dim: Int = 1

    def infer(self, p, inputs):
        first = inputs[0]
        if any(t.rank != first.rank for t in inputs):
            raise ShapeError("concat: inputs have different ranks ("
                             + ", ".join(str(t.rank) for t in inputs) + ")", code="E402",
                             details=input_details(inputs))
        axis = normalize_dim(p.dim, first.rank)
        for i in range(first.rank):
            dims = [t.shape[i] for t in inputs]
            if i != axis and len(set(dims)) > 1:
                raise _disagree("concat", i, dims, inputs, f"only dim {axis} may differ")
        total: Dim = 0
        for t in inputs:
            total = add(total, t.shape[axis])
        return [first.with_shape((*first.shape[:axis], total, *first.shape[axis + 1:]))]

    def emit(self, p, graph, args):
        import torch
        return graph.call_function(torch.cat, (list(args),), {"dim": p.dim})

    def describe(self, p):
        return f"dim {p.dim}"


class _PortParams(OpParams):
    """Params of a multi-output op: optional names of its output ports."""

    dim: Int = 1
    names: Optional[Annotated[list[Str], Field(min_length=1)]] = None

    @field_validator("names")
    @classmethod
    def _identifiers(cls, names):
        if names is not None:
            bad = [n for n in names if not PORT_RE.match(n)]
            if bad:
                raise ValueError(f"port names must be identifiers, found {bad}")
            if len(set(names)) != len(names):
                raise ValueError(f"port names must be unique, found {names}")
        return names


@register_op
class Chunk(Op):
    """Splits ``dim`` into ``chunks`` equal parts, one output port each ("0", "1", ... or
    ``names``). Shape: [.., D, ..] -> chunks x [.., D/chunks, ..].

    Unlike torch.chunk, which lets the last chunk be smaller (or yields fewer chunks), a
    D must divide exactly, so the ports are fixed before run time (a symbolic D is checked
    when the model is called).
    """

    name = "chunk"
    category = "split"
    traits = frozenset({Trait.ROW_WISE, Trait.VIEW})  # slices of the input

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def view_strides(self, p, shape, strides, out_shape):
        return strides

    class Params(_PortParams):
        chunks: PositiveInt

        @model_validator(mode="after")
        def _count(self):
            if self.names is not None and len(self.names) != self.chunks:
                raise ValueError(f"{len(self.names)} names for {self.chunks} chunks")
            return self

    def output_ports(self, p):
        return tuple(p.names) if p.names else tuple(str(i) for i in range(p.chunks))

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        d = t.shape[axis]
        require(d, multiple_of=p.chunks, code="E407", hint="use split with explicit sizes for unequal parts",
                message=f"chunk: dim {axis} of {t} has size {d}, which must divide into {p.chunks} equal chunks")
        piece = t.with_shape((*t.shape[:axis], floordiv(d, p.chunks), *t.shape[axis + 1:]))
        return [piece] * p.chunks

    def emit(self, p, graph, args):
        import torch
        if p.chunks == 1:  # one port: a single-output op hands back the tensor, not a tuple
            return args[0]
        return graph.call_function(torch.chunk, (args[0], p.chunks), {"dim": p.dim})

    def describe(self, p):
        return f"{p.chunks} on dim {p.dim}"


@register_op
class Split(Op):
    """Splits ``dim`` into pieces of ``sizes`` (or len(names) pieces of ``size`` each), one
    output port per piece ("0", "1", ... or ``names``). Shape: [.., D, ..] -> [.., s_i, ..].

    The sizes must add up to D exactly, so D must be concrete. ``size`` needs ``names``: the
    ports must be known before the input is.
    """

    name = "split"
    category = "split"
    traits = frozenset({Trait.ROW_WISE, Trait.VIEW})  # slices of the input

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def view_strides(self, p, shape, strides, out_shape):
        return strides

    class Params(_PortParams):
        sizes: Optional[Annotated[list[PositiveInt], Field(min_length=1)]] = None
        size: Optional[PositiveInt] = None

        @model_validator(mode="after")
        def _pieces(self):
            if (self.sizes is None) == (self.size is None):
                raise ValueError("split takes exactly one of `sizes` (a list) or `size`")
            if self.size is not None and self.names is None:
                raise ValueError("split with `size` needs `names` (one per piece); "
                                 "or give `sizes` as a list")
            if self.sizes is not None and self.names is not None \
                    and len(self.names) != len(self.sizes):
                raise ValueError(f"{len(self.names)} names for {len(self.sizes)} sizes")
            return self

    @staticmethod
    def piece_sizes(p) -> list[int]:
        return list(p.sizes) if p.sizes is not None else [p.size] * len(p.names)

    def output_ports(self, p):
        n = len(self.piece_sizes(p))
        return tuple(p.names) if p.names else tuple(str(i) for i in range(n))

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        d = t.shape[axis]
        sizes = self.piece_sizes(p)
        if not is_concrete(d):
            raise ShapeError(f"split needs a concrete size on dim {axis}, found '{d}' in {t}",
                             code="E406", hint="use chunk to cut a symbolic dim in equal parts")
        if sum(sizes) != d:
            raise ShapeError(f"split sizes {sizes} add up to {sum(sizes)}, but dim {axis} of {t} "
                             f"is {d}", code="E407", hint=f"make the sizes add up to {d}")
        return [t.with_shape((*t.shape[:axis], s, *t.shape[axis + 1:])) for s in sizes]

    def emit(self, p, graph, args):
        import torch
        if len(self.piece_sizes(p)) == 1:  # one port: hand back the tensor, not a tuple
            return args[0]
        return graph.call_function(torch.split, (args[0], self.piece_sizes(p)), {"dim": p.dim})

    def describe(self, p):
        return f"{self.piece_sizes(p)} on dim {p.dim}"
