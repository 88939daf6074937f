"""What CPU kernels allocate inside themselves in a training step, where a run on fake tensors
cannot see it (specgraph/torch/train_memory.py asks through :func:`training_scratch`, which the
API hands it): by aten op, from its arguments' shapes.  Measured with the profiler on torch 2.14
(oneDNN 3.12), float32, AVX-512 and AVX2.

- ``convolution`` (forward, on oneDNN: ATen's choice, :func:`~.conv.uses_onednn`): the input or
  the result through a channel-blocked buffer, the larger counting, and the weight reordered —
  as in inference (:func:`~.conv.convolution`).
- ``convolution_backward`` on oneDNN: for the input's gradient, the output's gradient and the
  input's gradient in blocks and the weight reordered (a strided one adds a copy of the input's
  gradient); for the weight's gradient, the output's gradient and the input in blocks and the
  weight's gradient.  The two phases run one after the other: the larger counts.
- ``mkldnn_rnn_layer`` (oneDNN's LSTM layer): its workspace, an empty tensor to the meta kernel
  but all steps' gates and states on a CPU, saved for the backward pass; and in each call,
  forward or backward, its scratchpad and its weights reordered.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Callable

from ..machine import Machine
from .conv import blocked_bytes, uses_onednn

# op name -> model(args, outputs, machine, threads) -> ({output index: bytes its storage holds}, transient bytes)
TrainingModel = Callable[[tuple, list, Machine, int], tuple[dict[int, int], int]]
TRAINING_MODELS: dict[str, TrainingModel] = {}


def _model(name: str):
    def register(fn: TrainingModel) -> TrainingModel:
        TRAINING_MODELS[name] = fn
        return fn
    return register


def _on_onednn(x, weight, stride, dilation, groups, threads: int) -> bool:
    p = SimpleNamespace(kernel=list(weight.shape[2:]), stride=list(stride), dilation=list(dilation), groups=groups)
    return x.dtype == "float32" and uses_onednn(p, x.shape, threads)


def _nbytes(t) -> int:
    return math.prod(t.shape) * t.itemsize


@_model("convolution")
def convolution_forward(args, outputs, machine: Machine, threads: int):
    x, weight, _, stride, _, dilation, transposed, _, groups = args[:9]
    if transposed or len(x.shape) < 3 or not _on_onednn(x, weight, stride, dilation, groups, threads):
        return {}, 0
    block = machine.channel_block
    reordered = blocked_bytes(x, block) if x.shape[1] >= block else 0
    return {}, max(reordered, blocked_bytes(outputs[0], block)) + _nbytes(weight)


@_model("convolution_backward")
def convolution_backward(args, outputs, machine: Machine, threads: int):
    grad, x, weight, _, stride, _, dilation, transposed, _, groups, mask = args[:11]
    if transposed or len(x.shape) < 3 or not _on_onednn(x, weight, stride, dilation, groups, threads):
        return {}, 0
    block = machine.channel_block
    grad_blocked = blocked_bytes(grad, block)
    data = grad_blocked + _nbytes(weight) + blocked_bytes(x, block) + (_nbytes(x) if set(stride) != {1} else 0) \
        if mask[0] else 0
    weights = grad_blocked + (blocked_bytes(x, block) if x.shape[1] >= block else 0) + _nbytes(weight) if mask[1] else 0
    return {}, max(data, weights)


def _lstm_sizes(x, hidden: int) -> tuple[int, int, int, int]:
    """(T, N, F, H) of one oneDNN LSTM layer's call: ATen hands it the input time-major
    [T, N, F] whatever its ``batch_first`` argument says."""
    return x.shape[0], x.shape[1], x.shape[2], hidden


def _lstm_transient(steps: int, batch: int, features: int, hidden: int) -> int:
    """The scratchpad, ≈ 16.25·T·N·H + 9.6·N·H + 10 KiB bytes (within 1.5% for H of 32 to 512),
    and the weights reordered (padded), ≈ 2 · 4H·(F + H) floats."""
    scratchpad = (65 * steps * batch * hidden) // 4 + (48 * batch * hidden) // 5 + 10240
    return scratchpad + 2 * 4 * hidden * (features + hidden) * 4


@_model("mkldnn_rnn_layer")
def lstm_layer(args, outputs, machine: Machine, threads: int):
    """The workspace (output 3), fitted: (62·T + 40)·N·H + 12 KiB bytes, within 3% for H of 128 to 512."""
    steps, batch, features, hidden = _lstm_sizes(args[0], args[10])
    train = args[15]
    workspace = (62 * steps + 40) * batch * hidden + 12288 if train else 0
    return {3: workspace}, _lstm_transient(steps, batch, features, hidden)


@_model("mkldnn_rnn_layer_backward")
def lstm_layer_backward(args, outputs, machine: Machine, threads: int):
    return {}, _lstm_transient(*_lstm_sizes(args[0], args[15]))


def training_scratch(machine: Machine, threads: int) -> Callable[[str, tuple, list], tuple[dict[int, int], Any]]:
    """The callback specgraph/torch/train_memory.py asks, for this machine: ``(op name, args,
    outputs)`` (tensors as objects with ``.shape``, ``.itemsize``, ``.dtype``) -> ({output index:
    the bytes its storage really holds}, the bytes the kernel allocates and frees inside)."""
    def ask(name: str, args: tuple, outputs: list) -> tuple[dict[int, int], int]:
        model = TRAINING_MODELS.get(name)
        return model(args, outputs, machine, threads) if model else ({}, 0)
    return ask


__all__ = ["TRAINING_MODELS", "training_scratch"]
