"""The torch side of `scan:`: a module that runs a cell's fx graph over the time dim.

Cell nodes that read only the step input x_t (typically the input projection W·x_t + b)
do not depend on the previous state, so they are *hoisted*: computed for all T steps in one
batched call before the loop, leaving only the recurrent part inside it.  This keeps the
gate-level spec as written while doing per step only the work that must be sequential.
Hoisting is limited to row-wise ops (each row of the batch computed alone), so it cannot
change results; ops that mix rows (batch norm) stay in the loop.
"""

from __future__ import annotations

import networkx as nx
import torch
from torch import nn

from .build import _needed, build_module
from ..ir.graph import Graph, Node, OutputInfo, Value

# Ops whose result for one row depends on that row alone (batch-mixing ops are excluded).
ROW_WISE = {"linear", "embedding", "add", "mul", "concat", "chunk", "split", "identity", "layernorm",
            "relu", "leaky_relu", "gelu", "silu", "elu", "selu", "sigmoid", "tanh", "softmax", "log_softmax"}


class Scan(nn.Module):
    """out[:, t], states = cell(x[:, t], states), for t in 0..T-1 (or T-1..0 when reversed).

    ``cell`` holds the cell's modules (state_dict keys ``<scan path>.cell.<cell node>``);
    ``pre`` computes the hoisted values for all steps at once, ``step`` the rest per step.
    """

    def __init__(self, cell: nn.Module, pre: nn.Module | None, step: nn.Module, sizes: list[int],
                 state_index: list[int], emit_index: int, n_hoisted: int, reverse: bool):
        super().__init__()
        self.cell = cell
        # The graph modules share `cell`'s submodules; kept out of the module tree so that
        # state_dict lists each weight once.
        self.__dict__["pre"] = pre
        self.__dict__["step"] = step
        self.sizes = sizes
        self.state_index = state_index
        self.emit_index = emit_index
        self.n_hoisted = n_hoisted
        self.reverse = reverse

    def forward(self, x: torch.Tensor, *init: torch.Tensor):
        n, steps = x.shape[0], x.shape[1]
        states = list(init) if init else [x.new_zeros(n, size) for size in self.sizes]
        if self.pre is not None:
            hoisted = self.pre(x.reshape(n * steps, *x.shape[2:]))
            hoisted = hoisted if isinstance(hoisted, tuple) else (hoisted,)
            per_step = [h.reshape(n, steps, *h.shape[1:]) for h in hoisted]
        else:
            per_step = [x]
        outs = []
        for t in (range(steps - 1, -1, -1) if self.reverse else range(steps)):
            result = self.step(*(h[:, t] for h in per_step), *states)
            result = result if isinstance(result, tuple) else (result,)
            states = [result[i] for i in self.state_index]
            outs.append(result[self.emit_index])
        if self.reverse:
            outs.reverse()
        return (torch.stack(outs, 1), *states)

    @property
    def code(self) -> str:
        pre = self.pre.code if self.pre is not None else "    # nothing hoisted\n"
        return "# before the loop, for all steps at once\n" + pre + "\n# each step\n" + self.step.code


def build_scan(p) -> Scan:
    """The Scan module for ScanParams ``p`` (its cell graph split into hoisted and per-step parts)."""
    cell: Graph = p.cell
    x_name = next(iter(cell.inputs))
    hoisted = _hoistable(cell, x_name)
    ports = [o.name for o in cell.outputs]
    state_index = [ports.index(s) for s in p.states]
    emit_index = ports.index(p.emit)
    sizes = [cell.inputs[s].shape[1] for s in p.states]
    full = build_module(cell)  # builds every module once; the split graphs reuse them
    root = nn.Module()
    for name, child in full.named_children():
        root.add_module(name, child)
    if not hoisted:
        return Scan(root, None, full, sizes, state_index, emit_index, 0, p.reverse)
    pre_graph, step_graph, boundary = _split(cell, x_name, hoisted)
    pre = build_module(pre_graph, modules=root)
    step = build_module(step_graph, modules=root)
    return Scan(root, pre, step, sizes, state_index, emit_index, len(boundary), p.reverse)


def _hoistable(cell: Graph, x_name: str) -> set[str]:
    """Nodes computed from x_t alone, through row-wise ops only (no state reaches them), that
    some output needs (the built cell has no module for a node that reaches no output)."""
    needed = _needed(cell, cell.outputs)
    dependent: set[str] = set()
    for s in cell.inputs:
        if s != x_name:
            dependent |= {s} | nx.descendants(cell.nx, s)
    ok: set[str] = set()
    for n in cell.op_nodes():  # topological: a node's inputs are decided before it
        if n.path in needed and n.path not in dependent and n.op in ROW_WISE and all(v.node == x_name or v.node in ok for v in n.inputs):
            ok.add(n.path)
    return ok


def _split(cell: Graph, x_name: str, hoisted: set[str]) -> tuple[Graph, Graph, list[Value]]:
    """Two graphs: x -> hoisted values used later; (those values, states) -> the cell's outputs."""
    # Values the per-step part reads from the hoisted part; x_t itself counts, when a
    # per-step node reads it directly (then the pre graph passes it through).
    before = hoisted | {x_name}
    boundary: list[Value] = []
    needed = _needed(cell, cell.outputs)
    for n in cell.op_nodes():
        if n.path in hoisted or n.path not in needed:  # a dead per-step node reads nothing at run time
            continue
        for v in n.inputs:
            if v.node in before and v not in boundary:
                boundary.append(v)
    for o in cell.outputs:
        if o.value.node in before and o.value not in boundary:
            boundary.append(o.value)
    pre_nx = cell.nx.subgraph([x_name, *hoisted]).copy()
    pre = Graph(cell.name + "_pre", pre_nx, {x_name: cell.inputs[x_name]},
                [OutputInfo(f"b{i}", v) for i, v in enumerate(boundary)], {}, cell.params)
    names = {(v.node, v.port): f"_hoisted{i}" for i, v in enumerate(boundary)}
    step_nx = nx.DiGraph()
    order = 0
    inputs = {}
    for (node, port), name in names.items():
        t = next(v.type for v in boundary if (v.node, v.port) == (node, port))
        inputs[name] = t
        step_nx.add_node(name, node=Node(name, "input", None, [], {"out": t}), order=order)
        order += 1
    for s, t in cell.inputs.items():
        if s != x_name:
            inputs[s] = t
            step_nx.add_node(s, node=cell.node(s), order=order)
            order += 1

    def rewire(v: Value) -> Value:
        key = (v.node, v.port)
        return Value(names[key], "out", v.type) if key in names else v

    for n in cell.op_nodes():
        if n.path in hoisted or n.path not in needed:
            continue
        copy = Node(n.path, n.op, n.params, [rewire(v) for v in n.inputs], n.outputs, n.location, n.scope, n.meta)
        step_nx.add_node(n.path, node=copy, order=order)
        order += 1
        for slot, v in enumerate(copy.inputs):
            step_nx.add_edge(v.node, n.path)
    outputs = [OutputInfo(o.name, rewire(o.value)) for o in cell.outputs]
    step = Graph(cell.name + "_step", step_nx, inputs, outputs, {}, cell.params)
    return pre, step, boundary
