"""Kernel scratch on CPU: what torch's kernels allocate and free inside one eval-mode call,
beyond their outputs, modelled per op class and per machine (machine.py).

A model is a function ``(op, p, inputs, outputs, ctx) -> bytes``: ``inputs``/``outputs`` are
:class:`~specgraph.analysis.memory.walk.Tensor` at concrete sizes (``.shape``, ``.strides``,
``.dtype``, ``.itemsize``, ``.nbytes``), ``ctx`` a :class:`MemoryContext` (``.sizes``,
``.threads``, ``.param_bytes`` of the node, ``.machine``).  When the scratch comes and goes
in several phases, a model returns the largest of (live scratch + outputs allocated so far)
minus all the outputs' bytes.  Models are registered on an op class and found through its
MRO, so a subclass inherits its base's; an op class with no model makes the predicted peak a
*lower bound*, and the report lists its nodes.  A user's op registers its own:

```python
from specgraph.analysis.memory import register_scratch, no_scratch
no_scratch(MyElementwiseOp)                          # its kernel allocates nothing else
@register_scratch(MyOp)
def _(op, p, inputs, outputs, ctx): return outputs[0].nbytes   # one temporary of its output's size
```

Every constant below says where it comes from: torch's source, or a measurement with the
profiler (tests/test_memory.py holds the models to within its tolerance on AVX2 and AVX-512).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ...ops import (activation, contraction, dropout, elementwise, indexing, layout, linear, merge, norm, pool, recurrent, reduce,
                    resample, scan, seqdropout, shape, tensors, windows)
from ...ir.strides import reshape_strides
from ...ops.conv import Conv1d, Conv2d, Conv3d
from ...ops.param_types import per_dim
from .machine import Machine

ScratchModel = Callable[..., int]
_MODELS: dict[type, ScratchModel] = {}


@dataclass(frozen=True)
class MemoryContext:
    """What a scratch model may need besides the tensors."""

    sizes: dict[str, int]  # the size of every symbolic dim
    threads: int  # torch's intra-op threads (some kernels choose by it)
    param_bytes: int  # this node's parameter bytes
    machine: Machine  # the ISA the kernels run
    # The walk itself, memory_report(graph, batch, sizes, threads=...): for an op whose module
    # runs graphs of its own (a scan's cell), sized the same way.
    report: Callable[..., Any]


class Allocations:
    """A running total of allocations and frees and its high-water mark: for a model that
    replays what its kernel allocates, in order."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def alloc(self, nbytes: int) -> int:
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        return nbytes

    def free(self, *nbytes: int) -> None:
        self.live -= sum(nbytes)


def register_scratch(*op_classes: type) -> Callable[[ScratchModel], ScratchModel]:
    """Decorator: ``model`` is the scratch of ``op_classes`` (and their subclasses)."""
    def register(model: ScratchModel) -> ScratchModel:
        for cls in op_classes:
            _MODELS[cls] = model
        return model
    return register


def no_scratch(*op_classes: type) -> None:
    """The kernels of ``op_classes`` allocate nothing but their outputs."""
    register_scratch(*op_classes)(lambda op, p, inputs, outputs, ctx: 0)


def unregister_scratch(*op_classes: type) -> None:
    for cls in op_classes:
        _MODELS.pop(cls, None)


def scratch_model(op) -> ScratchModel | None:
    """The model of ``op``'s class (or of its nearest base that has one); None: not modelled."""
    for cls in type(op).__mro__:
        if cls in _MODELS:
            return _MODELS[cls]
    return None


