"""What a packed oneDNN kernel can apply to its result before writing it (a post-op), read from
the fx calls that follow a convolution or linear: an activation, and a residual add.

The activations are recognised by the torch function an fx node calls (``torch.relu_``,
``F.hardswish(x, inplace=True)``, ...), whichever op emitted it — the same functions a model
made by other means calls — and mapped to oneDNN's name for the same function (``swish`` for
SiLU, ``hardtanh`` with its bounds for ReLU6).  Each post-op also knows how to apply itself
with torch, for the inputs the packed kernel does not take (autograd, other dtypes).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx
from torch.fx.operator_schemas import normalize_function

# torch function -> (oneDNN post-op, how its params become the post-op's scalars and algorithm)
_ACTIVATIONS = {
    torch.relu: "relu", torch.relu_: "relu", F.relu: "relu",
    torch.sigmoid: "sigmoid", torch.sigmoid_: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", torch.tanh_: "tanh", F.tanh: "tanh",
    F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid", F.silu: "swish",
    F.gelu: "gelu", F.leaky_relu: "leaky_relu", F.relu6: "relu6", F.hardtanh: "hardtanh",
}
_NO_PARAMS = {"input", "self", "inplace"}


@dataclass(frozen=True)
class PostOp:
    """An activation as oneDNN's post-op: ``attr`` ("relu", "gelu", ...), its ``scalars``
    (leaky_relu's slope, hardtanh's bounds) and ``algorithm`` (gelu's "none" or "tanh")."""

    attr: str = "none"
    scalars: tuple[float, ...] = ()
    algorithm: str = ""

    def apply_(self, y: torch.Tensor) -> torch.Tensor:
        """The same activation with torch, overwriting ``y`` (a fresh result) where it can."""
        if self.attr == "none":
            return y
        if self.attr == "gelu":
            return F.gelu(y, approximate=self.algorithm)
        if self.attr == "leaky_relu":
            return F.leaky_relu(y, self.scalars[0], inplace=True)
        if self.attr == "hardtanh":
            return F.hardtanh(y, self.scalars[0], self.scalars[1], inplace=True)
        return _IN_PLACE[self.attr](y)

    def __str__(self) -> str:
        return self.attr


NONE = PostOp()
_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_,
             "hardswish": lambda y: F.hardswish(y, inplace=True),
             "hardsigmoid": lambda y: F.hardsigmoid(y, inplace=True),
             "swish": lambda y: F.silu(y, inplace=True)}


def activation_post_op(node: fx.Node, source: fx.Node) -> PostOp | None:
    """The post-op computing ``node`` from ``source`` (its only tensor argument), or None."""
    if node.op != "call_function" or node.target not in _ACTIVATIONS or not node.args or node.args[0] is not source:
        return None
    try:
        normalized = normalize_function(node.target, tuple(node.args), dict(node.kwargs),
                                        normalize_to_only_use_kwargs=True)
    except Exception:  # noqa: BLE001 - a call torch cannot bind: leave it alone
        return None
    kwargs = {} if normalized is None else {k: v for k, v in normalized.kwargs.items() if k not in _NO_PARAMS}
    if normalized is None and (len(node.args) != 1 or set(node.kwargs) - {"inplace"}):
        return None
    if any(isinstance(v, fx.Node) for v in kwargs.values()):
        return None
    attr = _ACTIVATIONS[node.target]
    if attr == "gelu":
        approximate = kwargs.pop("approximate", "none")
        return None if kwargs or approximate not in ("none", "tanh") else PostOp("gelu", (), approximate)
    if attr == "leaky_relu":
        slope = kwargs.pop("negative_slope", 0.01)
        return None if kwargs else PostOp("leaky_relu", (float(slope),))
    if attr == "relu6":
        return None if kwargs else PostOp("hardtanh", (0.0, 6.0))
    if attr == "hardtanh":
        low, high = kwargs.pop("min_val", -1.0), kwargs.pop("max_val", 1.0)
        return None if kwargs else PostOp("hardtanh", (float(low), float(high)))
    return None if kwargs else PostOp(attr)


@dataclass(frozen=True)
class Add:
    """``a + b`` in any of its fx forms; ``overwrites_a``: it writes into ``a`` (``a.add_(b)``)."""

    a: fx.Node
    b: fx.Node
    overwrites_a: bool

    def other(self, operand: fx.Node) -> fx.Node:
        return self.b if operand is self.a else self.a


def add_of(node: fx.Node) -> Add | None:
    """The tensor add ``node`` computes (alpha 1, two distinct fx values), or None."""
    if len(node.args) != 2 or node.kwargs or not all(isinstance(a, fx.Node) for a in node.args):
        return None
    a, b = node.args
    if a is b:
        return None
    if node.op == "call_function" and node.target in (operator.add, torch.add):
        return Add(a, b, False)
    if (node.op == "call_function" and node.target is operator.iadd) or (node.op == "call_method" and node.target == "add_"):
        return Add(a, b, True)
    return None


WRITES_INTO = "specgraph_writes_into"  # fx_node.meta: the argument a fused call writes its result into


def overwritten(node: fx.Node) -> fx.Node | None:
    """The argument ``node`` writes its result into, so that both are one storage: the first of
    an in-place call (``torch.relu_(x)``, ``F.hardswish(x, inplace=True)``, ``x.add_(y)``), the
    one a fused kernel names in ``meta[WRITES_INTO]``; None for a call that returns a new tensor."""
    index = node.meta.get(WRITES_INTO)
    if index is None and node.op in ("call_method", "call_function"):
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        in_place = isinstance(name, str) and name.endswith("_") and not name.startswith("_")
        if in_place or node.kwargs.get("inplace") is True or node.target is operator.iadd:
            index = 0
    if index is None or index >= len(node.args) or not isinstance(node.args[index], fx.Node):
        return None
    return node.args[index]


class Storages:
    """Which fx values of a graph share one storage (an in-place call's result is its input's),
    and whether a storage is free to overwrite at a given node: made fresh by a call of
    ``fresh`` (a module whose output is a new tensor: a conv, linear, batch norm, or one that
    says so with a true ``fresh_output`` attribute) and read by
    nothing after that node, under any of its names.  Computed from the graph as it is now."""

    def __init__(self, gm: fx.GraphModule, fresh: tuple[type, ...]):
        self.position: dict[fx.Node, int] = {}
        self.root: dict[fx.Node, fx.Node] = {}
        self.names: dict[fx.Node, list[fx.Node]] = {}
        for i, n in enumerate(gm.graph.nodes):
            self.position[n] = i
            into = overwritten(n)
            self.root[n] = self.root.get(into, n) if into is not None else n
            self.names.setdefault(self.root[n], []).append(n)
        self.fresh = {n for n in gm.graph.nodes if n.op == "call_module" and (
            isinstance(m := gm.get_submodule(n.target), fresh) or getattr(m, "fresh_output", False))}

    def free_after(self, value: fx.Node, node: fx.Node) -> bool:
        root = self.root.get(value)
        if root not in self.fresh:
            return False
        at = self.position[node]
        return all(self.position[u] <= at for name in self.names[root] for u in name.users)


__all__ = ["PostOp", "NONE", "activation_post_op", "Add", "add_of", "overwritten", "Storages", "WRITES_INTO"]
