"""Convolution: oneDNN's kernels or ATen's own (im2col / col2im), chosen as ATen chooses."""

from __future__ import annotations

import dataclasses
import math

from ....ops import resample
from ....ops.conv import Conv1d, Conv2d, Conv3d
from ....ir.strides import contiguous_strides
from ....ops.param_types import per_dim
from ..scratch import Allocations, register_scratch

def uses_onednn(p, x_shape: tuple[int, ...], threads: int) -> bool:
    """ATen's choice between oneDNN and its own im2col convolution for a float32 CPU input
    (``use_mkldnn`` in aten/src/ATen/native/Convolution.cpp).  It reads the kernel's last two
    dims and the input's first four — of a 1-D convolution, which ATen runs as a 2-D one over
    [N, C, 1, L] (``view1d_as_2d``), those of that view; of a 3-D one, N·C·D·H (measured: a
    [1, 16, 8, 16, 16] input, N·C·D·H·W > 20480, still takes ATen's kernel)."""
    rank = len(x_shape) - 2
    kernel, stride, dilation = (per_dim(getattr(p, key, 1), rank) for key in ("kernel", "stride", "dilation"))
    if rank == 1:
        x_shape, kernel = (*x_shape[:2], 1, x_shape[2]), (1, *kernel)
    n, c, h, w = x_shape[:4]
    kh, kw = kernel[-2:]
    groups = getattr(p, "groups", 1)
    one_by_one = (kh, kw) == (1, 1) and set(stride) == {1} and set(dilation) == {1}
    return ((not one_by_one or n >= 16 or threads > 1)
            and (groups > 1 or (kh > 3 and kw > 3) or n > 1 or n * c * h * w > 20480))


