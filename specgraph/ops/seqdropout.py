"""Dropout for sequences and recurrent state: variational (locked) dropout and zoneout.

Both build torch modules with train/eval behaviour, so ``model.eval()`` turns the noise
off (variational dropout becomes the identity, zoneout its expectation).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, StrictFloat, StrictInt

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, InputDetail, Op, OpParams, Probability, ShapeError
from .registry import register_op
from .rules import expect_rank

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
    traits = frozenset({Trait.IDENTITY_IN_EVAL})
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        p: Probability = 0.5
        batch_first: Bool = True

    def infer(self, p, inputs):
        layout = "[N, T, F]" if p.batch_first else "[T, N, F]"
        expect_rank(self.name, inputs[0], (3,), f"a sequence {layout}")
        return [inputs[0]]

    def build(self, p, inputs):
        from .torch_modules import VariationalDropout

        return VariationalDropout(float(p.p), p.batch_first)

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return f"p={p.p:g}"


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
                             code="E402", details=(InputDetail(0, str(new)), InputDetail(1, str(prev))),
                             hint="zoneout mixes two values of one state: "
                                  "from: [<new state>, <previous state>]")
        return [new]

    def build(self, p, inputs):
        from .torch_modules import Zoneout

        return Zoneout(float(p.p))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        return f"p={p.p:g}"


__all__ = ["VariationalDropoutOp", "ZoneoutOp"]
