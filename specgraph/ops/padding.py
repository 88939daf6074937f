"""torch's rules for padding that is not zeros: what `pad` with mode reflect, replicate or
circular and a convolution with such a ``padding_mode`` may ask of their input.

torch.nn.functional.pad pads k trailing dims (k = 1, 2, 3) in these modes only for inputs of
rank k + 1 or k + 2 ([C, *] or [N, C, *]); reflect padding must be smaller than the dim it pads
(it mirrors the input without repeating the edge), circular padding at most the dim (it wraps
around once).  A size or amount that is symbolic makes each limit a requirement on the input
(:func:`~specgraph.ops.rules.require`): decided at check time where it can be, checked on every
call otherwise.
"""

from __future__ import annotations

from typing import Sequence

from ..ir.dims import Dim, sub
from ..ir.tensor_type import TensorType
from .rules import ShapeError, require

MODES = ("reflect", "replicate", "circular")  # besides constant (pad) and zeros (a conv)
# How far the padding may reach into the dim it pads: reflect below its size, circular up to it.
_SLACK = {"reflect": 1, "circular": 0}


def check_mode_rank(who: str, mode: str, pairs: int, t: TensorType) -> None:
    """E410 unless torch pads ``pairs`` dims of ``t`` in ``mode`` (reflect, replicate, circular)."""
    if pairs > 3 or t.rank not in (pairs + 1, pairs + 2):
        ranks = "no rank" if pairs > 3 else f"rank {pairs + 1} or {pairs + 2}"
        raise ShapeError(f"{who}: {mode} padding of the last {pairs} dim(s) needs an input of {ranks} "
                         f"([C, *] or [N, C, *]), found a rank-{t.rank} tensor {t}", code="E410",
                         hint="pad as many trailing dims as the input has spatial dims "
                              "(2 values for [N, C, L], 4 for [N, C, H, W], 6 for [N, C, D, H, W]), "
                              "or use mode constant")


def check_mode_amounts(who: str, mode: str, t: TensorType, amounts: Sequence[tuple[int, Dim, Dim]]) -> None:
    """E404 (or a requirement) unless each (axis, before, after) amount fits ``mode``'s limit."""
    slack = _SLACK.get(mode)
    if slack is None:
        return
    for axis, *sides in amounts:
        size = t.shape[axis]
        limit = "below" if slack else "at most"
        for amount in dict.fromkeys(sides):
            if amount == 0:
                continue
            require(sub(size, amount), at_least=slack, code="E404",
                    message=f"{who}: {mode} padding {amount} on dim {axis} must be {limit} that dim's size "
                            f"({size}) in {t}",
                    hint="pad less, give the input a larger size, or use mode replicate or zeros/constant")


__all__ = ["MODES", "check_mode_rank", "check_mode_amounts"]