def blocked_bytes(t, block: int) -> int:
    """Bytes of ``t`` in oneDNN's channel-blocked layout (channels rounded up to the block)."""
    n, c, *spatial = t.shape
    return n * -(-c // block) * block * math.prod(spatial) * t.itemsize


# conv1d and conv3d run the same two kernels as conv2d (measured to the byte on both paths: the
# 1-D one as a 2-D one, the 3-D one with vol2col for im2col).
def _left_padding(p, rank: int) -> tuple[int, ...]:
    if p.padding == "valid":
        return (0,) * rank
    if p.padding == "same":  # torch pads (d·(k - 1)) // 2 on the left
        return tuple(d * (k - 1) // 2 for k, d in zip(per_dim(p.kernel, rank), per_dim(p.dilation, rank)))
    return per_dim(p.padding, rank)


@register_scratch(Conv1d, Conv2d, Conv3d)
def convolution(op, p, inputs, outputs, ctx) -> int:
    """oneDNN reorders the weight, and the input or the result through a channel-blocked
    buffer (one at a time, so the larger counts), on every call — except where its direct
    kernels refuse a left padding wider than the output's rows (a 7x7 kernel, padding 3, on a
    2x2 map): then it unfolds the input (im2col, +128 B) into a plain result, reordered into
    the output.  ATen's own kernel unfolds the input into columns
    [N, C*prod(kernel), prod(spatial out)] (none for a 1x1 without stride or padding).  A
    padding mode other than zeros pads a copy of the input first, held through the call, and
    convolves that without padding."""
    x, out = inputs[0], outputs[0]
    rank = len(x.shape) - 2
    kernel, stride = per_dim(p.kernel, rank), per_dim(p.stride, rank)
    padded, left = 0, _left_padding(p, rank)
    if p.padding_mode != "zeros" and any(left):
        right = left if p.padding != "same" else tuple(
            d * (k - 1) - l for k, d, l in zip(kernel, per_dim(p.dilation, rank), left))
        shape = (*x.shape[:2], *(s + a + b for s, a, b in zip(x.shape[2:], left, right)))
        x = dataclasses.replace(x, shape=shape, strides=contiguous_strides(shape))
        padded, left = x.nbytes, (0,) * rank
    block = ctx.machine.channel_block
    n, c_out, *spatial = out.shape
    if uses_onednn(p, x.shape, ctx.threads):
        if rank <= 2 and left[-1] > spatial[-1]:
            columns = x.shape[1] // p.groups * math.prod(kernel) * math.prod(spatial) * x.itemsize + 128
            return padded + max(columns, out.nbytes)
        # A first layer's few input channels are read as they are; wider inputs are reordered.
        reordered = blocked_bytes(x, block) if x.shape[1] >= block else 0
        return padded + max(reordered, blocked_bytes(out, block)) + ctx.param_bytes
    if set(kernel) == {1} and set(stride) == {1} and not any(left):
        return padded
    return padded + n * x.shape[1] * math.prod(kernel) * math.prod(spatial) * out.itemsize


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


@register_scratch(resample.ConvTranspose1d, resample.ConvTranspose2d, resample.ConvTranspose3d)
def transposed_convolution(op, p, inputs, outputs, ctx) -> int:
    """Replays what a transposed convolution allocates (measured with the profiler and
    ONEDNN_VERBOSE on torch 2.14, oneDNN 3.12, AVX2 and AVX-512 alike but for the block):

    - ATen's own kernel (chosen as for a convolution, see :func:`uses_onednn`; 1-D runs as 2-D)
      allocates the output, then col2im's columns [C_out·prod(kernel), prod(spatial in)] for one
      sample at a time; the 3-D kernel makes its output like the input first (resized, so
      reallocated only when larger) and adds the bias through a row of ones over the output's
      spatial size.
    - oneDNN with stride 1 (a convolution's backward-data kernel, channel-blocked): the input
      reordered to blocks, the weight with both channel counts rounded up to the block, the
      blocked result, and with a bias another blocked result (+128 B) the bias is added from;
      then the plain output, into which the blocked result is reordered.
    - oneDNN with a stride (brgemm kernels on channels-last): the input reordered to
      channels-last, the weight with C_out rounded up to brgemm's block (16 to 64 on
      AVX-512, 8 to 24 on AVX2), a channels-last result,
      and a scratchpad of one input image per thread, each dim widened by k - s (+16 KiB, in
      16 KiB pages, +4248 B) — plus an output-sized buffer (+128 B) for the bias where an
      output dim is no multiple of its stride (the kernel then computes through a
      convolution, whose own scratch is within 20 KiB of that formula).  The result becomes the plain
      output by two copies (to a dense tensor, then ``contiguous()``): three outputs' worth.
    """
    x, out = inputs[0], outputs[0]
    item, rank = x.itemsize, len(x.shape) - 2
    kernel, stride = per_dim(p.kernel, rank), per_dim(p.stride, rank)
    n, c_in, *spatial_in = x.shape
    c_out, spatial_out = out.shape[1], out.shape[2:]
    window = math.prod(kernel)
    a = Allocations()
    if not uses_onednn(p, x.shape, ctx.threads):
        if rank == 3 and out.nbytes <= x.nbytes:
            a.alloc(x.nbytes)  # the output, made like the input and shrunk in place
        else:
            first = a.alloc(x.nbytes) if rank == 3 else 0
            a.alloc(out.nbytes)
            a.free(first)
        columns = c_out * window * math.prod(spatial_in) * item
        ones = math.prod(spatial_out) * item if rank == 3 and p.bias else 0
        a.free(a.alloc(columns), a.alloc(ones))
        return a.beyond(outputs)
    block = ctx.machine.channel_block
    c_out_w = c_out // p.groups if p.groups > 1 else _round_up(c_out, block)
    if set(stride) != {1} and p.groups == 1:  # brgemm's C_out block: the least of its sizes that holds C_out
        blocks = (16, 32, 48, 64) if block == 16 else (8, 16, 24)
        c_out_w = _round_up(c_out, next((b for b in blocks if b >= c_out), blocks[-1]))
    if set(stride) == {1}:
        c_in_w = c_in if p.groups > 1 else _round_up(c_in, block)
        result = blocked_bytes(out, block)
        temporaries = [a.alloc(result + 128 if p.bias else 0), a.alloc(blocked_bytes(x, block)),
                       a.alloc(c_in_w * c_out_w * window * item)]
    else:
        # one input image per thread, each dim widened by the kernel's overlap (k - s)
        image = item * c_in * math.prod(d + max(k - s, 0) for d, k, s in zip(spatial_in, kernel, stride))
        scratchpad = 4248 + ctx.threads * _round_up(image + 16384, 16384)
        if p.bias and any(o % s for o, s in zip(spatial_out, stride)):  # computed through a convolution
            scratchpad += out.nbytes + 128
        result = out.nbytes  # channels-last
        temporaries = [a.alloc(scratchpad), a.alloc(x.nbytes), a.alloc(c_in * c_out_w * window * item)]
    a.alloc(result)
    a.free(*temporaries)
    a.alloc(out.nbytes)
    if set(stride) != {1}:
        a.alloc(out.nbytes)  # contiguous() of the channels-last copy
    return a.beyond(outputs)
