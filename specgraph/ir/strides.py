"""Strides: how torch lays a tensor out, and when a reshape can view it instead of copying."""

from __future__ import annotations

import math

Shape = tuple[int, ...]


def contiguous_strides(shape: Shape) -> Shape:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


def reshape_strides(old: Shape, old_strides: Shape, new: Shape) -> Shape | None:
    """Strides of ``new`` viewing a tensor (old, old_strides), or None when torch must copy
    (a port of ATen's ``computeStride``, which decides whether ``reshape`` is a view)."""
    if not old:
        return (1,) * len(new)
    if math.prod(old) == 0:
        return contiguous_strides(new)
    result = [0] * len(new)
    view_d = len(new) - 1
    chunk_base = old_strides[-1]
    tensor_numel = view_numel = 1
    for tensor_d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[tensor_d]
        if tensor_d == 0 or (old[tensor_d - 1] != 1 and old_strides[tensor_d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                result[view_d] = view_numel * chunk_base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base = old_strides[tensor_d - 1]
                tensor_numel = view_numel = 1
    return tuple(result) if view_d == -1 else None


__all__ = ["contiguous_strides", "reshape_strides"]
