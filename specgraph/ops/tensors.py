"""Tensors a module holds, as nodes: a learnable ``parameter`` (ViT's ``class_token``, its
``encoder.pos_embedding``, ConvNeXt's ``layer_scale``) or a fixed ``buffer`` (Swin's
``relative_position_index``), registered at exactly the node's path (state_dict key
``class_token``, no ``.weight`` suffix) and usable as an input of other ops.  Shape: no input ->
``shape`` (fixed sizes: a weight cannot be symbolic).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import Field, model_validator

from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .base import Float, Op, OpParams, PositiveInt
from .registry import register_op



FLOATS = ("float32", "float64", "float16", "bfloat16")


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
        if self.initializer in ("normal", "trunc_normal", "uniform") and self.dtype not in FLOATS:
            # torch draws random values in floating point only (found by tests/test_op_soundness.py)
            raise ValueError(f"initializer {self.initializer} draws floating-point values; an {self.dtype} tensor "
                             f"starts as zeros, ones or a constant".replace("an bool", "a bool"))
        return self


class _BufferParams(_HeldParams):
    initializer: Literal["zeros", "ones", "constant", "normal", "trunc_normal", "uniform",
                         "relative_position_index"] = "zeros"
    window: Optional[list[PositiveInt]] = Field(default=None, min_length=2, max_length=2)  # [Wh, Ww]

    @model_validator(mode="after")
    def _index_fits_its_window(self):
        if self.initializer != "relative_position_index":
            if self.window is not None:
                raise ValueError("`window` is read only by initializer relative_position_index")
            return self
        if self.window is None:
            raise ValueError("initializer relative_position_index needs the attention window: `window: [7, 7]`")
        tokens = self.window[0] * self.window[1]
        if math.prod(self.shape) != tokens ** 2:
            raise ValueError(f"the relative position index of a {self.window[0]}×{self.window[1]} window has "
                             f"{tokens}² = {tokens ** 2} entries (Swin's shape is [{tokens ** 2}]), but shape "
                             f"{self.shape} holds {math.prod(self.shape)}")
        if self.dtype not in ("int64", "int32"):
            raise ValueError(f"a relative position index is an integer index: write `dtype: int64`, not {self.dtype}")
        return self


def relative_position_index(window: list[int]) -> "object":
    """Swin's pairwise relative position index of a ``window`` [Wh, Ww] (torchvision's
    ``ShiftedWindowAttention.define_relative_position_index``), shape [(Wh·Ww)²], int64: for
    tokens a, b of the window in row-major order, with offsets dh = row(a) - row(b) and
    dw = col(a) - col(b), entry a·Wh·Ww + b is (dh + Wh - 1)·(2·Ww - 1) + dw + Ww - 1, the row of
    that offset in the bias table [(2·Wh - 1)·(2·Ww - 1), heads]."""
    import torch

    wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)  # [2, T]
    offsets = coords[:, :, None] - coords[:, None, :]  # [2, T, T]: token a's row and column minus token b's
    return ((offsets[0] + wh - 1) * (2 * ww - 1) + offsets[1] + ww - 1).flatten()


def _initial(p) -> "object":
    import torch

    if p.initializer == "relative_position_index":
        return relative_position_index(p.window).reshape(p.shape).to(getattr(torch, p.dtype))
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
    """A fixed tensor of ``shape`` saved with the model (state_dict) but not learnt: a mask, a
    relative position index.  Its values come from ``initializer`` (parameter's, or
    ``relative_position_index`` of an attention ``window`` [Wh, Ww]: Swin's index, shape
    [(Wh·Ww)²], dtype int64) or from loaded weights.

    Why a named initializer for Swin's index: torchvision computes that buffer from the window
    size, so a freshly built model must hold the same values without loading any; the spec names
    the rule and its two ints and specgraph computes it (nothing written in a spec is executed).
    Spelling the index out with general ops (arange, meshgrid, integer arithmetic) would recompute
    a constant on every call and take a dozen nodes, and a Swin-only op would repeat what this op
    does already: hold a tensor at the node's path (state_dict key ``attn.relative_position_index``).
    """

    name = "buffer"
    Params = _BufferParams

    def build(self, p, inputs):
        import torch

        return torch.nn.Buffer(_initial(p))

    def num_params(self, p, inputs):
        return 0

    def num_buffers(self, p, inputs):
        return math.prod(p.shape)

    def describe(self, p):
        window = f" {p.window[0]}×{p.window[1]}" if p.window else ""
        return super().describe(p) + window


__all__ = ["Parameter", "Buffer", "relative_position_index"]
