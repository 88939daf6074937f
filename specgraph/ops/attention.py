"""Attention: scaled_dot_product_attention (torch's fused kernel), and
multi-head attention whose module is torch.nn.MultiheadAttention's (keys ``in_proj_weight``,
``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``), so that torchvision's ViT and
torch.nn.TransformerEncoderLayer weights load into a spec.  (matmul and einsum: contraction.py.)

Shape: query [N, T, E] (and key, value [N, S, E]) -> [N, T, E] (batch_first; with
``batch_first: false`` the first two dims swap: [T, N, E]).
"""

from __future__ import annotations

import math
from typing import Optional

from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Float, Op, OpParams, PositiveInt, Probability, ShapeError, input_details
from .registry import register_op
from .rules import expect_rank, known_dim


@register_op
class MultiheadAttention(Op):
    """softmax(Q K^T / sqrt(E / heads)) V per head, Q, K, V and the output projected (one
    input: self-attention, query = key = value; three: query, key, value)."""

    name = "multihead_attention"
    aliases = ('mha', 'multi_head_attention', 'self_attention')
    category = "attention"
    min_inputs = 1
    max_inputs = 3
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})  # each sequence of the batch attends within itself

    class Params(OpParams):
        heads: PositiveInt
        dropout: Probability = 0.0  # on the attention weights, in training
        bias: Bool = True
        batch_first: Bool = True
        causal: Bool = False  # position t attends to positions <= t only (a language model)

    def node_traits(self, p, inputs):
        return self.traits if p.batch_first else frozenset()

    def infer(self, p, inputs):
        if len(inputs) == 2:
            raise ShapeError("multihead_attention takes one input (self-attention) or three (query, key, value), "
                             "found 2", code="E408", details=input_details(inputs))
        layout = "[N, T, E]" if p.batch_first else "[T, N, E]"
        for t in inputs:
            expect_rank(self.name, t, (3,), f"a sequence {layout}")
        q = inputs[0]
        embed = known_dim(self.name, q, 2, "embedding size")
        if embed % p.heads:
            raise ShapeError(f"multihead_attention splits the embedding size {embed} into {p.heads} heads, "
                             f"which does not divide it", code="E402", hint="heads must divide E")
        batch = 0 if p.batch_first else 1
        for t in inputs[1:]:
            if t.shape[2] != embed or t.shape[batch] != q.shape[batch]:
                raise ShapeError("multihead_attention: key and value must have the query's batch and embedding size",
                                 code="E402", details=input_details(inputs))
        if len(inputs) == 3 and inputs[1].shape[1 - batch] != inputs[2].shape[1 - batch]:
            raise ShapeError("multihead_attention: key and value must have one length S", code="E402",
                             details=input_details(inputs))
        return [q]

    def build(self, p, inputs):
        from .torch_modules import SpecMultiheadAttention

        return SpecMultiheadAttention(inputs[0].shape[2], p.heads, dropout=float(p.dropout), bias=p.bias,
                                      batch_first=p.batch_first, causal=p.causal)

    def num_params(self, p, inputs):
        e = inputs[0].shape[2]
        return 4 * e * e + (4 * e if p.bias else 0)

    def macs(self, p, inputs, outputs):
        q = inputs[0]
        kv = inputs[1] if len(inputs) == 3 else q
        t, s = (q.shape[1], kv.shape[1]) if p.batch_first else (q.shape[0], kv.shape[0])
        e = q.shape[2]
        if not isinstance(t, int) or not isinstance(s, int):
            return None
        # projections of Q (T rows), K and V (S rows each), the output (T rows); scores and mixing
        return (2 * t + 2 * s) * e * e + 2 * t * s * e

    def describe(self, p):
        return f"{p.heads} heads" + (", causal" if p.causal else "")


@register_op
class ScaledDotProductAttention(Op):
    """softmax(Q K^T · scale + mask) V, torch's fused kernel (never materialising a broadcast):
    q [.., L, E], k [.., S, E], v [.., S, Ev] (and a mask broadcastable to [.., L, S]: bool, True
    attends, or float, added) -> [.., L, Ev]. ``scale`` defaults to 1/sqrt(E); ``dropout`` on the
    attention weights in training only."""

    name = "scaled_dot_product_attention"
    aliases = ('sdpa', 'attention', 'dot_product_attention')
    category = "attention"
    min_inputs = 3
    max_inputs = 4
    input_dtypes = FLOAT_DTYPES + ("bool",)

    class Params(OpParams):
        causal: Bool = False
        dropout: Probability = 0.0
        scale: Optional[Float] = None

    def infer(self, p, inputs):
        q, k, v = inputs[:3]
        for t in (q, k, v):
            if t.dtype not in FLOAT_DTYPES:
                raise ShapeError(f"scaled_dot_product_attention: q, k and v are floating point, found {t.dtype}",
                                 code="E409", details=input_details(inputs))
            if t.rank < 2:
                raise ShapeError(f"scaled_dot_product_attention needs [.., L, E] tensors, found {t}", code="E410")
        if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2] \
                or k.shape[:-2] != v.shape[:-2]:
            raise ShapeError("scaled_dot_product_attention: q [.., L, E], k [.., S, E] and v [.., S, Ev] must agree",
                             code="E402", details=input_details(inputs))
        if len(inputs) == 4:
            from .merge import broadcast_shape

            if p.causal:
                raise ShapeError("scaled_dot_product_attention takes a mask or `causal: true`, not both", code="E408")
            scores = q.with_shape((*q.shape[:-1], k.shape[-2]))
            if tuple(broadcast_shape(self.name, [scores, inputs[3]])) != tuple(scores.shape):
                raise ShapeError(f"scaled_dot_product_attention: the mask {inputs[3]} must broadcast to the scores "
                                 f"{scores}", code="E402", details=input_details(inputs))
        return [q.with_shape((*q.shape[:-1], v.shape[-1]))]

    def build(self, p, inputs):
        from .torch_modules import Attention

        return Attention(float(p.dropout), p.causal, p.scale)

    def num_params(self, p, inputs):
        return 0

    def macs(self, p, inputs, outputs):
        from .rules import batch1

        q, k, v = (batch1(t) for t in inputs[:3])
        if q is None or k is None or v is None:
            return None
        return math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])

    def describe(self, p):
        return "causal" if p.causal else ""


__all__ = ["MultiheadAttention", "ScaledDotProductAttention"]
