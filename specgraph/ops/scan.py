"""The `scan` op: a cell graph run over the time dim of a sequence (made by expand/scan.py
from a `scan:` node; never written as `op:`).

The cell's inputs are the step input x_t, its states, then its context tensors (read-only,
whole at every step: an encoder's outputs [N, S, H] for attention).  Two kinds of cell nodes
do not depend on the previous state, so they are *hoisted* out of the loop:

* nodes that read only x_t (typically the input projection W·x_t + b) are computed for all T
  steps in one batched call before the loop (the ``pre`` graph, over [N·T, F] rows);
* nodes that read only context tensors (a projection of the encoder outputs, W_a·enc) are
  computed once before the loop (the ``once`` graph) and read whole by every step.

This keeps the gate-level spec as written while doing per step only the work that must be
sequential.  Hoisting is limited to nodes whose op is row-wise for their params
(``Trait.ROW_WISE``: each row of the batch computed alone, which also excludes random and
stateful ops such as dropout and batch norm), so it cannot change results; ops that mix rows
stay in the loop.

A cell that computes exactly one step of torch's rnn, gru or lstm (recognised by its
structure, ops/cell_match.py) is *fused*: the scan runs torch's layer kernel over the whole
sequence instead of the loop, with the cell's parameters as its weights (``ScanParams.fused``;
``not_fused`` says why a scan is not).
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
    init: tuple[str, ...] = ()  # the states whose initial values are inputs of the node (the others start at zeros)
    context: tuple[str, ...] = ()  # the cell's context inputs, the node's last inputs in this order
    fused: Any = None  # a cell_match.TorchCell: torch's layer the cell is one step of (then the scan runs its kernel)
    not_fused: str = ""  # otherwise why not, as a phrase ("its cell reads a context")


@dataclass(frozen=True)
class ScanSplit:
    """A cell cut in parts: ``pre`` (x -> the hoisted values the loop reads per step; None when
    nothing is hoisted), ``once`` (the context tensors -> the values computed from them alone;
    None when there are none) and ``step`` ((those per-step values or x_t, states, those once
    values or the context tensors) -> the cell's outputs)."""

    pre: Graph | None
    step: Graph
    hoisted: frozenset[str]
    once: Graph | None = None
    hoisted_once: frozenset[str] = frozenset()


@register_op
class ScanOp(Op):
    """A cell run over time. Shape: [N, T, F] (+ initial states [N, S_i], + context tensors
    [N, ...]) -> out [N, T, E], and the final state of each of the cell's states [N, S_i]."""

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
        split = split_cell(p.cell, p.context)
        return {"cell": p.cell, "pre": split.pre, "step": split.step, "once": split.once}

    def recurrence(self, p):
        return p.cell, p.states

    def build(self, p, inputs, subgraphs=None):
        from .torch_modules import Scan

        cell = subgraphs.modules  # the cell's modules, once; its pre and step graphs call them
        ports = [o.name for o in p.cell.outputs]
        # Outside the module tree (state_dict lists each weight once), and set in __dict__ so that
        # a cell node of the same name (`hoisted`) cannot refuse them; the graphs hold their modules.
        cell.__dict__["pre"] = subgraphs["pre"]
        cell.__dict__["step"] = subgraphs["step"]
        cell.__dict__["once"] = subgraphs["once"]
        cell.__dict__["hoisted"] = subgraphs["pre"] is not None
        cell.__dict__["hoisted_once"] = subgraphs["once"] is not None
        sizes = [p.cell.inputs[s].shape[1] for s in p.states]
        args = (cell, sizes, [ports.index(s) for s in p.states], ports.index(p.emit), p.reverse)
        init_index = [p.states.index(s) for s in p.init]
        if p.fused is None:
            return Scan(*args, init_index=init_index, contexts=len(p.context))
        from .torch_modules import FusedScan

        layer = p.fused.layer()
        return FusedScan(*args, init_index=init_index, kernel=layer.kernel_function(p.fused.params),
                         weights=[(w.path, w.columns, w.zero) for w in p.fused.weights],
                         torch_states=[p.states.index(s) for s in p.fused.states])

    def num_params(self, p, inputs):
        return sum(n.op.num_params(n.params, [v.type for v in n.inputs]) for n in p.cell.op_nodes())

    def num_buffers(self, p, inputs):
        return sum(n.op.num_buffers(n.params, [v.type for v in n.inputs]) for n in p.cell.op_nodes())

    def macs(self, p, inputs, outputs):
        steps = inputs[0].shape[1]
        if not isinstance(steps, int):
            return None
        once = split_cell(p.cell, p.context).hoisted_once  # computed once, not per step
        total = 0
        for n in p.cell.op_nodes():
            m = n.op.macs(n.params, [v.type for v in n.inputs], list(n.outputs.values()))
            if m is None:
                return None
            total += m if n.path in once else m * steps
        return total

    def describe(self, p):
        return f"{p.block}{' reversed' if p.reverse else ''} over T" + (f", fused: {p.fused.describe()}" if p.fused else "")

    def runs_as(self, p):
        if p.fused is not None:
            return f"fused: torch's {p.fused.describe()} kernel runs the whole sequence ({p.block} is exactly its step)"
        return f"not fused, runs {p.block} step by step: {p.not_fused}" if p.not_fused else None


def hoistable(cell: Graph) -> set[str]:
    """Nodes computed from x_t alone, through row-wise nodes only (no state or context reaches
    them), that some output needs (the built cell has no module for a node that reaches no output)."""
    x_name = next(iter(cell.inputs))
    return _computed_from(cell, {x_name}, set(cell.inputs) - {x_name})


def hoistable_once(cell: Graph, context: tuple[str, ...]) -> set[str]:
    """Nodes computed from the context tensors alone, through row-wise nodes only (neither x_t
    nor a state reaches them), that some output needs: the same at every step."""
    return _computed_from(cell, set(context), set(cell.inputs) - set(context)) if context else set()


def _computed_from(cell: Graph, sources: set[str], others: set[str]) -> set[str]:
    needed = cell.needed_by()
    dependent: set[str] = set()
    for s in others:
        dependent |= {s} | nx.descendants(cell.nx, s)
    ok: set[str] = set()
    for n in cell.op_nodes():  # topological: a node's inputs are decided before it
        if n.path in needed and n.path not in dependent and Trait.ROW_WISE in n.traits \
                and all(v.node in sources or v.node in ok for v in n.inputs):
            ok.add(n.path)
    return ok


def split_cell(cell: Graph, context: tuple[str, ...] = ()) -> ScanSplit:
    """The cell cut into its hoisted parts and its per-step part (see the module docstring);
    ``context``: the names of the cell's context inputs (its last inputs)."""
    hoisted, once = hoistable(cell), hoistable_once(cell, context)
    if not hoisted and not once:
        return ScanSplit(None, cell, frozenset())
    x_name = next(iter(cell.inputs))
    needed = cell.needed_by()
    per_step = [n for n in cell.op_nodes() if n.path in needed and n.path not in hoisted | once]
    # A dead per-step node reads nothing at run time, so only `per_step` decides the boundaries.
    pre, pre_boundary = _hoisted_part(cell, [x_name], hoisted, per_step, "_pre")
    fixed, fixed_boundary = _hoisted_part(cell, list(context), once, per_step, "_once")
    names = {(v.node, v.port): f"_hoisted{i}" for i, v in enumerate(pre_boundary)}
    names.update({(v.node, v.port): f"_once{i}" for i, v in enumerate(fixed_boundary)})
    step = GraphBuilder()
    for v in pre_boundary:
        step.add_input(names[(v.node, v.port)], v.type)
    for s in cell.inputs:
        if (s == x_name and pre is None) or (s != x_name and s not in context):
            step.add(cell.node(s))
    for v in fixed_boundary:
        step.add_input(names[(v.node, v.port)], v.type)
    if fixed is None:
        for c in context:
            step.add(cell.node(c))

    def rewire(v: Value) -> Value:
        key = (v.node, v.port)
        return Value(names[key], "out", v.type) if key in names else v

    for n in per_step:
        step.add(Node(n.path, n.op, n.params, tuple(rewire(v) for v in n.inputs), n.outputs, n.location, n.scope,
                      n.traits, n.requires))
    outputs = [OutputInfo(o.name, rewire(o.value)) for o in cell.outputs]
    return ScanSplit(pre, step.build(cell.name + "_step", outputs, cell.params), frozenset(hoisted), fixed,
                     frozenset(once))


def _hoisted_part(cell: Graph, sources: list[str], hoisted: set[str], per_step: list[Node],
                  suffix: str) -> tuple[Graph | None, list[Value]]:
    """The graph computing ``hoisted`` from ``sources`` (None when nothing is hoisted), and the
    values of it the per-step part reads: hoisted values, and the sources themselves where a
    per-step node reads them directly (then the graph passes them through)."""
    if not hoisted:
        return None, []
    before = hoisted | set(sources)
    boundary: list[Value] = []
    for v in [v for n in per_step for v in n.inputs] + [o.value for o in cell.outputs]:
        if v.node in before and v not in boundary:
            boundary.append(v)
    part = GraphBuilder()
    for s in sources:
        part.add(cell.node(s))
    for n in cell.op_nodes():
        if n.path in hoisted:
            part.add(n)
    graph = part.build(cell.name + suffix, [OutputInfo(f"b{i}", v) for i, v in enumerate(boundary)], cell.params)
    return graph, boundary


__all__ = ["ScanParams", "ScanOp", "ScanSplit", "hoistable", "hoistable_once", "split_cell"]
