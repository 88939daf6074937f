"""Self-attention on packed oneDNN projections for CPU inference (a pass of
:func:`specgraph.torch.passes.optimize`).

In eval mode ``nn.MultiheadAttention`` runs torch's fused kernel, whose input and output
projections are MKL's sgemm on the weights as stored — most of the attention's arithmetic.
:class:`PackedSelfAttention` computes the same with the projections on oneDNN's packed matmul
(as packed_linear.py does for ``nn.Linear``), the heads' attention by
``F.scaled_dot_product_attention`` (its fused CPU kernel), and the residual add after the
attention (a transformer block's ``x + attention(x)``) fused into the output projection.  It
holds the attention's own parameters under their names (``in_proj_weight``, ``in_proj_bias``,
``out_proj.*``): the state_dict keys do not change.  Only self-attention (one input) is
replaced; where the packed kernel does not apply, the original module's forward runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...ops.torch_modules import SpecMultiheadAttention
from .base import SpecPass
from .packed_linear import packed_weight
from .prepack import PrepackedConv2d, _set_submodule, fuse_epilogue, replace_fused


class PackedSelfAttention(nn.Module):
    """``attention(x, x, x) [+ other]``: x [N, T, E] (``batch_first``, else [T, N, E]) -> the same
    shape, as the :class:`SpecMultiheadAttention` it was made from."""

    fresh_output = True

    def __init__(self, attention: SpecMultiheadAttention, residual: bool = False):
        super().__init__()
        self.in_proj_weight, self.in_proj_bias = attention.in_proj_weight, attention.in_proj_bias
        self.out_proj = attention.out_proj
        self.residual = residual
        self.__dict__["attention"] = attention  # for the plain path; its parameters are the ones above
        self._packed: dict = {}  # (projection, rows) -> (weight version, packed weight)

    def extra_repr(self) -> str:
        att = self.attention
        return f"embed_dim={att.embed_dim}, num_heads={att.num_heads}, causal={att.causal}, residual={self.residual}"

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        att = self.attention
        if x.dtype is not torch.float32 or x.device.type != "cpu" or x.dim() != 3 or torch.is_grad_enabled():
            y = att(x)
            return y + other if self.residual else y
        if not att.batch_first:
            x = x.transpose(0, 1)
        x = x.contiguous()
        n, t, e = x.shape
        heads = att.num_heads
        qkv = torch.ops.mkldnn._linear_pointwise.default(x, packed_weight(self._packed.setdefault("in", {}),
                                                                          self.in_proj_weight, x),
                                                         self.in_proj_bias, "none", (), "")
        q, k, v = qkv.view(n, t, 3, heads, e // heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=att.causal)  # [N, heads, T, E / heads]
        attended = attended.transpose(1, 2).reshape(n, t, e)
        out = packed_weight(self._packed.setdefault("out", {}), self.out_proj.weight, attended)
        if not att.batch_first:  # the result in [T, N, E]
            if self.residual:
                other = other.transpose(0, 1).contiguous()
            y = self._project(attended, out, other)
            return y.transpose(0, 1).contiguous()
        return self._project(attended, out, other)

    def _project(self, attended: torch.Tensor, out: torch.Tensor, other: torch.Tensor | None) -> torch.Tensor:
        if not self.residual:
            return torch.ops.mkldnn._linear_pointwise.default(attended, out, self.out_proj.bias, "none", (), "")
        if other.dtype is torch.float32 and other.is_contiguous() and other.shape == attended.shape:
            return torch.ops.mkldnn._linear_pointwise.binary(attended, other, out, self.out_proj.bias, "add")
        return torch.ops.mkldnn._linear_pointwise.default(attended, out, self.out_proj.bias, "none", (), "") + other

    # a copy (or a pickle) packs its own weights on first use, as the packed convolutions do
    __deepcopy__ = PrepackedConv2d.__deepcopy__
    __getstate__ = PrepackedConv2d.__getstate__


def _self_attention(module: nn.Module | None, node: fx.Node) -> bool:
    # one input (key and value default to the query); one packed in-projection weight
    return isinstance(module, SpecMultiheadAttention) and len(node.args) == 1 and not node.kwargs and \
        module._qkv_same_embed_dim and module.in_proj_weight is not None and module.bias_k is None and \
        not module.add_zero_attn


class PackAttention(SpecPass):
    """Replace each self-attention :class:`SpecMultiheadAttention` by a :class:`PackedSelfAttention`,
    the residual add after it folded in; ``changed``: the attention paths, ``+add`` marked."""

    name = "pack_attention"

    def run(self, gm: fx.GraphModule) -> list[str]:
        done = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not _self_attention(gm.get_submodule(node.target), node):
                continue
            fused, _, other, _ = fuse_epilogue(gm, node, post_after_residual=False)
            if other is None:
                fused = []  # an activation right after attention: left as it is
            replace_fused(gm, node, fused, other, False)
            _set_submodule(gm, node.target, PackedSelfAttention(gm.get_submodule(node.target), other is not None))
            done.append(node.target + ("+add" if other is not None else ""))
        return done
