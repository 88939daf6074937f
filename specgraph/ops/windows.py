"""Swin's shifted windows: the additive attention mask that keeps each window of a cyclically
shifted feature map from attending across the seams the shift brought together.

After ``roll`` by -shift, the last window along a dim holds tokens from two regions of the
original map that are not neighbours (the wrapped-around strip and the rest); torchvision's
``shifted_window_attention`` labels the (padded) map in up to 3 × 3 regions and adds -100 to
the score of every pair of tokens from different regions.  That mask depends only on the
map's spatial size, the window and the shift, so it is an op of its own — built from its
input's size at run time, as torchvision does — and not params of a cell: the cell reads the
map, and the op derives the rest.
"""

from __future__ import annotations

from pydantic import model_validator

from ..ir.dims import is_concrete
from .base import FLOAT_DTYPES, Float, IntPair, NonNegativePair, Op, OpParams, ShapeError, pair
from .registry import register_op
from .rules import expect_rank


@register_op
class ShiftedWindowMask(Op):
    """The additive mask of Swin's shifted-window attention for a channels-last map
    [N, H, W, C] whose H and W are multiples of ``window`` [wh, ww], rolled by -``shift``:
    -> [(H/wh)·(W/ww), wh·ww, wh·ww], 0 where two tokens of a window come from one region of the
    unshifted map and ``value`` (-100, torchvision's) where they do not; added to the scores
    [N, windows, heads, wh·ww, wh·ww] after an unsqueeze at dim 1.

    A shift of 0 along a dim leaves it uncut (torchvision sets it so when the window covers the
    whole padded map); ``shift`` must be smaller than ``window``.
    """

    name = "shifted_window_mask"
    aliases = ('swin_mask', 'window_attention_mask')
    category = "attention"
    input_dtypes = FLOAT_DTYPES  # the mask takes the map's dtype, to be added to its scores

    class Params(OpParams):
        window: IntPair
        shift: NonNegativePair
        value: Float = -100.0

        @model_validator(mode="after")
        def _shift_inside_the_window(self):
            if any(s >= w for s, w in zip(pair(self.shift), pair(self.window))):
                raise ValueError(f"shift {list(pair(self.shift))} must be smaller than the window "
                                 f"{list(pair(self.window))} along each dim (Swin shifts by half a window)")
            return self

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "a channels-last map [N, H, W, C]")
        window = pair(p.window)
        counts = []
        for axis, w in zip((1, 2), window):
            size = t.shape[axis]
            if not is_concrete(size):
                raise ShapeError(f"shifted_window_mask needs a concrete spatial size, found '{size}' on dim {axis} "
                                 f"of {t}", code="E406",
                                 hint="whether the windows tile the map depends on its size: give the input a number")
            if size % w:
                raise ShapeError(f"shifted_window_mask: dim {axis} of {t} ({size}) is not a multiple of the window "
                                 f"({w})", code="E407",
                                 hint=f"pad the map to a multiple of the window first (here by {-size % w})")
            counts.append(size // w)
        tokens = window[0] * window[1]
        return [t.with_shape((counts[0] * counts[1], tokens, tokens))]

    def emit(self, p, graph, args):
        return graph.call_function(shifted_window_mask, (args[0], pair(p.window), pair(p.shift), float(p.value)))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        wh, ww = pair(p.window)
        sh, sw = pair(p.shift)
        return f"{wh}×{ww} windows, shift {sh}×{sw}"


def shifted_window_mask(x, window: tuple[int, int], shift: tuple[int, int], value: float):
    """The mask of :class:`ShiftedWindowMask` for the map ``x`` [N, H, W, C].

    Each position gets the region it came from along H and along W (0: before the last window,
    1: the last window less the shift, 2: the wrapped strip of ``shift``; one region where the
    shift is 0), a token's label is the pair of them, and a score is masked where the labels of
    its two tokens differ — torchvision's loop of slice assignments, written with comparisons so
    that exports see plain tensor ops.  Self-contained: the Python export copies it.
    """
    import torch

    labels = []
    for size, w, s in ((x.shape[1], window[0], shift[0]), (x.shape[2], window[1], shift[1])):
        position = torch.arange(size, device=x.device)
        region = (position >= size - w).long() + (position >= size - s).long()
        labels.append(region if s > 0 else torch.zeros_like(region))
    grid = labels[0][:, None] * 3 + labels[1][None, :]  # [H, W]: the region pair of each position
    wh, ww = window
    per_window = grid.view(x.shape[1] // wh, wh, x.shape[2] // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    apart = per_window.unsqueeze(1) != per_window.unsqueeze(2)  # [windows, T, T]
    return torch.zeros(apart.shape, dtype=x.dtype, device=x.device).masked_fill_(apart, value)


__all__ = ["ShiftedWindowMask", "shifted_window_mask"]
