"""Indexing: torch.gather's index conversion, and Swin's shifted windows (the mask, the cyclic shift)."""

from __future__ import annotations

import math

from ....ops import indexing, windows
from ..scratch import register_scratch

@register_scratch(windows.ShiftedWindowMask)
def shifted_window_mask(op, p, inputs, outputs, ctx) -> int:
    """Replays ops/windows.py's ``shifted_window_mask``: each dim's region labels (int64 vectors of
    its size), the label grid [H, W] and its copy in window order (int64 each), and the bool
    "labels differ" [windows, T, T], all held while the output is allocated and filled in place."""
    _, h, w, _ = inputs[0].shape
    windows_, tokens = outputs[0].shape[0], outputs[0].shape[1]
    return (h + w) * 8 + 2 * h * w * 8 + windows_ * tokens * tokens


@register_scratch(windows.CyclicShift)
def cyclic_shift(op, p, inputs, outputs, ctx) -> int:
    """Replays ops/windows.py's ``cyclic_shift``: a gather along H, then along W, so the map
    rolled along H is held while the output is made, with each dim's int64 positions, source
    index (two ``where`` copies) and bool comparisons."""
    x = inputs[0]
    _, h, w, _ = x.shape
    return x.nbytes + 4 * (h + w) * 8


@register_scratch(indexing.Gather)
def gather_index(op, p, inputs, outputs, ctx) -> int:
    """torch.gather reads an int64 index: an int32 one is converted first (measured: one int64 copy)."""
    index = inputs[1]
    return math.prod(index.shape) * 8 if index.dtype == "int32" else 0


