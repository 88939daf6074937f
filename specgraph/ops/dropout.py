"""Dropout variants. Shape: [*] -> [*] (unchanged).

Each builds a torch module, not a functional call, so that ``model.eval()`` turns it off
the way users expect.
"""

from __future__ import annotations

from typing import Literal

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Op, OpParams, Probability
from .registry import register_op
from .rules import expect_rank


class _DropoutParams(OpParams):
    p: Probability = 0.5  # probability of zeroing an element (or a channel, for dropout2d)


class _Dropout(Op):
    category = "dropout"
    traits = frozenset({Trait.IDENTITY_IN_EVAL})  # in eval mode torch hands the input back
    input_dtypes = FLOAT_DTYPES
    Params = _DropoutParams
    module = ""

    def infer(self, p, inputs):
        return [inputs[0]]

    def build(self, p, inputs):
        import torch
        return getattr(torch.nn, self.module)(p.p)

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return f"p={p.p:g}"


@register_op
class Dropout(_Dropout):
    """Zeroes each element with probability p in training and scales by 1/(1-p)."""

    name = "dropout"
    module = "Dropout"


@register_op
class Dropout2d(_Dropout):
    """Spatial dropout: zeroes whole channels. Shape: [N, C, H, W] or [C, H, W], unchanged."""

    name = "dropout2d"
    module = "Dropout2d"

    def infer(self, p, inputs):
        expect_rank("dropout2d", inputs[0], (3, 4), "[N, C, H, W] or [C, H, W]")
        return [inputs[0]]


@register_op
class AlphaDropout(_Dropout):
    """Dropout that keeps SELU's self-normalizing mean and variance."""

    name = "alpha_dropout"
    module = "AlphaDropout"


@register_op
class DropPath(_Dropout):
    """Stochastic depth (torchvision.ops.StochasticDepth): drops a residual branch whole, per
    sample (``mode: row``) or for the batch (``batch``), in training; the identity in eval."""

    name = "drop_path"
    aliases = ('stochastic_depth', 'droppath')

    class Params(OpParams):
        p: Probability = 0.0
        mode: Literal["row", "batch"] = "row"

    def build(self, p, inputs):
        from .torch_modules import StochasticDepth

        return StochasticDepth(float(p.p), p.mode)

    def describe(self, p):
        return f"p={p.p:g}" + ("" if p.mode == "row" else ", batch")
