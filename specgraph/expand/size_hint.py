"""The "nearest input sizes that work" hint for shape errors that depend on the input size.

Some architectures accept only some input sizes (the valid-convolution U-Net needs every
pooled size to be even). When checking fails with a shape error and the inputs have concrete
spatial dims, the spec is re-checked with those dims moved up and down together, and the
nearest sizes that pass are named in the hint.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from ..ir.tensor_type import TensorType
from ..diagnostics import SpecError

SIZE_CODES = ("E402", "E404")  # merges that disagree, windows that do not fit
MAX_DELTA = 64
BUDGET_S = 1.5


def add_size_hint(error: SpecError, inputs: dict[str, TensorType],
                  check: Callable[[dict[str, TensorType]], object]) -> SpecError:
    """``error`` with the nearest working input sizes added to its first size-related hint."""
    first = next((d for d in error.diagnostics if d.code in SIZE_CODES), None)
    # Only image-like inputs [N, C, H, W] have sizes to search; for sequences or states the
    # trailing dims are features, and moving them would suggest nonsense.
    spatial = {k: t for k, t in inputs.items()
               if t.rank == 4 and t.dtype.startswith(("float", "bfloat")) and all(isinstance(d, int) for d in t.shape[2:])}
    if first is None or not spatial:
        return error
    found = _nearby(inputs, spatial, check)
    if not found:
        return error
    sizes = ", ".join("×".join(map(str, s)) for s in found)
    hint = (first.hint + "; " if first.hint else "") + f"input sizes that work nearby: {sizes}"
    diagnostics = [replace(d, hint=hint) if d is first else d for d in error.diagnostics]
    return SpecError(diagnostics)


def _nearby(inputs: dict[str, TensorType], spatial: dict[str, TensorType],
            check: Callable[[dict[str, TensorType]], object]) -> list[tuple[int, ...]]:
    """The nearest working spatial sizes of the first spatial input, below and above."""
    deadline = time.perf_counter() + BUDGET_S
    first = next(iter(spatial))
    found: dict[str, tuple[int, ...]] = {}
    for delta in range(1, MAX_DELTA + 1):
        for sign, side in ((-1, "below"), (1, "above")):
            if side in found:
                continue
            shifted = {k: t.with_shape((*t.shape[:2], *(d + sign * delta for d in t.shape[2:])))
                       for k, t in spatial.items()}
            if any(d <= 0 for t in shifted.values() for d in t.shape[2:]):
                continue
            try:
                check({**inputs, **shifted})
            except SpecError:
                continue
            found[side] = tuple(shifted[first].shape[2:])
        if len(found) == 2 or time.perf_counter() > deadline:
            break
    return [found[k] for k in ("below", "above") if k in found]
