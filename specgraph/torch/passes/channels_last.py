"""channels_last: convolutions on CPU (oneDNN) and GPU (cuDNN) run faster on NHWC tensors,
which NCHW input would have to be reordered into and out of for every conv.  When the model has
4-D convolutions, their weights are stored channels_last, 4-D float inputs are converted once
at the start, and outputs are made contiguous again at the end, so a caller sees the usual
layout.  Ops in between (pooling, ReLU, add, concat) keep the layout.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from ..lifetimes import set_load_tracer
from .base import SpecPass


class ChannelsLast(SpecPass):
    """``changed``: [True] when the model was converted."""

    name = "channels_last"

    def run(self, gm: fx.GraphModule) -> list[bool]:
        """The fx graph carries no ranks, and ``contiguous(memory_format=channels_last)`` raises
        for tensors that are not 4-D, so the conversions are small helpers that check the rank."""
        gm.to(memory_format=torch.channels_last)
        graph = gm.graph
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        for ph in placeholders:
            users = list(ph.users)
            with graph.inserting_after(placeholders[-1]):
                # named after the input, so that `nhwc` stays free for the function's name
                converted = graph.create_node("call_function", nhwc, (ph,), name=f"{ph.name}_channels_last")
            for user in users:
                user.replace_input_with(ph, converted)
        output = next(n for n in graph.nodes if n.op == "output")
        with graph.inserting_before(output):
            result = fx.map_arg(output.args[0], lambda v: graph.create_node("call_function", nchw, (v,),
                                                                            name=f"{v.name}_contiguous"))
        output.args = (result,)
        # Unpickling a GraphModule traces its code again, with this tracer class: it records the
        # helpers' calls (they read the tensor's rank, which a traced value does not have)
        set_load_tracer(gm)
        return [True]


def has_conv_4d(gm: nn.Module) -> bool:
    """Whether the model has a 2-D convolution (4-D tensors), where channels_last pays."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in gm.modules())


def to_channels_last(gm: fx.GraphModule) -> None:
    ChannelsLast()(gm)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last layout when it is a 4-D float tensor, else ``x``."""
    if x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the default (contiguous) layout when it is 4-D, else ``x``."""
    if x.dim() == 4:
        return x.contiguous()
    return x
