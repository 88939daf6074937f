"""Prepacked oneDNN convolutions for CPU inference (a pass of :func:`specgraph.torch.passes.optimize`).

On CPU, ``F.conv2d`` hands each call to oneDNN, which first reorders the weight into its own
blocked layout — every call, for every conv (for resnet50 that is ~100 MB of weights rewritten
per forward).  oneDNN's *prepacked* convolution (``torch.ops.mkldnn_prepacked``, what
``torch.jit.freeze`` uses) reorders the weight once for a given input size and can apply a
following ReLU inside the kernel.  This pass replaces each eligible ``nn.Conv2d`` by a
:class:`PrepackedConv2d` holding the same ``weight``/``bias`` parameters (so the state_dict keys
do not change) and folds a ReLU that is the conv's only user into it.

A packed weight is made on the first call with each input size and kept; it is remade when the
weight changes (``load_state_dict``, in-place edits).  Where the packed kernel does not apply —
an input that is not a float32 CPU tensor, or autograd recording — the module computes the
same conv (and ReLU) with ``F.conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from .base import SpecPass

_RELU_FUNCTIONS = (torch.relu, torch.relu_, F.relu)


def available() -> bool:
    """Whether this torch has oneDNN and its prepacked convolution ops."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn_prepacked, "conv2d_prepack")


class PrepackedConv2d(nn.Module):
    """A 2-D convolution (then ReLU when ``relu``) on oneDNN with its weight packed per input size.

    [N, C_in, H, W] -> [N, C_out, H_out, W_out], as the ``nn.Conv2d`` it was made from."""

    def __init__(self, conv: nn.Conv2d, relu: bool):
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding = tuple(conv.stride), tuple(conv.padding)
        self.dilation, self.groups = tuple(conv.dilation), conv.groups
        self.relu = relu
        self._packed: dict[tuple, tuple[tuple, object]] = {}  # input shape -> (weight version, context)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, kernel_size={tuple(self.weight.shape[2:])}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, relu={self.relu}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.device.type != "cpu" or \
                (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            return F.relu(y) if self.relu else y
        return torch.ops.mkldnn_prepacked.conv2d_run(x, self._context(tuple(x.shape)))

    def _context(self, shape: tuple):
        # The weight's version counter moves with every in-place write (load_state_dict
        # included), its data pointer when it is replaced: either makes the packed copy stale.
        version = (self.weight._version, self.weight.data_ptr(),
                   None if self.bias is None else (self.bias._version, self.bias.data_ptr()))
        cached = self._packed.get(shape)
        if cached is not None and cached[0] == version:
            return cached[1]
        bias = self.bias if self.bias is not None else torch.zeros(self.weight.shape[0])
        with torch.no_grad():
            context = torch.ops.mkldnn_prepacked.conv2d_prepack(
                self.weight, bias, list(self.stride), list(self.padding), list(self.dilation), self.groups,
                list(shape), "relu" if self.relu else "none")
        self._packed[shape] = (version, context)
        return context

    def __deepcopy__(self, memo):
        # Packed contexts are opaque script objects: a copy packs its own on first use.
        clone = PrepackedConv2d.__new__(PrepackedConv2d)
        nn.Module.__init__(clone)
        memo[id(self)] = clone
        import copy

        clone.weight = copy.deepcopy(self.weight, memo)
        clone.bias = copy.deepcopy(self.bias, memo)
        clone.stride, clone.padding, clone.dilation = self.stride, self.padding, self.dilation
        clone.groups, clone.relu, clone._packed = self.groups, self.relu, {}
        return clone

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_packed"] = {}
        return state


def _eligible(module: nn.Module | None) -> bool:
    return (type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str))


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS and len(node.args) == 1 and not node.kwargs
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)) is nn.ReLU
    return False


class Prepack(SpecPass):
    """Replace each plain zero-padded ``nn.Conv2d`` by a :class:`PrepackedConv2d` (a ReLU that
    is its only user folded in); ``changed``: the conv paths, ``+relu`` marked."""

    name = "prepack"

    def run(self, gm: fx.GraphModule) -> list[str]:
        done = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not _eligible(gm.get_submodule(node.target)):
                continue
            users = list(node.users)
            relu = len(users) == 1 and _is_relu(gm, users[0])
            if relu:
                users[0].replace_all_uses_with(node)
                gm.graph.erase_node(users[0])
            parent_path, _, name = node.target.rpartition(".")
            parent = gm.get_submodule(parent_path) if parent_path else gm
            setattr(parent, name, PrepackedConv2d(gm.get_submodule(node.target), relu))
            done.append(node.target + ("+relu" if relu else ""))
        return done


def prepack_convs(gm: fx.GraphModule) -> list[str]:
    """Run :class:`Prepack` on ``gm`` in place; returns the conv paths, ``+relu`` marked."""
    p = Prepack()
    p(gm)
    return p.changed