# Kernels that allocate only their outputs (measured: no other allocation event in the
# profiler's trace of an eval call).  Batch, layer, group and instance norm keep per-row
# statistics of a few bytes a row, left out.  LocalResponseNorm is a chain of temporaries
# (square, pad, pool, scale) that is not modelled: its nodes make the peak a lower bound; so are
# einsum (permuted copies of its operands and the intermediates of each pairwise step,
# by the path torch picks), and the attention ops (projections and scores, by the kernel torch picks).
no_scratch(activation.ReLU, activation.LeakyReLU, activation.GELU, activation.SiLU, activation.ELU, activation.SELU,
           activation.Sigmoid, activation.Tanh, activation.Softmax, activation.LogSoftmax, activation.ReLU6,
           activation.Hardtanh, activation.Hardswish, activation.Hardsigmoid, activation.Softplus, activation.Mish,
           activation.GLU, activation.PReLU, elementwise.Neg, elementwise.Abs, elementwise.Exp, elementwise.Log,
           elementwise.Sqrt, elementwise.Rsqrt, elementwise.Pow, elementwise.Clamp, merge.Div,
           dropout.Dropout, dropout.Dropout2d, dropout.AlphaDropout, dropout.DropPath, seqdropout.VariationalDropoutOp,
           seqdropout.ZoneoutOp, linear.Linear, recurrent.Embedding,
           merge.Add, merge.Mul, merge.Sub, merge.Concat, merge.Chunk, merge.Split,
           norm.BatchNorm1d, norm.BatchNorm2d, norm.LayerNorm, norm.GroupNorm, norm.InstanceNorm2d,
           pool.AvgPool2d, pool.AdaptiveAvgPool2d, reduce.Mean, reduce.Sum, reduce.Unsqueeze,
           elementwise.Where, layout.Transpose, layout.Unflatten, layout.Slice,
           layout.Roll, layout.ChannelShuffle, layout.PixelShuffle, layout.PixelUnshuffle,
           tensors.Parameter, tensors.Buffer, indexing.Select, indexing.ExpandLike, indexing.BroadcastTo, indexing.IndexSelect,
           resample.Interpolate, resample.CenterCrop, resample.Pad,
           shape.Identity, shape.Flatten, shape.Reshape, shape.Permute)
# The 1-D and 3-D forms of these (measured the same way).
no_scratch(norm.BatchNorm3d, pool.AvgPool1d, pool.AvgPool3d, pool.AdaptiveAvgPool1d, pool.AdaptiveAvgPool3d)


# ---- matmul and rmsnorm (measured on this torch: tests/test_memory.py) -------------------------

@register_scratch(contraction.Matmul)
def batched_matmul(op, p, inputs, outputs, ctx) -> int:
    """torch.matmul folds its operands into one bmm (or mm): each is expanded to the broadcast
    batch and reshaped to [batch, rows, cols]; where that reshape is no view (a batch broadcast
    against a real one), it is a copy of the expanded size. A matrix on the right is never copied:
    torch folds the left operand into one mm where that is a view, and runs bmm otherwise."""
    a, b = inputs
    if len(b.shape) <= 2:  # [..., k] @ [k, m]: folded into mm where that is a view, else bmm over b broadcast
        return 0
    batch = _broadcast([t.shape[:-2] for t in inputs if len(t.shape) > 2])
    copied = 0
    for t in inputs:
        if len(t.shape) < 2:
            continue
        own = t.shape[:-2]
        lead = len(batch) - len(own)
        strides = [0] * lead + [0 if s == 1 and n != 1 else st for s, n, st in zip(own, batch[lead:], t.strides[:-2])]
        shape = (*batch, *t.shape[-2:])
        if reshape_strides(shape, (*strides, *t.strides[-2:]), (math.prod(batch), *t.shape[-2:])) is None:
            copied += math.prod(shape) * t.itemsize
    return copied


def _broadcast(shapes) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(dims) for dims in zip(*padded))


@register_scratch(norm.RMSNorm)
def rms_norm(op, p, inputs, outputs, ctx) -> int:
    """torch's CPU rms_norm is composite: x * rsqrt(mean(x², dims) + eps), one x-sized temporary
    (x²) and the per-row mean."""
    x = inputs[0]
    rows = math.prod(x.shape[:len(x.shape) - p.dims])
    return x.nbytes + rows * x.itemsize


# ---- indexing, and Swin's shifted-window mask ---------------------------------------------------

@register_scratch(windows.ShiftedWindowMask)
def shifted_window_mask(op, p, inputs, outputs, ctx) -> int:
    """Replays ops/windows.py's ``shifted_window_mask``: each dim's region labels (int64 vectors of
    its size), the label grid [H, W] and its copy in window order (int64 each), and the bool
    "labels differ" [windows, T, T], all held while the output is allocated and filled in place."""
    _, h, w, _ = inputs[0].shape
    windows_, tokens = outputs[0].shape[0], outputs[0].shape[1]
    return (h + w) * 8 + 2 * h * w * 8 + windows_ * tokens * tokens


@register_scratch(indexing.Gather)
def gather_index(op, p, inputs, outputs, ctx) -> int:
    """torch.gather reads an int64 index: an int32 one is converted first (measured: one int64 copy)."""
    index = inputs[1]
    return math.prod(index.shape) * 8 if index.dtype == "int32" else 0


