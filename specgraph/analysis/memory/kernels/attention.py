"""Attention: torch's scaled_dot_product_attention (its flash kernel or the math path) and
nn.MultiheadAttention (its fused fast path or the functional one), replayed from what they
allocate (measured with the profiler on torch 2.14; the same on AVX2 and AVX-512)."""

from __future__ import annotations

import math

from ....ops import attention
from ..scratch import Allocations, register_scratch

SCALAR = 4 + 8  # a scalar operand becomes a 4 B tensor and an 8 B one for the length of the op


def flash_buffers(rows: int, length: int, source: int, head: int, threads: int, item: int) -> tuple[int, int]:
    """The logsumexp [rows, L] and the per-thread buffer of ATen's CPU flash attention
    (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp): each thread holds a block of scores
    [q_split, kv_split], its row maxima and sums, and a block of the output [q_split, E],
    with q_split 256 from L = 768, 64 from L = 192, else 32 and kv_split 512 (each at most
    the length).  ``rows``: the batch dims' product (heads included)."""
    q_split = min(256 if length >= 768 else 64 if length >= 192 else 32, length)
    kv_split = min(512, source)
    per_thread = q_split * kv_split + 2 * q_split + q_split * head
    return rows * length * 4, threads * per_thread * 4


def _uses_flash(q, k, v) -> bool:
    """ATen's CPU choice (``use_flash_attention_cpp``): flash for 3-D and 4-D inputs whose q, k and
    v share the last dim; the math composite otherwise."""
    return len(q.shape) in (3, 4) and q.shape[-1] == k.shape[-1] == v.shape[-1]


@register_scratch(attention.ScaledDotProductAttention)
def scaled_dot_product_attention(op, p, inputs, outputs, ctx) -> int:
    """A bool mask is first made a float one (its own shape, held for the call).  Flash: the output
    (its memory in [.., L, heads, E] order), the logsumexp and the per-thread blocks
    (:func:`flash_buffers`); a causal mask costs nothing.  The math path: q·√scale and
    kᵀ·√scale (each with a scalar), the scores, their softmax with _safe_softmax's
    bool "-inf" map [.., L, S] and per-row flags, then the product with v; a causal mask is
    built as a bool [L, S] (and its tril), then a float one."""
    q, k, v = inputs[:3]
    item = q.itemsize
    l, s = q.shape[-2], k.shape[-2]
    rows = math.prod(q.shape[:-2])
    a = Allocations()
    mask = inputs[3] if len(inputs) == 4 else None
    held = a.alloc(math.prod(mask.shape) * item) if mask is not None and mask.dtype == "bool" else 0
    if _uses_flash(q, k, v):
        a.alloc(outputs[0].nbytes)
        a.free(*(a.alloc(b) for b in flash_buffers(rows, l, s, q.shape[-1], ctx.threads, item)))
        return a.beyond(outputs)
    scaled_q = a.alloc(q.nbytes + SCALAR) - SCALAR
    a.free(SCALAR)
    if p.causal:
        ones, lower = a.alloc(l * s), a.alloc(l * s)
        a.free(ones)
        held += a.alloc(l * s * item + 8) - 8
        a.free(8, lower)
    scaled_k = a.alloc(k.nbytes + SCALAR) - SCALAR
    a.free(SCALAR)
    scores = a.alloc(rows * l * s * item)
    a.free(scaled_k)
    weights = a.alloc(scores)
    a.free(a.alloc(rows * l * s), a.alloc(rows), a.alloc(4))  # _safe_softmax's -inf map, row flags, a scalar
    a.free(scores)
    a.alloc(outputs[0].nbytes)
    a.free(scaled_q, weights, held)
    return a.beyond(outputs)


@register_scratch(attention.MultiheadAttention)
def multihead_attention(op, p, inputs, outputs, ctx) -> int:
    """What nn.MultiheadAttention allocates in eval under no_grad (the module in ops/torch_modules.py):

    - causal: the module's bool mask [T, S] (made as ones, then triu) and its float form.
    - self-attention with ``batch_first`` takes the fused fast path (``_native_multi_head_attention``):
      the packed projection [N, T, 3E], split into q, k, v (a 3E copy, the first freed), the
      scores [N, heads, T, S] (with a mask: the mask expanded to bool [N, heads, T, S] and the
      softmax's own scores), the context written into q's storage, then moved to [N, T, E] and
      projected (both E-sized).
    - otherwise F.multi_head_attention_forward: each input that ``batch_first`` transposes is
      copied to be projected (freed after); self-attention projects once [T, N, 3E] and copies
      it split, cross-attention projects q, k and v apart (k and v together when they are one
      tensor, and copied split); then flash attention (:func:`flash_buffers`) on the heads,
      whose output needs no copy to be projected back.
    """
    q = inputs[0]
    kv = inputs[1] if len(inputs) == 3 else q
    item, e, h = q.itemsize, q.shape[2], p.heads
    n, t = (q.shape[0], q.shape[1]) if p.batch_first else (q.shape[1], q.shape[0])
    s = kv.shape[1] if p.batch_first else kv.shape[0]
    x = q.nbytes
    a = Allocations()
    masks = 0
    if p.causal:
        ones, upper = a.alloc(t * s), a.alloc(t * s)
        a.free(ones)
        masks = upper + a.alloc(t * s * item)
    alone = len(inputs) == 1 or inputs[0] is inputs[1] is inputs[2]  # self-attention: one tensor
    if alone and p.batch_first:
        packed = a.alloc(3 * x)
        split = a.alloc(3 * x)
        a.free(packed)
        count = n * h * t * s
        scores = a.alloc(count * item)
        if p.causal:  # the mask as bool [N, heads, T, S]; the softmax makes new scores
            expanded = a.alloc(count)
            softmaxed = a.alloc(count * item)
            a.free(scores, expanded)
            scores = softmaxed
        a.free(scores)
        moved = a.alloc(x)
        a.alloc(outputs[0].nbytes)
        a.free(moved, split, masks)
        return a.beyond(outputs)
    copied = p.batch_first  # the inputs are transposed views: copied to be projected
    if alone:
        copy = a.alloc(x) if copied else 0
        packed = a.alloc(3 * x)
        a.free(copy)
        projections = [a.alloc(3 * x)]
        a.free(packed)
    else:
        projections = []
        tensors = [inputs[0], inputs[1]] if inputs[1] is inputs[2] else list(inputs)
        for i, t_ in enumerate(tensors):
            width = 2 if len(tensors) == 2 and i == 1 else 1
            copy = a.alloc(t_.nbytes) if copied else 0
            projections.append(a.alloc(width * t_.nbytes))
            a.free(copy)
            if width == 2:
                projections.append(a.alloc(2 * t_.nbytes))
                a.free(projections.pop(-2))
    attended = a.alloc(n * t * e * item)
    a.free(*(a.alloc(b) for b in flash_buffers(n * h, t, s, e // h, ctx.threads, item)))
    a.free(*projections)
    a.alloc(outputs[0].nbytes)
    a.free(attended, masks)
    return a.beyond(outputs)
