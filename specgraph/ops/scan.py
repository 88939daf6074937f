"""The `scan` op: a cell graph run over the time dim of a sequence (made by expand/scan.py
from a `scan:` node; never written as `op:`).

Cell nodes that read only the step input x_t (typically the input projection W·x_t + b)
do not depend on the previous state, so they are *hoisted*: computed for all T steps in one
batched call before the loop, leaving only the recurrent part inside it.  This keeps the
gate-level spec as written while doing per step only the work that must be sequential.
Hoisting is limited to nodes whose op is row-wise for their params (``Trait.ROW_WISE``: each
row of the batch computed alone), so it cannot change results; ops that mix rows (batch
norm) stay in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
from pydantic import ConfigDict

from ..ir.graph import Graph, GraphBuilder, Node, OutputInfo, Value
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .base import Op, OpParams
from .registry import register_op


class ScanParams(OpParams):
    """Made by the compiler from a `scan:` node, not written in specs."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    cell: Any  # the cell's Graph, for one time step
    block: str
    states: tuple[str, ...]
    reverse: bool = False
    emit: str = "out"


@dataclass(frozen=True)
class ScanSplit:
    """A cell cut in two: ``pre`` (x -> the hoisted values the loop reads; None when nothing is
    hoisted) and ``step`` ((those values or x_t, states) -> the cell's outputs)."""

    pre: Graph | None
    step: Graph
    hoisted: frozenset[str]


@register_op
class ScanOp(Op):
    """A cell run over time. Shape: [N, T, F] (+ initial states [N, S_i]) -> out [N, T, E],
    and the final state of each of the cell's states [N, S_i]."""

    name = "scan"
    category = "recurrent"
    max_inputs = None
    Params = ScanParams
    traits = frozenset({Trait.COMPILER_MADE, Trait.LOOPS_OVER_TIME})

    def output_ports(self, p):
        return ("out", *p.states)

    def infer(self, p, inputs):
        n, steps, _ = inputs[0].shape
        emitted = next(o.value.type for o in p.cell.outputs if o.name == p.emit)
        return [TensorType((n, steps, emitted.shape[1]), inputs[0].dtype),
                *(next(o.value.type for o in p.cell.outputs if o.name == s) for s in p.states)]

    def subgraphs(self, p):
        split = split_cell(p.cell)
        return {"cell": p.cell, "pre": split.pre, "step": split.step}

    def build(self, p, inputs, subgraphs=None):
        from .torch_modules import Scan

        cell = subgraphs.modules  # the cell's modules, once; its pre and step graphs call them
        ports = [o.name for o in p.cell.outputs]
        cell.__dict__["pre"] = subgraphs["pre"]  # outside the module tree: state_dict lists each weight once
        cell.__dict__["step"] = subgraphs["step"]
        cell.hoisted = subgraphs["pre"] is not None
        sizes = [p.cell.inputs[s].shape[1] for s in p.states]
        return Scan(cell, sizes, [ports.index(s) for s in p.states], ports.index(p.emit), p.reverse)

    def num_params(self, p, inputs):
        return sum(n.op.num_params(n.params, [v.type for v in n.inputs]) for n in p.cell.op_nodes())

    def macs(self, p, inputs, outputs):
        steps = inputs[0].shape[1]
        if not isinstance(steps, int):
            return None
        total = 0
        for n in p.cell.op_nodes():
            m = n.op.macs(n.params, [v.type for v in n.inputs], list(n.outputs.values()))
            if m is None:
                return None
            total += m
        return total * steps

    def describe(self, p):
        return f"{p.block}{' reversed' if p.reverse else ''} over T"


def hoistable(cell: Graph) -> set[str]:
    """Nodes computed from x_t alone, through row-wise nodes only (no state reaches them), that
    some output needs (the built cell has no module for a node that reaches no output)."""
    x_name = next(iter(cell.inputs))
    needed = cell.needed_by()
    dependent: set[str] = set()
    for s in cell.inputs:
        if s != x_name:
            dependent |= {s} | nx.descendants(cell.nx, s)
    ok: set[str] = set()
    for n in cell.op_nodes():  # topological: a node's inputs are decided before it
        if n.path in needed and n.path not in dependent and Trait.ROW_WISE in n.traits \
                and all(v.node == x_name or v.node in ok for v in n.inputs):
            ok.add(n.path)
    return ok


def split_cell(cell: Graph) -> ScanSplit:
    """The cell cut into its hoisted part and its per-step part (see the module docstring)."""
    hoisted = hoistable(cell)
    needed = cell.needed_by()
    if not hoisted:
        return ScanSplit(None, cell, frozenset())
    x_name = next(iter(cell.inputs))
    # Values the per-step part reads from the hoisted part; x_t itself counts, when a
    # per-step node reads it directly (then the pre graph passes it through).
    before = hoisted | {x_name}
    boundary: list[Value] = []
    for n in cell.op_nodes():
        if n.path in hoisted or n.path not in needed:  # a dead per-step node reads nothing at run time
            continue
        for v in n.inputs:
            if v.node in before and v not in boundary:
                boundary.append(v)
    for o in cell.outputs:
        if o.value.node in before and o.value not in boundary:
            boundary.append(o.value)

    pre = GraphBuilder()
    pre.add(cell.node(x_name))
    for n in cell.op_nodes():
        if n.path in hoisted:
            pre.add(n)
    pre_graph = pre.build(cell.name + "_pre", [OutputInfo(f"b{i}", v) for i, v in enumerate(boundary)], cell.params)

    names = {(v.node, v.port): f"_hoisted{i}" for i, v in enumerate(boundary)}
    step = GraphBuilder()
    for v in boundary:
        step.add_input(names[(v.node, v.port)], v.type)
    for s in cell.inputs:
        if s != x_name:
            step.add(cell.node(s))

    def rewire(v: Value) -> Value:
        key = (v.node, v.port)
        return Value(names[key], "out", v.type) if key in names else v

    for n in cell.op_nodes():
        if n.path in hoisted or n.path not in needed:
            continue
        step.add(Node(n.path, n.op, n.params, tuple(rewire(v) for v in n.inputs), n.outputs, n.location, n.scope,
                      n.traits))
    outputs = [OutputInfo(o.name, rewire(o.value)) for o in cell.outputs]
    return ScanSplit(pre_graph, step.build(cell.name + "_step", outputs, cell.params), frozenset(hoisted))


__all__ = ["ScanParams", "ScanOp", "ScanSplit", "hoistable", "split_cell"]
