"""Dropout for sequences and recurrent state: variational (locked) dropout and zoneout.

Both build torch modules with train/eval behaviour, so ``model.eval()`` turns the noise
off (variational dropout becomes the identity, zoneout its expectation).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, StrictFloat, StrictInt

from .base import FLOAT_DTYPES, Bool, Op, OpParams, Probability, ShapeError
from .recurrent import lazy_classes, torch_class
from .registry import register_op
from .shape import expect_rank

OpenProbability = Annotated[Union[StrictFloat, StrictInt], Field(gt=0, lt=1)]


@register_op
class VariationalDropoutOp(Op):
    """Locked dropout (Gal & Ghahramani, 2016): one mask per sequence and feature, shared
    over time. Shape: [N, T, F] -> [N, T, F] ([T, N, F] with batch_first: false).

    In training, each (sequence, feature) is zeroed with probability p for every time step
    alike — the mask is [N, 1, F] — and the kept ones are scaled by 1/(1-p). Eval: identity.
    """

    name = "variational_dropout"
    category = "dropout"
    storage = "input"  # eval: the input itself
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        p: Probability = 0.5
        batch_first: Bool = True

    def infer(self, p, inputs):
        layout = "[N, T, F]" if p.batch_first else "[T, N, F]"
        expect_rank(self.name, inputs[0], (3,), f"a sequence {layout}")
        return [inputs[0]]

    def build(self, p, inputs):
        return torch_class(__name__, "VariationalDropout")(float(p.p), p.batch_first)

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return f"p={p.p}"


@register_op
class ZoneoutOp(Op):
    """Zoneout (Krueger et al., 2017) on a recurrent state. Inputs: the new state h_t and the
    previous state h_{t-1}, of one shape [*]. Shape: [*], [*] -> [*].

    In training, each unit keeps its previous value with probability p:
    out = mask * h_prev + (1 - mask) * h_new with mask ~ Bernoulli(p), elementwise.
    In eval, the expectation: out = p * h_prev + (1 - p) * h_new.
    """

    name = "zoneout"
    category = "dropout"
    input_dtypes = FLOAT_DTYPES
    min_inputs = 2
    max_inputs = 2

    class Params(OpParams):
        p: OpenProbability  # probability of keeping the previous value

    def infer(self, p, inputs):
        new, prev = inputs
        if new.dtype != prev.dtype:
            raise ShapeError(f"zoneout: the new state is {new.dtype} but the previous state is "
                             f"{prev.dtype}", code="E409")
        if new.shape != prev.shape:
            raise ShapeError(f"zoneout: the new state {new} and the previous state {prev} differ",
                             code="E402", details=(f"input 0 -> {new}", f"input 1 -> {prev}"),
                             hint="zoneout mixes two values of one state: "
                                  "from: [<new state>, <previous state>]")
        return [new]

    def build(self, p, inputs):
        return torch_class(__name__, "Zoneout")(float(p.p))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return f"p={p.p}"


def _torch_modules() -> dict[str, type]:
    """The torch module classes, created on first use so that checking never imports torch."""
    import torch

    class VariationalDropout(torch.nn.Module):
        """Dropout with one mask per sequence and feature, shared over the time dim."""

        def __init__(self, p: float = 0.5, batch_first: bool = True):
            super().__init__()
            self.p = p
            self.batch_first = batch_first

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            n, t, f = (0, 1, 2) if self.batch_first else (1, 0, 2)
            shape = [x.shape[0], x.shape[1], x.shape[2]]
            shape[t] = 1
            keep = 1.0 - self.p
            mask = x.new_empty(shape).bernoulli_(keep)
            return x * (mask / keep if keep > 0 else mask)

        def extra_repr(self):
            return f"p={self.p}, batch_first={self.batch_first}"

    class Zoneout(torch.nn.Module):
        """forward(h_new, h_prev): keep each unit's previous value with probability p."""

        def __init__(self, p: float):
            super().__init__()
            self.p = p

        def forward(self, new, prev):
            if self.training:
                keep_prev = torch.empty_like(new).bernoulli_(self.p).bool()
                return torch.where(keep_prev, prev, new)
            return self.p * prev + (1.0 - self.p) * new

        def extra_repr(self):
            return f"p={self.p}"

    return {"VariationalDropout": VariationalDropout, "Zoneout": Zoneout}


__getattr__ = lazy_classes(globals(), ("VariationalDropout", "Zoneout"), _torch_modules)

__all__ = ["VariationalDropoutOp", "ZoneoutOp"]
