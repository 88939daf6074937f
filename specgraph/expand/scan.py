"""Recurrence: a `scan:` node runs a cell block over the time dim of a sequence.

```yaml
blocks:
  lstm_cell:
    params: {hidden: int}
    states: {h: $hidden, c: $hidden}       # recurrent states and their feature sizes
    inputs: [x, h, c]                      # the step input x_t, then the states h_{t-1}, c_{t-1}
    outputs: {h: h_new, c: c_new}          # the new states; an output named `out` is emitted
    nodes: {...}                           # per step (default: the first state)
graph:
  encoder: {scan: lstm_cell, hidden: 256, from: tokens, init: {h: h0, c: c0}, reverse: false}
  # ports: encoder.out [N, T, H] (every step's output), encoder.h, encoder.c [N, H] (final states)
```

The cell is expanded once, for one time step ([N, F] in, [N, size] states), into a graph
of its own; the scan is one node of the outer graph (op ``scan``) whose module loops over
time.  States start at zeros unless ``init`` names nodes that give them.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from ..ir.dims import TensorType
from ..ir.graph import Graph, Node, Value
from ..ops.base import Op, OpParams
from ..ops.registry import register_op


def expand_scan(ex, name: str, nd, inputs: list[Value], ctx, ypath: tuple, index: int | None) -> dict[str, Value]:
    """Expand a `scan:` node (see the module docstring); ``ex`` is the running expander."""
    src = ctx.source
    here = ctx.namer.peek(name)
    block_name, block, bsrc, bpath = ex.lookup_block(nd, ctx, ypath, index, here, key="scan")
    nd = nd.model_copy(update={"block": block_name})
    if nd.inline:
        raise ex.error("E204", "`inline` does not apply to a scan", src, ypath + ("inline",), key=True, path=here)
    if not block.states:
        raise ex.error("E204", f"block '{block_name}' has no `states:`, so it cannot be scanned", src, ypath + ("scan",),
                       path=here, hint="a cell declares its recurrent states, e.g. states: {h: $hidden}")
    if len(inputs) != 1:
        raise ex.error("E408", f"a scan takes one sequence input, found {len(inputs)}", src, ypath, key=True, path=here,
                       hint="initial states go in `init: {h: node}`")
    seq = inputs[0].type
    if seq.rank != 3:
        raise ex.error("E410", f"a scan runs over a [N, T, F] sequence, found a rank-{seq.rank} tensor {seq}", src, ypath,
                       key=True, path=here)
    path = ctx.namer.name(name)
    values = ex.block_params(nd, block, bsrc, bpath, ctx, ypath, index, path)
    n, steps, features = seq.shape
    sizes: dict[str, int] = {}
    for state, raw in block.states.items():
        size = ex.evaluate(raw, values, bsrc, bpath + ("states", state), path)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ex.error("E204", f"state '{state}' needs a positive feature size, found {size!r}", bsrc,
                           bpath + ("states", state), path=path)
        sizes[state] = size
    if block.inputs[1:] != list(sizes) or len(block.inputs) != len(sizes) + 1:
        raise ex.error("E204", f"a cell's inputs are the step input, then its states in order: "
                               f"[x, {', '.join(sizes)}]; found {block.inputs}", bsrc, bpath + ("inputs",), path=path)
    state_types = {s: TensorType((n, size), seq.dtype) for s, size in sizes.items()}
    init = []
    if nd.init is not None:
        unknown = [k for k in nd.init if k not in sizes]
        missing = [k for k in sizes if k not in nd.init]
        if unknown or missing:
            key = (unknown or missing)[0]
            raise ex.error("E408", f"`init` gives state '{key}' that the cell does not have" if unknown else
                           f"`init` must give every state of the cell or none; '{key}' is missing",
                           src, ypath + ("init",) + ((key,) if unknown else ()), key=True, path=path,
                           hint=f"the cell's states: {', '.join(sizes)}")
        for state in sizes:
            value = ex.resolve(nd.init[state], ctx, ypath + ("init", state), path)
            if value.type.shape != state_types[state].shape:
                raise ex.error("E402", f"initial state '{state}' has shape {value.type}, the cell's state is "
                                       f"{state_types[state]}", src, ypath + ("init", state), path=path)
            init.append(value)
    step_inputs = {block.inputs[0]: TensorType((n, features), seq.dtype), **state_types}
    cell = ex.expand_cell(block, bsrc, bpath, values, step_inputs, path, block_name)
    ports = [o.name for o in cell.outputs]
    if ports == ["out"] and len(sizes) == 1:  # `outputs: h_new` for a one-state cell
        cell.outputs[0].name = ports[0] = next(iter(sizes))
    for state, t in state_types.items():
        if state not in ports:
            raise ex.error("E204", f"cell '{block_name}' must output its new '{state}'", bsrc, bpath + ("outputs",),
                           path=path, hint=f"outputs: {{{', '.join(f'{s}: <node>' for s in sizes)}}}")
        got = cell.outputs[ports.index(state)].value.type
        if got.shape != t.shape:
            raise ex.error("E402", f"cell '{block_name}' returns state '{state}' as {got}, but the state is {t}", bsrc,
                           bpath + ("outputs",), path=path, hint="the new state must have the shape of the old one")
    emit = "out" if "out" in ports else next(iter(sizes))
    emitted = cell.outputs[ports.index(emit)].value.type
    if emitted.rank != 2:
        raise ex.error("E410", f"the per-step output of cell '{block_name}' must be [N, F], found {emitted}", bsrc,
                       bpath + ("outputs",), path=path)
    params = ScanParams(cell=cell, block=block_name, states=tuple(sizes), reverse=nd.reverse, emit=emit)
    outputs = {"out": TensorType((n, steps, emitted.shape[1]), seq.dtype), **state_types}
    node = Node(path, "scan", params, [inputs[0], *init], outputs, src.location(ypath, key=True), ctx.scope,
                meta={"cell": block_name})
    ex.add_node(node)
    return {port: Value(path, port, t) for port, t in outputs.items()}


class ScanParams(OpParams):
    """Made by the compiler from a `scan:` node, not written in specs."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    cell: Any  # the cell's Graph, for one time step
    block: str
    states: tuple[str, ...]
    reverse: bool = False
    emit: str = "out"


