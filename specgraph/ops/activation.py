"""Elementwise activations and softmax. Shape: [*] -> [*] (unchanged).

None has weights or train/eval behaviour, so each is emitted as one functional call and
``print(model.code)`` reads like hand-written torch (``relu = torch.relu(x)``).  Each op
names its function as text so that checking a spec never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Float, Int, Op, OpParams, normalize_dim
from .registry import register_op


class _Activation(Op):
    """Applies ``function`` (a "module.attr" path) with ``kwargs(p)``. Shape unchanged."""

    category = "activation"
    function = ""
    input_dtypes = FLOAT_DTYPES  # torch computes most of them in floating point only
    traits = frozenset({Trait.ROW_WISE})

    def kwargs(self, p) -> dict[str, Any]:
        return {}

    def infer(self, p, inputs):
        return [inputs[0]]

    def emit(self, p, graph, args):
        module, attr = self.function.rsplit(".", 1)
        fn = getattr(importlib.import_module(module), attr)
        return graph.call_function(fn, (args[0],), self.kwargs(p))

    def describe(self, p):
        return ", ".join(f"{k}={v}" for k, v in self.kwargs(p).items())


@register_op
class ReLU(_Activation):
    """max(x, 0)."""
    name = "relu"
    function = "torch.relu"
    input_dtypes = None  # integers too
    traits = frozenset({Trait.ROW_WISE, Trait.INPLACE_SAFE})

    def make_in_place(self, fx_node):
        import torch

        if fx_node.op != "call_function" or fx_node.target is not torch.relu or fx_node.kwargs or len(fx_node.args) != 1:
            return False
        fx_node.target = torch.relu_
        return True


@register_op
class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise."""
    name = "leaky_relu"
    function = "torch.nn.functional.leaky_relu"

    class Params(OpParams):
        negative_slope: Float = 0.01

    def kwargs(self, p):
        return {"negative_slope": p.negative_slope}


@register_op
class GELU(_Activation):
    """x * Phi(x); approximate "tanh" uses the tanh approximation."""
    name = "gelu"
    function = "torch.nn.functional.gelu"

    class Params(OpParams):
        approximate: Literal["none", "tanh"] = "none"

    def kwargs(self, p):
        return {} if p.approximate == "none" else {"approximate": p.approximate}


@register_op
class SiLU(_Activation):
    """x * sigmoid(x) (swish)."""
    name = "silu"
    function = "torch.nn.functional.silu"


@register_op
class ELU(_Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    name = "elu"
    function = "torch.nn.functional.elu"

    class Params(OpParams):
        alpha: Float = 1.0

    def kwargs(self, p):
        return {"alpha": p.alpha}


@register_op
class SELU(_Activation):
    """Self-normalizing ELU (pairs with alpha_dropout)."""
    name = "selu"
    function = "torch.selu"


@register_op
class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""
    name = "sigmoid"
    function = "torch.sigmoid"


@register_op
class Tanh(_Activation):
    """tanh(x)."""
    name = "tanh"
    function = "torch.tanh"


class _SoftmaxParams(OpParams):
    dim: Int = 1


class _Softmax(_Activation):
    """Normalizes along ``dim`` (default 1, the class/channel dim)."""

    Params = _SoftmaxParams

    def infer(self, p, inputs):
        normalize_dim(p.dim, inputs[0].rank)  # E405 when out of range
        return [inputs[0]]

    def node_traits(self, p, inputs):
        # normalised along the batch dim, rows are not independent
        batch_wise = normalize_dim(p.dim, inputs[0].rank) == 0
        return self.traits - {Trait.ROW_WISE} if batch_wise else self.traits

    def kwargs(self, p):
        return {"dim": p.dim}


@register_op
class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) along dim."""
    name = "softmax"
    function = "torch.softmax"
    traits = frozenset({Trait.ROW_WISE, Trait.PROBABILITIES})


@register_op
class LogSoftmax(_Softmax):
    """log(softmax(x)) along dim, computed stably."""
    name = "log_softmax"
    function = "torch.log_softmax"
    traits = frozenset({Trait.ROW_WISE, Trait.LOG_PROBABILITIES})