# ---- convolution: oneDNN or ATen's im2col -------------------------------------------------------

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
# 1-D one as a 2-D one, the 3-D one with vol2col for im2col).  The transposed 1-D and 3-D
# convolutions are not modelled: on oneDNN they measure about twice the blocked output, which the
# 2-D model below does not explain either (it is off by about 30% for conv_transpose2d alone).
@register_scratch(Conv1d, Conv2d, Conv3d, resample.ConvTranspose2d)
def convolution(op, p, inputs, outputs, ctx) -> int:
    """oneDNN reorders the weight, and the input or the result through a channel-blocked
    buffer (one at a time, so the larger counts), on every call; ATen's own kernel unfolds the
    input into columns [N, C*prod(kernel), prod(spatial out)] (none for a 1x1 without stride or
    padding)."""
    x, out = inputs[0], outputs[0]
    block = ctx.machine.channel_block
    if uses_onednn(p, x.shape, ctx.threads):
        # A first layer's few input channels are read as they are; wider inputs are reordered.
        reordered = blocked_bytes(x, block) if x.shape[1] >= block else 0
        return max(reordered, blocked_bytes(out, block)) + ctx.param_bytes
    rank = len(x.shape) - 2
    kernel, stride = per_dim(p.kernel, rank), per_dim(p.stride, rank)
    unpadded = not isinstance(p.padding, str) and set(per_dim(p.padding, rank)) == {0}
    if set(kernel) == {1} and set(stride) == {1} and unpadded:
        return 0
    n, c, *spatial = out.shape
    return n * x.shape[1] * math.prod(kernel) * math.prod(spatial) * out.itemsize


# ---- max pooling ---------------------------------------------------------------------------------

@register_scratch(pool.MaxPool1d, pool.MaxPool2d, pool.MaxPool3d, pool.AdaptiveMaxPool1d, pool.AdaptiveMaxPool2d,
                  pool.AdaptiveMaxPool3d)
def pooling_indices(op, p, inputs, outputs, ctx) -> int:
    """torch runs the ``*_with_indices`` kernel and drops the int64 indices, one per output element
    (adaptive_max_pool1d as the 2-D one over [N, C, 1, L]; maxpool1d asks for them, see ops/pool.py)."""
    return math.prod(outputs[0].shape) * 8


# ---- recurrent layers ----------------------------------------------------------------------------

def _lstm_on_onednn(op, p, x) -> bool:
    """ATen runs a float32 lstm without projection through oneDNN's RNN primitive
    (``lstm_mkldnn_stub``); rnn, gru and a projected lstm through its own cell loop."""
    return isinstance(op, recurrent.LSTM) and x.dtype == "float32" and not p.proj_size