@register_op
class ScanOp(Op):
    """A cell run over time. Shape: [N, T, F] (+ initial states [N, S_i]) -> out [N, T, E],
    and the final state of each of the cell's states [N, S_i]."""

    name = "scan"
    category = "recurrent"
    max_inputs = None
    Params = ScanParams

    def output_ports(self, p):
        return ("out", *p.states)

    def infer(self, p, inputs):
        n, steps, _ = inputs[0].shape
        emitted = next(o.value.type for o in p.cell.outputs if o.name == p.emit)
        return [TensorType((n, steps, emitted.shape[1]), inputs[0].dtype),
                *(next(o.value.type for o in p.cell.outputs if o.name == s) for s in p.states)]

    def build(self, p, inputs):
        from ..torch.scan import build_scan

        return build_scan(p)

    def num_params(self, p, inputs):
        from ..ops import get_op

        return sum(get_op(n.op).num_params(n.params, [v.type for v in n.inputs]) for n in p.cell.op_nodes())

    def macs(self, p, inputs, outputs):
        from ..ops import get_op

        steps = inputs[0].shape[1]
        if not isinstance(steps, int):
            return None
        total = 0
        for n in p.cell.op_nodes():
            m = get_op(n.op).macs(n.params, [v.type for v in n.inputs], list(n.outputs.values()))
            if m is None:
                return None
            total += m
        return total * steps

    def scratch_bytes(self, p, inputs, outputs, ctx):
        """What the Scan module (scan_module.py) allocates in an eval call, replayed: zero
        initial states unless ``init`` gives them; the hoisted part of the cell for all T steps
        at once (its outputs are held through the loop); then per step the cell's live tensors
        (the per-step graph's own predicted peak), every step's emitted output kept for the
        final ``torch.stack``, and the stack itself.  The cell graphs are sized by this module
        (a scan's cell is one step, batch N); the hoisted rows scale by T, the ops being
        row-wise.  Which nodes are hoisted is scan_module's rule, so this imports it (and torch)."""
        from ..analysis.memory.walk import Allocations, memory_report
        from ..torch.scan import _hoistable, _split

        x, steps, cell = inputs[0], inputs[0].shape[1], p.cell
        x_name = next(iter(cell.inputs))
        hoisted = _hoistable(cell, x_name)
        if hoisted:
            pre_graph, step_graph, _ = _split(cell, x_name, hoisted)
            pre = memory_report(pre_graph, None, ctx.sizes, threads=ctx.threads)
            pre_peak, held = steps * (pre.inference_peak - pre.input_bytes), steps * pre.output_bytes
        else:
            step_graph, pre_peak, held = cell, 0, 0
        step = memory_report(step_graph, None, ctx.sizes, threads=ctx.threads)
        states = {s: outputs[1 + i].nbytes for i, s in enumerate(p.states)}
        emitted = outputs[0].nbytes // max(steps, 1)  # one step's output
        carried = sum(b for s, b in states.items() if s != p.emit)  # states that are not also the step's output
        a = Allocations()
        zeros = a.alloc(sum(states.values())) if len(inputs) == 1 else 0
        a.free(a.alloc(pre_peak))
        a.alloc(held)
        if steps:
            a.alloc((steps - 1) * emitted + carried)  # before the last step: the outputs so far, the states
            a.free(zeros if steps > 1 else 0)  # replaced by the first step's states
            a.free(a.alloc(step.inference_peak - step.input_bytes))  # the last step, its new states included
            a.alloc(emitted + carried)
            a.free(carried)  # the last step's input states
        a.alloc(outputs[0].nbytes)  # torch.stack of the outputs
        return a.peak - sum(t.nbytes for t in outputs)

    def describe(self, p):
        return f"{p.block}{' reversed' if p.reverse else ''} over T"

