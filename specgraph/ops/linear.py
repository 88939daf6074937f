"""Fully connected layer."""

from __future__ import annotations

import math

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Op, OpParams, PositiveInt, ShapeError
from .registry import register_op
from .rules import batch1, known_dim

RANK_HINT = "insert {op: flatten} before this node (linear acts on the last dim only)"


@register_op
class Linear(Op):
    """y = x W^T + b over the last dim. Shape: [N, F] -> [N, out] or [N, T, F] -> [N, T, out].

    The in-features F are read from the input and must be concrete. A rank-4 input is
    refused rather than silently applied per pixel: it is nearly always a missing flatten.
    ``any_rank: true`` says it is meant: [*, F] -> [*, out] (a channels-last [N, H, W, C], as in
    ConvNeXt's MLP).
    """

    name = "linear"
    aliases = ('dense', 'fc', 'fully_connected', 'gemm')
    input_dtypes = FLOAT_DTYPES
    category = "linear"
    traits = frozenset({Trait.ROW_WISE, Trait.OVERWRITABLE_OUTPUT})

    class Params(OpParams):
        out: PositiveInt
        bias: Bool = True
        weight_norm: Bool = False
        any_rank: Bool = False

    def infer(self, p, inputs):
        t = inputs[0]
        if p.any_rank and t.rank >= 2:
            pass
        elif t.rank not in (2, 3):
            raise ShapeError(f"linear expects [N, F] or [N, T, F], but got a rank-{t.rank} "
                             f"tensor {t}", code="E410",
                             hint=RANK_HINT if t.rank >= 4 else None)
        known_dim("linear", t, t.rank - 1, "in-feature count")
        return [t.with_shape((*t.shape[:-1], p.out))]

    def build(self, p, inputs):
        import torch
        module = torch.nn.Linear(inputs[0].shape[-1], p.out, bias=p.bias)
        if p.weight_norm:
            module = torch.nn.utils.parametrizations.weight_norm(module)
        return module

    def num_params(self, p, inputs):
        weight = inputs[0].shape[-1] * p.out
        # weight_norm: direction v (weight-sized) plus one gain per output feature
        return weight + (p.out if p.weight_norm else 0) + (p.out if p.bias else 0)

    def macs(self, p, inputs, outputs):
        shape = batch1(outputs[0])  # [1, out] or [1, T, out]; None when T is symbolic
        if shape is None:
            return None
        return math.prod(shape[1:-1]) * inputs[0].shape[-1] * p.out  # every position but the features

    def describe(self, p):
        return f"→ {p.out}"
