"""Build: Graph -> torch.fx.GraphModule with a generated straight-line forward.

Submodules sit at their node paths (``layer1.0.conv1``), so the state_dict keys are the
spec's names and weights of a hand-written model with the same names load strictly.

Training-only outputs (GoogLeNet's auxiliary heads) need a forward that differs between
train and eval.  fx graphs are straight-line, so such a spec gets two graphs over the same
submodules, and :class:`TrainEvalModule` calls the one that fits ``self.training``; the
eval graph does not compute the auxiliary heads at all.
"""

from __future__ import annotations

import keyword
import operator
import re
from typing import Any

import torch
from torch import fx, nn

from ..ir.graph import Graph, OutputInfo
from ..ops import get_op


def build_module(graph: Graph, modules: nn.Module | None = None) -> nn.Module:
    """A trainable module computing ``graph``; inputs in declaration order, as positional args.

    Returns a tensor for one output, else a tuple in declaration order (in eval mode,
    training-only outputs are left out). ``modules``: take the submodules from this module
    instead of building them.
    """
    root = modules if modules is not None else nn.Module()
    with_module: set[str] = set()
    for node in graph.op_nodes():
        if modules is not None:  # reuse modules built before (a scan's split cell graphs)
            if _has_submodule(root, node.path):
                with_module.add(node.path)
            continue
        module = get_op(node.op).build(node.params, [v.type for v in node.inputs])
        if module is not None:
            _set_submodule(root, node.path, module)
            with_module.add(node.path)
    class_name = _class_name(graph.name)
    eval_outputs = [o for o in graph.outputs if not o.train_only]
    eval_gm = fx.GraphModule(root, _fx_graph(graph, eval_outputs, with_module), class_name)
    if not graph.has_train_only_outputs:
        return eval_gm
    train_gm = fx.GraphModule(root, _fx_graph(graph, graph.outputs, with_module), class_name + "Train")
    return TrainEvalModule(root, train_gm, eval_gm)


class TrainEvalModule(nn.Module):
    """Runs the training graph in train mode and the eval graph in eval mode (shared weights)."""

    def __init__(self, root: nn.Module, train_gm: fx.GraphModule, eval_gm: fx.GraphModule):
        super().__init__()
        for name, child in root.named_children():
            self.add_module(name, child)
        # Held outside the module tree so that state_dict and parameters() list each weight once.
        self.__dict__["train_graph_module"] = train_gm
        self.__dict__["eval_graph_module"] = eval_gm

    def forward(self, *args: torch.Tensor) -> Any:
        if self.training:
            return self.train_graph_module(*args)
        return self.eval_graph_module(*args)

    @property
    def code(self) -> str:
        return ("# train mode\n" + self.train_graph_module.code + "\n# eval mode\n" + self.eval_graph_module.code)


def _fx_graph(graph: Graph, outputs: list[OutputInfo], with_module: set[str]) -> fx.Graph:
    """The straight-line fx graph computing ``outputs`` (nodes they do not need are left out)."""
    needed = _needed(graph, outputs)
    g = fx.Graph()
    values: dict[tuple[str, str], fx.Node] = {}
    for name in graph.inputs:
        values[(name, "out")] = g.placeholder(_identifier(name))
    for node in graph.op_nodes():
        if node.path not in needed:
            continue
        args = [values[(v.node, v.port)] for v in node.inputs]
        op = get_op(node.op)
        if node.path in with_module:
            result = g.call_module(node.path, tuple(args))
        else:
            result = op.emit(node.params, g, args)
            # Name the value after the spec node (`layer1_0_relu`), not after the function
            # (`relu_17`), so that model.code reads like the spec.
            result._rename(_identifier(node.path.replace(".", "_")))
        ports = list(node.outputs)
        if len(ports) == 1:
            values[(node.path, ports[0])] = result
        else:
            for i, port in enumerate(ports):
                item = g.call_function(operator.getitem, (result, i))
                item._rename(_identifier(f"{node.path}_{port}".replace(".", "_")))
                values[(node.path, port)] = item
    outs = [values[(o.value.node, o.value.port)] for o in outputs]
    g.output(outs[0] if len(outs) == 1 else tuple(outs))
    g.lint()
    return g


def _needed(graph: Graph, outputs: list[OutputInfo]) -> set[str]:
    import networkx as nx

    needed: set[str] = set()
    for o in outputs:
        needed.add(o.value.node)
        needed |= nx.ancestors(graph.nx, o.value.node)
    return needed


def _has_submodule(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
    except AttributeError:
        return False
    return True


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent = root
    *parents, leaf = path.split(".")
    for part in parents:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)


def _identifier(name: str) -> str:
    """A Python name for a spec name in the generated forward (an input called `from` is `from_`)."""
    ident = re.sub(r"\W", "_", name)
    ident = ident if ident and not ident[0].isdigit() else "_" + ident
    return ident + "_" if keyword.iskeyword(ident) else ident


def _class_name(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    ident = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Spec"
    return ident if not ident[0].isdigit() else "Spec" + ident
