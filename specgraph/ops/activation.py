"""Elementwise activations and softmax. Shape: [*] -> [*] (unchanged).

None has weights or train/eval behaviour, so each is emitted as one functional call and
``print(model.code)`` reads like hand-written torch (``relu = torch.relu(x)``).  Each op
names its function as text so that checking a spec never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from .base import FLOAT_DTYPES, Float, Int, Op, OpParams, normalize_dim
from .registry import register_op


class _Activation(Op):
    """Applies ``function`` (a "module.attr" path) with ``kwargs(p)``. Shape unchanged."""

    category = "activation"
    function = ""
    input_dtypes = FLOAT_DTYPES  # torch computes most of them in floating point only

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

    def kwargs(self, p):
        return {"dim": p.dim}


@register_op
class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) along dim."""
    name = "softmax"
    function = "torch.softmax"


@register_op
class LogSoftmax(_Softmax):
    """log(softmax(x)) along dim, computed stably."""
    name = "log_softmax"
    function = "torch.log_softmax"
