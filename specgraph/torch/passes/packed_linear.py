"""Packed oneDNN linear layers for CPU inference, with what follows them fused in (a pass of
:func:`specgraph.torch.passes.optimize`).

``F.linear`` on CPU is MKL's sgemm on the weight as stored; oneDNN's matmul on a weight
reordered once into its blocked layout for the number of rows (``torch.ops.mkldnn.
_reorder_linear_weight``, ``_linear_pointwise``: what torch.compile's CPU backend uses) ran
15–25 % faster on the AVX-512 machines measured (BENCHMARKS.md), and applies in the same kernel
the activation after it (ViT's GELU, MobileNetV3's hardswish) or a residual add (a transformer's
``x + mlp(x)``; oneDNN's linear takes one or the other, not both).  This pass replaces each
``nn.Linear`` by a :class:`PackedLinear` holding the same ``weight``/``bias`` parameters.

A weight is packed on the first call with each number of rows and remade when it changes;
where the packed kernel does not apply (autograd recording, another dtype or device, a
non-contiguous input, an operand of another shape) the module computes the same with
``F.linear`` and torch's functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from .base import SpecPass
from .epilogue import NONE, PostOp
from .prepack import PrepackedConv2d, _set_submodule, fuse_epilogue, replace_fused


class PackedLinear(nn.Module):
    """``post(linear(x))`` or ``linear(x) + other`` on oneDNN, the weight packed per row count.

    x: [*, F_in] -> [*, F_out], as the ``nn.Linear`` it was made from; ``other`` (when
    ``residual``): [*, F_out]."""

    fresh_output = True

    def __init__(self, linear: nn.Linear, post: PostOp = NONE, residual: bool = False):
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias
        self.post, self.residual = post, residual
        self._packed: dict = {}  # rows -> (weight version, packed weight)

    def extra_repr(self) -> str:
        return (f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, "
                f"bias={self.bias is not None}, residual={self.residual}, post={self.post}")

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        weight = self.weight
        if x.dtype is torch.float32 and x.device.type == "cpu" and x.is_contiguous() and not (
                torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
            packed = packed_weight(self._packed, weight, x)
            if not self.residual:
                post = self.post
                return torch.ops.mkldnn._linear_pointwise.default(x, packed, self.bias, post.attr, post.scalars,
                                                                  post.algorithm)
            if other.dtype is torch.float32 and other.is_contiguous() and other.shape == (*x.shape[:-1], weight.shape[0]):
                return torch.ops.mkldnn._linear_pointwise.binary(x, other, packed, self.bias, "add")
        y = F.linear(x, weight, self.bias)
        return y + other if self.residual else self.post.apply_(y)

    __deepcopy__ = PrepackedConv2d.__deepcopy__
    __getstate__ = PrepackedConv2d.__getstate__


def packed_weight(cache: dict, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight`` [F_out, F_in] packed by oneDNN for ``x``'s number of rows, from ``cache`` (rows ->
    (weight version, packed)) unless the weight changed since (its version counter moves with
    every in-place write, ``load_state_dict`` included; its data pointer when it is replaced)."""
    rows = x.numel() // weight.shape[1]
    entry = cache.get(rows)
    if entry is None or entry[0] != (weight._version, weight.data_ptr()):
        with torch.no_grad():
            entry = cache[rows] = ((weight._version, weight.data_ptr()), torch.ops.mkldnn._reorder_linear_weight(weight, rows))
    return entry[1]


class PackLinear(SpecPass):
    """Replace each ``nn.Linear`` by a :class:`PackedLinear`, the activation or the add after
    it folded in; ``changed``: the linear paths, marked ``+add`` or ``+<activation>``."""

    name = "pack_linear"

    def run(self, gm: fx.GraphModule) -> list[str]:
        done = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or type(gm.get_submodule(node.target)) is not nn.Linear or len(node.args) != 1:
                continue
            fused, post, other, _ = fuse_epilogue(gm, node, post_after_residual=False)
            replace_fused(gm, node, fused, other, False)
            _set_submodule(gm, node.target, PackedLinear(gm.get_submodule(node.target), post, other is not None))
            done.append(node.target + ("+add" if other is not None else "") + ("" if post.attr == "none" else f"+{post}"))
        return done
