"""Prepacked oneDNN convolutions for CPU inference, with what follows them fused in (a pass of
:func:`specgraph.torch.passes.optimize`).

On CPU, ``F.conv2d`` hands each call to oneDNN, which first reorders the weight into its own
blocked layout — every call, for every conv (for resnet50 that is ~100 MB of weights rewritten
per forward).  This pass replaces each eligible ``nn.Conv2d`` by a :class:`PrepackedConv2d`
holding the same ``weight``/``bias`` parameters (so the state_dict keys do not change), which
reorders the weight once per input size (``torch.ops.mkldnn._reorder_convolution_weight``) and
runs oneDNN's convolution with post-ops (``torch.ops.mkldnn._convolution_pointwise``, what
torch.compile's CPU backend uses), folding into the one kernel:

* a residual add that is the conv's only reader (ResNet's ``out += identity``), written into the
  other operand's buffer when nothing reads that afterwards (a conv, linear or batch norm made
  it, under any of its names), so the block allocates nothing new;
* then an activation that is the only reader of the result (relu, hardswish, hardsigmoid,
  sigmoid, tanh, silu, gelu, leaky_relu, relu6/hardtanh: see epilogue.py).

A packed weight is made on the first call with each input size (and thread count) and kept; it
is remade when the weight changes (``load_state_dict``, in-place edits).  Where the packed kernel
does not apply — an input that is not a float32 CPU tensor, autograd recording, an operand of
another shape or layout — the module computes the same with ``F.conv2d`` and torch's functions;
so it does for convs whose output is a single pixel (the squeeze-and-excitation gates; a 1×1 one
on a 1×1 map runs as the linear it is, ``F.linear``, one sgemm without the native conv's layers).
Small maps at batch 1 stay on oneDNN, although torch's own dispatch hands them to its native
kernel (aten's ``use_mkldnn`` size rule, which this pass followed until 2026-12-07): that kernel
splits its work by batch, so at batch 1 it runs on one thread.  Whole models at batch 1 with
those convs on the packed kernel instead, time now / time before (interleaved, one process
each): on AVX-512, 0.86-0.98 for mobilenet_v3_large, efficientnet_b0, mnasnet1_0,
shufflenet_v2_x1_0 and regnet_y_400mf at 1 and 2 threads; with oneDNN and aten held to AVX2,
0.89-1.03 (8 of 11 runs below 1).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

from .base import SpecPass
from .epilogue import NONE, WRITES_INTO, PostOp, Storages, activation_post_op, add_of

FRESH_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                 nn.modules.batchnorm._BatchNorm, nn.Linear)


def available() -> bool:
    """Whether this torch has oneDNN and its packed convolution and linear ops."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise") \
        and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class PrepackedConv2d(nn.Module):
    """``post(conv2d(x) [+ other])`` on oneDNN, the weight packed per input size.

    x: [N, C_in, H, W] -> [N, C_out, H_out, W_out], as the ``nn.Conv2d`` it was made from;
    ``other`` (when ``residual``): [N, C_out, H_out, W_out], added before ``post``;
    ``into_other``: the packed kernel may write the result into ``other``'s buffer."""

    fresh_output = True  # a new tensor, unless written into ``other`` (fx meta WRITES_INTO says so)

    def __init__(self, conv: nn.Conv2d, post: PostOp = NONE, residual: bool = False, into_other: bool = False):
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.post, self.residual, self.into_other = post, residual, into_other
        self._packed: dict = {}  # input shape -> (weight version, packed weight | None, output shape, strides)

    @property
    def relu(self) -> bool:
        return self.post.attr == "relu"

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, kernel_size={tuple(self.weight.shape[2:])}, "
                f"stride={tuple(self.stride)}, padding={tuple(self.padding)}, groups={self.groups}, "
                f"residual={self.residual}, post={self.post}")

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        weight = self.weight
        if x.dtype is torch.float32 and x.device.type == "cpu" and not (
                torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
            entry = self._packed.get((x.shape, torch.get_num_threads()))
            if entry is None or entry[0] != (weight._version, weight.data_ptr()):
                entry = self._pack(x)
            packed = entry[1]
            if packed is not None:
                post = self.post
                if not self.residual:
                    return torch.ops.mkldnn._convolution_pointwise.default(
                        x, packed, self.bias, self.padding, self.stride, self.dilation, self.groups,
                        post.attr, post.scalars, post.algorithm)
                if other.dtype is torch.float32 and other.shape == entry[2] and other.stride() == entry[3]:
                    unary = None if post.attr == "none" else post.attr
                    args = (x, packed, self.bias, self.padding, self.stride, self.dilation, self.groups, "add", 1.0,
                            unary, post.scalars, post.algorithm or None)
                    if self.into_other:
                        return torch.ops.mkldnn._convolution_pointwise_.binary(other, *args)
                    return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *args[1:])
            elif x.shape[2:] == (1, 1) and self._is_pointwise:
                # a squeeze-and-excitation gate: on one pixel a 1×1 conv is a linear (one sgemm),
                # without the native conv's im2col, NNPACK probe and dispatch layers
                y = F.linear(x.reshape(x.shape[0], -1), weight.reshape(weight.shape[0], -1), self.bias)
                y = y.view(entry[2])
                return self.post.apply_(y + other if self.residual else y)
        y = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.post.apply_(y + other if self.residual else y)

    def _pack(self, x: torch.Tensor) -> tuple:
        n, _, h, w = x.shape
        size = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
                zip((h, w), self.padding, self.dilation, self.weight.shape[2:], self.stride)]
        out = torch.Size((n, self.weight.shape[0], *size))
        # oneDNN writes the result in the input's layout; an operand added in must have it too
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
            else torch.contiguous_format
        strides = torch.empty(out, device="meta", memory_format=layout).stride()
        packed = None
        if size[0] * size[1] > 1:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_convolution_weight(
                    self.weight, self.padding, self.stride, self.dilation, self.groups, list(x.shape))
        # The weight's version counter moves with every in-place write (load_state_dict included),
        # its data pointer when it is replaced: either makes the packed copy stale.
        entry = ((self.weight._version, self.weight.data_ptr()), packed, out, strides)
        self._packed[(x.shape, torch.get_num_threads())] = entry
        return entry

    @property
    def _is_pointwise(self) -> bool:
        """A 1×1 kernel, no padding, one group: on a 1×1 map, ``x.flatten(1) @ weight.flatten(1).T``."""
        return self.weight.shape[2:] == (1, 1) and self.padding == [0, 0] and self.groups == 1

    def __deepcopy__(self, memo):
        # Packed weights are opaque oneDNN tensors: a copy packs its own on first use.
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        state = {k: v for k, v in self.__dict__.items() if k != "_packed"}
        clone.__dict__.update(copy.deepcopy(state, memo))
        clone._packed = {}
        return clone

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_packed"] = {}
        return state


