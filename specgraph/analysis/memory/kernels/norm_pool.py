"""Normalisation and pooling: rms_norm, normalize and local_response_norm (composites of
temporaries), and the indices max pooling computes and drops."""

from __future__ import annotations

import math

from ....ops import norm, pool
from ..scratch import Allocations, register_scratch

@register_scratch(norm.RMSNorm)
def rms_norm(op, p, inputs, outputs, ctx) -> int:
    """torch's CPU rms_norm is composite: x * rsqrt(mean(x², dims) + eps), one x-sized temporary
    (x²) and the per-row mean."""
    x = inputs[0]
    rows = math.prod(x.shape[:len(x.shape) - p.dims])
    return x.nbytes + rows * x.itemsize


@register_scratch(norm.Normalize)
def normalize(op, p, inputs, outputs, ctx) -> int:
    """torch.nn.functional.normalize: the norms along ``dim`` (one per row), clamped into a second
    tensor of that size, then a division into the output."""
    x = inputs[0]
    return 2 * math.prod(x.shape) // x.shape[p.dim % len(x.shape)] * x.itemsize




@register_scratch(pool.MaxPool1d, pool.MaxPool2d, pool.MaxPool3d, pool.AdaptiveMaxPool1d, pool.AdaptiveMaxPool2d,
                  pool.AdaptiveMaxPool3d)
def pooling_indices(op, p, inputs, outputs, ctx) -> int:
    """torch runs the ``*_with_indices`` kernel and drops the int64 indices, one per output element
    (adaptive_max_pool1d as the 2-D one over [N, C, 1, L]; maxpool1d asks for them, see ops/pool.py)."""
    return math.prod(outputs[0].shape) * 8




@register_scratch(norm.LocalResponseNorm)
def local_response_norm(op, p, inputs, outputs, ctx) -> int:
    """Replays torch.nn.functional.local_response_norm, a chain of x-sized temporaries: x², the
    same padded by size - 1 channels (freed once pooled), its average over the window, then
    ·alpha (with a 4 B and an 8 B scalar tensor), +k and ^beta, each held until the next is
    made, the average until the end; the output x / that."""
    x = inputs[0]
    n, c = x.shape[:2]
    a = Allocations()
    square = a.alloc(x.nbytes)
    padded = a.alloc(x.nbytes // c * (c + p.size - 1))
    a.free(square)
    pooled = a.alloc(x.nbytes)
    a.free(padded)
    scaled = a.alloc(x.nbytes + 12) - 12
    shifted = a.alloc(x.nbytes)
    a.free(scaled, 12)
    powered = a.alloc(x.nbytes)
    a.free(shifted, pooled)
    a.alloc(outputs[0].nbytes)
    a.free(powered)
    return a.beyond(outputs)
