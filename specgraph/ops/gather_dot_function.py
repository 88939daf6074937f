"""``gather_dot``: what a fused gather-dot node calls (ops/gather_dot_match.py finds them).

``gather_dot(a, b, A, B)[..., k] = A[a[...]] · B[b[..., k]]``: a [*S] int, b [*S, K] int, A [Va, dim],
B [Vb, dim] float -> [*S, K].  It is exactly ``(embedding(a, A).unsqueeze(-2) * embedding(b, B)).sum(-1)``,
the spec's own ops (:func:`plain_gather_dot`), which it runs wherever the C kernel
(ops/gather_dot_kernel.py) does not apply:

* under TorchScript scripting or tracing, ONNX export, torch.compile/torch.export, fx tracing and
  functorch transforms (what they record is the plain ops, so every export is the spec's graph);
* for tensors other than plain CPU ones (fake, meta, CUDA, subclasses), weights other than float32,
  index shapes that only broadcast;
* where the kernel cannot be built (no C compiler): ``specgraph summary`` says why.

On the kernel, :class:`GatherDot` is an autograd function whose backward gives exactly the dense
gradients torch's embedding backward gives (duplicate indices accumulate), so optimisers, lr
schedules, clipping and the non-finite guard see the same tensors.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .gather_dot_kernel import kernel

INDEX_DTYPES = (torch.int64, torch.int32)


def plain_gather_dot(a_index, b_index, a_weight, b_weight):
    """The spec's ops: [*S] and [*S, K] int indices into [Va, dim] and [Vb, dim] tables -> [*S, K]
    dot products.  (Unannotated and through ``torch.`` alone: the standalone Python export copies it.)"""
    embedding = torch.nn.functional.embedding
    return (embedding(a_index, a_weight).unsqueeze(-2) * embedding(b_index, b_weight)).sum(-1)


def gather_dot(a_index: Tensor, b_index: Tensor, a_weight: Tensor, b_weight: Tensor) -> Tensor:
    """[*S] and [*S, K] indices into [Va, dim] and [Vb, dim] tables -> [*S, K] dot products:
    the C kernel where it applies, else :func:`plain_gather_dot`."""
    if not torch.jit.is_scripting():
        fused = _on_kernel(a_index, b_index, a_weight, b_weight)
        if fused is not None:
            return fused
    return plain_gather_dot(a_index, b_index, a_weight, b_weight)


# The standalone Python export writes the plain ops in its place (torch/export/source_file.py).
gather_dot.plain_form = plain_gather_dot  # type: ignore[attr-defined]


@torch.jit.unused
def _on_kernel(a_index: Tensor, b_index: Tensor, a_weight: Tensor, b_weight: Tensor) -> Optional[Tensor]:
    """The scores computed by the kernel, or None where it does not apply (see the module docstring)."""
    if not kernel_applies(a_index, b_index, a_weight, b_weight):
        return None
    lib = kernel()
    if isinstance(lib, str):
        return None
    return GatherDot.apply(a_index, b_index, a_weight, b_weight, lib)


def kernel_applies(a_index: Tensor, b_index: Tensor, a_weight: Tensor, b_weight: Tensor) -> bool:
    """Whether these arguments may run on the C kernel (never while something records the ops)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    tensors = (a_index, b_index, a_weight, b_weight)
    if any(type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter for t in tensors):
        return False  # fx proxies, fake and functional tensors, subclasses
    if _functorch_active():
        return False
    if any(t.device.type != "cpu" or t.layout != torch.strided for t in tensors):
        return False
    if a_weight.dtype != torch.float32 or b_weight.dtype != torch.float32:
        return False
    if a_index.dtype not in INDEX_DTYPES or b_index.dtype not in INDEX_DTYPES:
        return False
    if a_weight.dim() != 2 or b_weight.dim() != 2 or a_weight.shape[1] != b_weight.shape[1]:
        return False
    return b_index.dim() == a_index.dim() + 1 and b_index.shape[:-1] == a_index.shape


def _functorch_active() -> bool:
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active()) if active is not None else False


class GatherDot(torch.autograd.Function):
    """The kernel with its backward: dense [V, dim] gradients of both tables, as embedding's."""

    @staticmethod
    def forward(ctx, a_index: Tensor, b_index: Tensor, a_weight: Tensor, b_weight: Tensor, lib) -> Tensor:
        a = a_index.contiguous().to(torch.int64)
        b = b_index.contiguous().to(torch.int64)
        A, B = a_weight.detach().contiguous(), b_weight.detach().contiguous()
        k = b.shape[-1]
        scores = torch.empty(b.shape, dtype=torch.float32)
        bad = lib.gather_dot_forward(A.data_ptr(), B.data_ptr(), a.data_ptr(), b.data_ptr(), a.numel(), k,
                                     A.shape[1], A.shape[0], B.shape[0], scores.data_ptr())
        if bad >= 0:  # an index out of range: torch's own error, as the plain ops raise it
            plain_gather_dot(a_index, b_index, a_weight.detach(), b_weight.detach())
            raise IndexError("index out of range in self")  # in case torch did not raise
        ctx.save_for_backward(a, b, A, B)
        ctx.lib = lib
        return scores

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b, A, B = ctx.saved_tensors
        want_a, want_b = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        if not (want_a or want_b):
            return None, None, None, None, None
        g = grad.contiguous().to(torch.float32)
        dA = torch.zeros_like(A) if want_a else None
        dB = torch.zeros_like(B) if want_b else None
        ctx.lib.gather_dot_backward(A.data_ptr(), B.data_ptr(), a.data_ptr(), b.data_ptr(), g.data_ptr(), a.numel(),
                                    b.shape[-1], A.shape[1], dA.data_ptr() if want_a else None,
                                    dB.data_ptr() if want_b else None)
        return None, None, dA, dB, None


__all__ = ["gather_dot", "plain_gather_dot", "kernel_applies", "GatherDot"]