@register_scratch(recurrent.RNN, recurrent.GRU, recurrent.LSTM)
def recurrent_layers(op, p, inputs, outputs, ctx) -> int:
    """Replays the CPU kernel's allocations (measured with the profiler on torch 2.x):

    - the module's zero initial states when none are given;
    - ATen's loop (aten/src/ATen/native/RNN.cpp): per layer and direction, the input
      projection for all steps [T, N, gates*H] (after a contiguous copy of a batch-first
      input with N > 1), every step's state kept, then stacked; per step the hidden
      projection [N, gates*H] and the cell's temporaries; the projection of the previous
      direction is still held while the next one's is computed; a bidirectional layer
      concatenates its two outputs;
    - oneDNN (lstm): a contiguous [T, N, F] input; per layer and direction the output and
      final states, the summed bias, the weights reordered (every call) and the RNN
      scratchpad: the gates of all steps plus state buffers, fitted to the measured size as
      ``T·max(N, 2)·(gates·H + 3H/8)`` floats + 20 KiB.
    Finally the per-layer states are stacked into [L·D, N, H]."""
    x = inputs[0]
    item = x.itemsize
    n, steps, features = (x.shape[0], x.shape[1], x.shape[2]) if p.batch_first else (x.shape[1], x.shape[0], x.shape[2])
    dirs, layers, g, h, h_out = op.directions(p), p.num_layers, op.gates, p.hidden, op.out_size(p)
    onednn = _lstm_on_onednn(op, p, x)
    a = Allocations()
    zeros = [a.alloc(layers * dirs * n * size * item) for size in op.state_sizes(p)] if len(inputs) == 1 else []
    copy = p.batch_first and n > 1 and steps > 1  # the batch-first input is transposed: a copy where it is not contiguous
    held = a.alloc(steps * n * features * item) if onednn and copy else 0
    finals: list[int] = []
    layer_in = 0  # the previous layer's output (the first layer reads x)
    for layer in range(layers):
        size = features if layer == 0 else dirs * h_out
        outs: list[int] = []
        lingering, steps_kept = 0, []
        for _ in range(dirs):
            if onednn:
                outs.append(a.alloc(steps * n * h * item))
                finals += [a.alloc(n * h * item), a.alloc(n * h * item)]
                scratchpad = item * steps * max(n, 2) * (g * h + 3 * h // 8) + 20 * 1024
                a.free(a.alloc((g * h if p.bias else 0) * item) + a.alloc(g * h * size * item)
                       + a.alloc(g * h * h * item) + a.alloc(scratchpad))
                continue
            clone = a.alloc(steps * n * size * item) if layer == 0 and copy else 0
            projected = a.alloc(steps * n * g * h * item)
            a.free(clone, lingering)
            steps_kept.append(a.alloc(steps * n * h_out * item))  # every step's state, until the layer ends
            a.free(a.alloc(n * (g * h + 2 * h) * item))  # one step's hidden projection and temporaries
            finals += [a.alloc(n * size * item) for size in op.state_sizes(p)[1:]]  # an lstm's c
            outs.append(a.alloc(steps * n * h_out * item))  # stacked
            lingering = projected
        if dirs > 1:
            joined = a.alloc(steps * n * dirs * h_out * item)
            a.free(*outs)
            outs = [joined]
        a.free(lingering, *steps_kept)
        a.free(layer_in)
        layer_in = outs[0]
    for size in op.state_sizes(p):
        a.alloc(layers * dirs * n * size * item)  # torch.stack of the final states
    a.free(*finals, held, *zeros)
    return a.peak - sum(t.nbytes for t in outputs)


# ---- scan ------------------------------------------------------------------------------------------

@register_scratch(scan.ScanOp)
def scan_loop(op, p, inputs, outputs, ctx) -> int:
    """What the Scan module (ops/torch_modules.py) allocates in an eval call, replayed: zero
    initial states where ``init`` gives none; the part of the cell reading only the context
    tensors, once, and the hoisted part for all T steps at once (the outputs of both are held
    through the loop); then per step the cell's live tensors
    (the per-step graph's own predicted peak), every step's emitted output kept for the
    final ``torch.stack``, and the stack itself.  The cell graphs are sized by the walk (a
    scan's cell is one step, batch N); the hoisted rows scale by T, the ops being row-wise."""
    memory_report = ctx.report
    steps = inputs[0].shape[1]
    split = scan.split_cell(p.cell, p.context)
    once_peak, once_held = 0, 0
    if split.once is not None:
        once = memory_report(split.once, None, ctx.sizes, threads=ctx.threads)
        once_peak, once_held = once.inference_peak - once.input_bytes, once.output_bytes
    if split.pre is not None:
        pre = memory_report(split.pre, None, ctx.sizes, threads=ctx.threads)
        pre_peak, held = steps * (pre.inference_peak - pre.input_bytes), steps * pre.output_bytes
    else:
        pre_peak, held = 0, 0
    step = memory_report(split.step, None, ctx.sizes, threads=ctx.threads)
    states = {s: outputs[1 + i].nbytes for i, s in enumerate(p.states)}
    emitted = outputs[0].nbytes // max(steps, 1)  # one step's output
    carried = sum(b for s, b in states.items() if s != p.emit)  # states that are not also the step's output
    a = Allocations()
    zeros = a.alloc(sum(b for s, b in states.items() if s not in p.init))
    a.free(a.alloc(once_peak))
    a.alloc(once_held)
    a.free(a.alloc(pre_peak))
    a.alloc(held)
    if steps:
        a.alloc((steps - 1) * emitted + carried)  # before the last step: the outputs so far, the states
        a.free(zeros if steps > 1 else 0)  # replaced by the first step's states
        a.free(a.alloc(step.inference_peak - step.input_bytes))  # the last step, its new states included
        a.alloc(emitted + carried)
        a.free(carried)  # the last step's input states
    a.alloc(outputs[0].nbytes)  # torch.stack of the outputs
    return a.peak - sum(t.nbytes for t in outputs)


__all__ = ["MemoryContext", "Allocations", "ScratchModel", "register_scratch", "no_scratch", "unregister_scratch",
           "scratch_model", "uses_onednn", "blocked_bytes"]
