"""Swin's shifted windows: the cyclic shift of a channels-last map, and the additive attention
mask that keeps each window of the shifted map from attending across the seams the shift
brought together.

torchvision shifts by half a window in every other block, except along a dim that one window
covers whole (the padded map is no larger than the window): there it does not shift.  At a
symbolic size that is known only on the call, so both ops take the shift a block asks for and
drop it at run time where the map fits one window — as a tensor (shift · any(position >=
window)), with no branch on the size, so that exports keep H and W dynamic.

After ``cyclic_shift`` by -shift, the last window along a dim holds tokens from two regions of
the original map that are not neighbours (the wrapped-around strip and the rest); torchvision's
``shifted_window_attention`` labels the (padded) map in up to 3 × 3 regions and adds -100 to
the score of every pair of tokens from different regions.  That mask depends only on the map's
spatial size, the window and the shift, so it is an op of its own — built from its input's size
at run time, as torchvision does — and not params of a cell: the cell reads the map, and the op
derives the rest.
"""

from __future__ import annotations

from pydantic import model_validator

from ..ir.dims import floordiv, is_concrete, mul
from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Float, IntPair, NonNegativePair, Op, OpParams, ShapeError, pair
from .registry import register_op
from .rules import expect_rank


class _WindowParams(OpParams):
    window: IntPair
    shift: NonNegativePair

    @model_validator(mode="after")
    def _shift_inside_the_window(self):
        if any(s >= w for s, w in zip(pair(self.shift), pair(self.window))):
            raise ValueError(f"shift {list(pair(self.shift))} must be smaller than the window "
                             f"{list(pair(self.window))} along each dim (Swin shifts by half a window)")
        return self


def window_counts(op: str, t, window: tuple[int, int]) -> list:
    """The windows along H and along W of the channels-last map ``t`` [N, H, W, C], whose H and W
    must be multiples of ``window`` — concretely (else E407), or by their form (7*⌈H/7⌉, a padded
    size; else E406: a symbolic size that may not be one)."""
    expect_rank(op, t, (4,), "a channels-last map [N, H, W, C]")
    counts = []
    for axis, w in zip((1, 2), window):
        size = t.shape[axis]
        count = floordiv(size, w)
        if mul(count, w) != size:
            exact = is_concrete(size)
            amount = -size % w if exact else f"{w} * (({size} + {w - 1}) // {w}) - {size}"
            raise ShapeError(f"{op}: dim {axis} of {t} ({size}) is not {'' if exact else 'known to be '}a multiple of "
                             f"the window ({w})", code="E407" if exact else "E406",
                             hint=f"pad the map to a multiple of the window first (by {amount})")
        counts.append(count)
    return counts


@register_op
class CyclicShift(Op):
    """Swin's cyclic shift of a channels-last map [N, H, W, C] whose H and W are multiples of
    ``window`` [wh, ww]: rolled by -``shift`` along H and W (``back: true``: by +shift, undoing
    it), except along a dim that one window covers whole, which torchvision leaves unshifted.
    Shape unchanged."""

    name = "cyclic_shift"
    aliases = ('window_shift', 'shifted_window_roll')
    category = "reshape"
    traits = frozenset({Trait.ROW_WISE})

    class Params(_WindowParams):
        back: Bool = False

    def infer(self, p, inputs):
        window_counts(self.name, inputs[0], pair(p.window))
        return [inputs[0]]

    def emit(self, p, graph, args):
        return graph.call_function(cyclic_shift, (args[0], pair(p.window), pair(p.shift), p.back))

    def num_params(self, p, inputs):
        return 0

    def describe(self, p):
        sh, sw = pair(p.shift)
        return f"{'+' if p.back else '-'}{sh}×{sw} in {'×'.join(map(str, pair(p.window)))} windows"


def cyclic_shift(x, window: tuple[int, int], shift: tuple[int, int], back: bool):
    """The map of :class:`CyclicShift` for ``x`` [N, H, W, C]: torch.roll along H and W by the
    effective shifts, written as a gather of the rolled positions (i - shift, wrapped into the
    dim), which exports take with a shift computed on the call (ONNX's Roll, and its Mod by a
    computed size, need constants). Self-contained: the Python export copies it."""
    import torch

    for axis, w, s in ((1, window[0], shift[0]), (2, window[1], shift[1])):
        size = x.shape[axis]
        position = torch.arange(size, device=x.device)
        # the shift torchvision makes (none where one window covers the dim), signed: a tensor, so
        # that no branch on the size is taken while an export traces
        s = (position >= w).any().long() * (s if back else -s)
        source = position - s  # |s| < size: one wrap at most, either way
        source = torch.where(source < 0, source + size, source)
        source = torch.where(source >= size, source - size, source)
        x = torch.index_select(x, axis, source)
    return x


@register_op
class ShiftedWindowMask(Op):
    """The additive mask of Swin's shifted-window attention for a channels-last map
    [N, H, W, C] whose H and W are multiples of ``window`` [wh, ww], rolled by -``shift``
    (cyclic_shift): -> [(H/wh)·(W/ww), wh·ww, wh·ww], 0 where two tokens of a window come from
    one region of the unshifted map and ``value`` (-100, torchvision's) where they do not; added
    to the scores [N, windows, heads, wh·ww, wh·ww] after an unsqueeze at dim 1.

    Along a dim that one window covers whole there is no shift (torchvision's rule, decided on
    the call) and so no seam; ``shift`` must be smaller than ``window``. H and W may be symbolic
    where they are multiples of the window by their form (a padded 7*⌈H/7⌉).
    """

    name = "shifted_window_mask"
    aliases = ('swin_mask', 'window_attention_mask')
    category = "attention"
    input_dtypes = FLOAT_DTYPES  # the mask takes the map's dtype, to be added to its scores

    class Params(_WindowParams):
        value: Float = -100.0

    def infer(self, p, inputs):
        t = inputs[0]
        counts = window_counts(self.name, t, pair(p.window))
        tokens = pair(p.window)[0] * pair(p.window)[1]
        return [t.with_shape((mul(counts[0], counts[1]), tokens, tokens))]

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
    1: the last window less the shift, 2: the wrapped strip of ``shift``; one region where there
    is no shift), a token's label is the pair of them, and a score is masked where the labels of
    its two tokens differ — torchvision's loop of slice assignments, written with comparisons so
    that exports see plain tensor ops.  Self-contained: the Python export copies it.
    """
    import torch

    labels = []
    for size, w, s in ((x.shape[1], window[0], shift[0]), (x.shape[2], window[1], shift[1])):
        position = torch.arange(size, device=x.device)
        s = (position >= w).any().long() * s  # no shift where one window covers the dim (a tensor: no branch)
        # with no shift the second term is 0 and the first labels whole windows: nothing is masked
        labels.append((position >= size - w).long() + (position >= size - s).long())
    grid = labels[0][:, None] * 3 + labels[1][None, :]  # [H, W]: the region pair of each position
    wh, ww = window
    per_window = grid.view(x.shape[1] // wh, wh, x.shape[2] // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    apart = per_window.unsqueeze(1) != per_window.unsqueeze(2)  # [windows, T, T]
    return torch.zeros(apart.shape, dtype=x.dtype, device=x.device).masked_fill_(apart, value)


__all__ = ["CyclicShift", "ShiftedWindowMask", "cyclic_shift", "shifted_window_mask", "window_counts"]
