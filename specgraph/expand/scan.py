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

from dataclasses import replace

from ..ir.graph import Node, OutputInfo, Value
from ..ir.tensor_type import TensorType
from ..ops.scan import ScanOp, ScanParams

_SCAN = ScanOp()


def expand_scan(ex, name: str, nd, inputs: list[Value], ctx, ypath: tuple, index: int | None) -> dict[str, Value]:
    """Expand a `scan:` node (see the module docstring); ``ex`` is the running expander."""
    src = ctx.source
    here = ctx.namer.peek(name)
    block_name, block, bsrc, bpath = ex.blocks.lookup_block(nd, ctx, ypath, index, here, key="scan")
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
    values = ex.blocks.block_params(nd, block, bsrc, bpath, ctx, ypath, index, path)
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
    cell = ex.blocks.expand_cell(block, bsrc, bpath, values, step_inputs, path, block_name)
    ports = [o.name for o in cell.outputs]
    if ports == ["out"] and len(sizes) == 1:  # `outputs: h_new` for a one-state cell
        ports[0] = next(iter(sizes))
        cell = replace(cell, outputs=(OutputInfo(ports[0], cell.outputs[0].value, cell.outputs[0].train_only),))
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
    node = Node(path, _SCAN, params, (inputs[0], *init), outputs, src.location(ypath, key=True), ctx.scope,
                _SCAN.node_traits(params, [v.type for v in (inputs[0], *init)]))
    ex.add_node(node)
    return {port: Value(path, port, t) for port, t in outputs.items()}
