"""torch's CPU LSTM kernel (oneDNN's, what nn.LSTM runs) as one custom op with its own
backward, so that a fused scan keeps that kernel under torch.compile in training.

Why: Dynamo captures ``torch.lstm`` and, while autograd records, AOTAutograd decomposes it
(torch/_decomp's ``lstm_impl`` takes the oneDNN layer only when the input needs no grad) into
an unrolled loop of small ops, one group per time step; and the oneDNN layer itself
(``aten.mkldnn_rnn_layer``) cannot be differentiated by AOTAutograd (torch 2.14: a None among
its saved tensors). As a custom op the layer is opaque to the compiler: its forward runs
``mkldnn_rnn_layer``, its backward ``mkldnn_rnn_layer_backward`` on the workspace the forward
kept — exactly what eager autograd runs for nn.LSTM, so gradients are the eager kernel's own.
The workspace's size is oneDNN's business (padded, not a function we could restate), so the
fake implementation asks oneDNN for it once per set of sizes.

Imported by ops/torch_modules.py only (registering the op needs torch); FusedScan calls it.
"""

from __future__ import annotations

import torch
from torch import Tensor

LSTM_MODE = 2  # ideep::rnn_kind::LSTM (third_party/ideep/include/ideep/abstract_types.hpp)


@torch.library.custom_op("specgraph::mkldnn_lstm_layer", mutates_args=())
def mkldnn_lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                      reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One LSTM layer over time-major x [T, N, I] from h0, c0 [1, N, H]: (out [T, N, H], h [1, N, H],
    c [1, N, H], oneDNN's workspace for the backward [bytes]). ``reverse`` runs t = T-1..0."""
    with torch.enable_grad():  # oneDNN keeps the workspace only in grad mode (training forward)
        out, hy, cy, workspace = torch.ops.aten.mkldnn_rnn_layer(
            x.contiguous(), w_ih, w_hh, b_ih, b_hh, h0.contiguous(), c0.contiguous(), reverse, [], LSTM_MODE,
            h0.shape[-1], 1, True, False, False, True)
    return out, hy, cy, workspace


_WORKSPACE_BYTES: dict[tuple[int, ...], int] = {}


def workspace_bytes(steps: int, batch: int, features: int, hidden: int) -> int:
    """The size of oneDNN's workspace for these sizes: its own padded layout, so asked of oneDNN
    once (one forward on zeros, outside any fake mode) and remembered."""
    key = (steps, batch, features, hidden)
    if key not in _WORKSPACE_BYTES:
        with torch._subclasses.fake_tensor.unset_fake_temporarily(), torch.enable_grad():
            x, h = torch.zeros(steps, batch, features), torch.zeros(1, batch, hidden)
            w_ih, w_hh, b = torch.zeros(4 * hidden, features), torch.zeros(4 * hidden, hidden), torch.zeros(4 * hidden)
            workspace = torch.ops.aten.mkldnn_rnn_layer(x, w_ih, w_hh, b, b, h, h, False, [], LSTM_MODE, hidden, 1,
                                                        True, False, False, True)[3]
        _WORKSPACE_BYTES[key] = workspace.numel()
    return _WORKSPACE_BYTES[key]


@mkldnn_lstm_layer.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
    sizes = (x.shape[0], x.shape[1], x.shape[2], h0.shape[-1])
    if all(isinstance(s, int) for s in sizes):
        size = workspace_bytes(*sizes)
    else:  # symbolic sizes: data-dependent to the compiler (Dynamo breaks the graph there unless told to capture)
        size = torch.library.get_ctx().new_dynamic_size()
    workspace = x.new_empty(size, dtype=torch.uint8)
    return x.new_empty(x.shape[0], x.shape[1], h0.shape[-1]), h0.new_empty(h0.shape), c0.new_empty(c0.shape), workspace


def _keep_for_backward(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse = inputs
    out, hy, cy, workspace = output
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, out, hy, cy, workspace)
    ctx.reverse = reverse


def _backward(ctx, grad_out, grad_h, grad_c, _grad_workspace):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, out, hy, cy, workspace = ctx.saved_tensors
    dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = torch.ops.aten.mkldnn_rnn_layer_backward(
        x.contiguous(), w_ih, w_hh, b_ih, b_hh, h0.contiguous(), c0.contiguous(), out, hy, cy, grad_out, grad_h,
        grad_c, ctx.reverse, LSTM_MODE, h0.shape[-1], 1, True, True, False, [], False, workspace)
    return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, None


mkldnn_lstm_layer.register_autograd(_backward, setup_context=_keep_for_backward)

