"""Recurrent layers (torch's rnn, gru and lstm: ATen's loop or oneDNN's RNN primitive) and
specgraph's scan over a cell graph (its loop, or torch's layer kernel when it is fused)."""

from __future__ import annotations

from ....ops import recurrent, scan
from ..scratch import Allocations, register_scratch

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
    return a.beyond(outputs)


@register_scratch(scan.ScanOp)
def scan_loop(op, p, inputs, outputs, ctx) -> int:
    """What the Scan module (ops/torch_modules.py) allocates in an eval call, replayed: zero
    initial states where ``init`` gives none; the part of the cell reading only the context
    tensors, once, and the hoisted part for all T steps at once (the outputs of both are held
    through the loop); then per step the cell's live tensors
    (the per-step graph's own predicted peak), every step's emitted output kept for the
    final ``torch.stack``, and the stack itself.  The cell graphs are sized by the walk (a
    scan's cell is one step, batch N); the hoisted rows scale by T, the ops being row-wise."""
    if p.fused is not None:
        return _fused_scan(p, inputs, outputs, ctx)
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
    return a.beyond(outputs)


def _fused_scan(p, inputs, outputs, ctx) -> int:
    """A fused scan (FusedScan) replayed: zeros for the states ``init`` does not give, a
    reversed scan's flipped copy of the sequence, a zero bias torch's layer has and the cell has
    not, oneDNN's contiguous copies of weights cut by columns (measured with the profiler); then
    torch's layer kernel given every state (:func:`recurrent_layers`), whose outputs are the
    scan's (a reversed scan flips its output back, a copy)."""
    x = inputs[0]
    a = Allocations()
    a.alloc(sum(outputs[1 + i].nbytes for i, s in enumerate(p.states) if s not in p.init))
    a.alloc(x.nbytes if p.reverse else 0)
    layer, rows = p.fused.layer(), p.fused.layer.gates * p.fused.params.hidden
    a.alloc(sum(w.zero for w in p.fused.weights) * rows * x.itemsize)
    if _lstm_on_onednn(layer, p.fused.params, x):  # oneDNN copies a weight cut by columns into a contiguous one
        a.alloc(sum(w.columns[1] - w.columns[0] for w in p.fused.weights if w.columns) * rows * x.itemsize)
    a.free(a.alloc(recurrent_layers(layer, p.fused.params, [x, *outputs[1:]], outputs, ctx)))
    layer_outputs = a.alloc(sum(t.nbytes for t in outputs))
    if p.reverse:
        a.free(a.alloc(outputs[0].nbytes))
    return a.peak - layer_outputs
