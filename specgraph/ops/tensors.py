"""Tensors a module holds, as nodes: a learnable ``parameter`` (ViT's ``class_token``, its
``encoder.pos_embedding``, ConvNeXt's ``layer_scale``) or a fixed ``buffer``, registered at
exactly the node's path (state_dict key ``class_token``, no ``.weight`` suffix) and usable as an
input of other ops.  Shape: no input -> ``shape`` (fixed sizes: a weight cannot be symbolic).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .base import Float, Op, OpParams, PositiveInt
from .registry import register_op



class _HeldParams(OpParams):
    shape: list[PositiveInt] = Field(min_length=1)
    initializer: Literal["zeros", "ones", "constant", "normal", "trunc_normal", "uniform"] = "zeros"
    std: Float = 0.02  # normal / trunc_normal (truncated at +-2 std, as torch.nn.init.trunc_normal_)
    value: Float = 0.0  # constant
    bound: Float = 1.0  # uniform in [-bound, bound]
    dtype: Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"] = "float32"

    @model_validator(mode="after")
    def _sensible(self):
        if self.std <= 0 or self.bound <= 0:
            raise ValueError("std and bound must be positive")
        return self


def _initial(p) -> "object":
    import torch

    t = torch.empty(p.shape, dtype=getattr(torch, p.dtype))
    with torch.no_grad():
        if p.initializer == "zeros":
            t.zero_()
        elif p.initializer == "ones":
            t.fill_(1)
        elif p.initializer == "constant":
            t.fill_(p.value)
        elif p.initializer == "normal":
            t.normal_(0.0, p.std)
        elif p.initializer == "trunc_normal":
            torch.nn.init.trunc_normal_(t, std=p.std, a=-2 * p.std, b=2 * p.std)
        else:
            t.uniform_(-p.bound, p.bound)
    return t


class _Held(Op):
    category = "tensor"
    min_inputs = 0
    max_inputs = 0
    Params = _HeldParams
    traits = frozenset({Trait.RESIDENT})

    def infer(self, p, inputs):
        return [TensorType(tuple(p.shape), p.dtype)]

    def macs(self, p, inputs, outputs):
        return 0

    def describe(self, p):
        shown = "×".join(map(str, p.shape))
        return shown if p.initializer == "zeros" else f"{shown}, {p.initializer}"


@register_op
class Parameter(_Held):
    """A learnable tensor of ``shape`` (float), initialised by ``initializer``: zeros, ones, constant
    (``value``), normal (``std``), trunc_normal (``std``, cut at 2 std), uniform (``bound``)."""

    name = "parameter"
    aliases = ('weight', 'variable')

    def infer(self, p, inputs):
        from .base import ShapeError
        from .rules import FLOAT_DTYPES

        if p.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"a parameter is learnt, so floating point; found dtype {p.dtype}", code="E409",
                             hint="a fixed integer tensor is a `buffer`")
        return super().infer(p, inputs)

    def build(self, p, inputs):
        import torch

        return torch.nn.Parameter(_initial(p))

    def num_params(self, p, inputs):
        return math.prod(p.shape)


@register_op
class Buffer(_Held):
    """A fixed tensor of ``shape`` saved with the model (state_dict) but not learnt: a relative
    position index, a mask.  Its values come from ``initializer`` or from loaded weights."""

    name = "buffer"

    def build(self, p, inputs):
        import torch

        return torch.nn.Buffer(_initial(p))

    def num_params(self, p, inputs):
        return 0


__all__ = ["Parameter", "Buffer"]