def _eligible(module: nn.Module | None) -> bool:
    return (type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str))


def fuse_epilogue(gm: fx.GraphModule, node: fx.Node, residual_ok: bool = True,
                  post_after_residual: bool = True) -> tuple[list[fx.Node], PostOp, fx.Node | None, bool]:
    """What follows ``node`` (a packed kernel's call) that the kernel can compute: (the fx nodes
    it replaces, last first; the post-op; the residual operand or None; whether the result may
    be written into that operand).  The graph is not changed."""
    users = list(node.users)
    if len(users) != 1:
        return [], NONE, None, False
    user = users[0]
    add = add_of(user) if residual_ok else None
    if add is not None and node in (add.a, add.b):
        other = add.other(node)
        storages = Storages(gm, FRESH_MODULES)
        # Only where nothing reads `other` after the add: then whether the result is written
        # into it or into a new buffer, nobody can tell (a graph that adds into a value read
        # later keeps its add).
        if any(storages.position[u] > storages.position[user] for u in other.users):
            return [], NONE, None, False
        if add.overwrites_a and add.a is other and not storages.free_after(other, user):
            return [], NONE, None, False
        fused, post = [user], NONE
        after = list(user.users)
        if post_after_residual and len(after) == 1:
            found = activation_post_op(after[0], user)
            if found is not None:
                fused, post = [after[0], user], found
        return fused, post, other, storages.free_after(other, user)
    post = activation_post_op(user, node)
    return ([user], post, None, False) if post is not None else ([], NONE, None, False)


def replace_fused(gm: fx.GraphModule, node: fx.Node, fused: list[fx.Node], other: fx.Node | None,
                  into_other: bool) -> None:
    """Make ``node`` compute what the first of ``fused`` computed (those erased), with ``other``
    as its second argument (``node`` moves to where the add was, after ``other`` is made)."""
    if other is not None:
        fused[-1].prepend(node)
    if fused:
        fused[0].replace_all_uses_with(node)
        for n in fused:
            gm.graph.erase_node(n)
    if other is not None:
        node.args = (node.args[0], other)
        if into_other:
            node.meta[WRITES_INTO] = 1


class Prepack(SpecPass):
    """Replace each plain zero-padded ``nn.Conv2d`` by a :class:`PrepackedConv2d`, with the add
    and activation after it folded in; ``changed``: the conv paths, marked ``+add`` and
    ``+<activation>`` (``layer1.0.conv3+add+relu``)."""

    name = "prepack"

    def run(self, gm: fx.GraphModule) -> list[str]:
        done = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not _eligible(gm.get_submodule(node.target)):
                continue
            fused, post, other, into_other = fuse_epilogue(gm, node)
            replace_fused(gm, node, fused, other, into_other)
            _set_submodule(gm, node.target, PrepackedConv2d(gm.get_submodule(node.target), post, other is not None,
                                                            into_other))
            done.append(node.target + ("+add" if other is not None else "") + ("" if post.attr == "none" else f"+{post}"))
        return done


def _set_submodule(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, name, module)


def prepack_convs(gm: fx.GraphModule) -> list[str]:
    """Run :class:`Prepack` on ``gm`` in place; returns the conv paths, fusions marked."""
    p = Prepack()
    p(gm)
    return p.changed
