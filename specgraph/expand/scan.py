"""Recurrence: a `scan:` node runs a cell block over the time dim of a sequence.

```yaml
blocks:
  lstm_cell:
    params: {hidden: int}
    states: {h: $hidden, c: $hidden}       # recurrent states and their feature sizes
    inputs: [x, h, c]                      # the step input x_t, then the states h_{t-1}, c_{t-1}
    outputs: {h: h_new, c: c_new}          # the new states; an output named `out` is emitted
    nodes: {...}                           # per step (default: the first state)
  attend_cell:
    states: {h: $hidden}
    context: [enc]                         # read-only tensors, whole at every step
    inputs: [x, h, enc]                    # ... after the states
graph:
  encoder: {scan: lstm_cell, hidden: 256, from: tokens, init: {h: h0, c: c0}, reverse: false}
  # ports: encoder.out [N, T, H] (every step's output), encoder.h, encoder.c [N, H] (final states)
  decoder: {scan: attend_cell, from: targets, init: {h: encoder.h}, context: {enc: encoder.out}}
```

The cell is expanded once, for one time step ([N, F] in, [N, size] states, each context
tensor at its full shape, e.g. [N, S, H] with S kept symbolic), into a graph of its own; the
scan is one node of the outer graph (op ``scan``) whose module loops over time, its inputs
the sequence, the given initial states, then the context tensors.  States start at zeros
unless ``init`` names nodes that give them (``0`` starts one state at zeros explicitly).
A cell that is exactly one step of torch's rnn, gru or lstm is fused (ops/cell_match.py).
"""

from __future__ import annotations

from dataclasses import replace

from ..diagnostics import did_you_mean
from ..ir.graph import Node, OutputInfo, Value
from ..ir.tensor_type import TensorType
from ..ops.cell_match import torch_cell
from ..ops.scan import ScanOp, ScanParams
from .requirements import check_requirements
from .scope import Env

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
                       hint="initial states go in `init: {h: node}`, read-only tensors in `context: {name: node}`")
    seq = inputs[0].type
    if seq.rank != 3:
        raise ex.error("E410", f"a scan runs over a [N, T, F] sequence, found a rank-{seq.rank} tensor {seq}", src, ypath,
                       key=True, path=here)
    path = ctx.namer.name(name)
    values = ex.blocks.block_params(nd, block, bsrc, bpath, ctx, ypath, index, path)
    n, steps, features = seq.shape
    context = _context(ex, nd, block, block_name, ctx, ypath, path, seq)
    # The cell's `let` sees its step input and context tensors; the states are sized by it.
    step = {block.inputs[0]: Value(path, "step", TensorType((n, features), seq.dtype)), **context} if block.inputs else {}
    values = ex.blocks.bind_let(block.let, values, bsrc, bpath + ("let",), path, inputs=step)
    if block.require:
        check_requirements(ex, block.require, Env(values, {k: {"out": v} for k, v in step.items()}, {}), bsrc,
                           bpath + ("require",), path)
    sizes: dict[str, int] = {}
    for state, raw in block.states.items():
        size = ex.evaluate(raw, values, bsrc, bpath + ("states", state), path)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ex.error("E204", f"state '{state}' needs a positive feature size, found {size!r}", bsrc,
                           bpath + ("states", state), path=path)
        sizes[state] = size
    _check_cell_inputs(ex, block, bsrc, bpath, sizes, path)
    state_types = {s: TensorType((n, size), seq.dtype) for s, size in sizes.items()}
    given, init = _initial_states(ex, nd, ctx, ypath, path, state_types)
    step_inputs = {block.inputs[0]: TensorType((n, features), seq.dtype), **state_types,
                   **{c: v.type for c, v in context.items()}}
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
    fused = torch_cell(cell, tuple(sizes), emit, tuple(context))  # or why not
    params = ScanParams(cell=cell, block=block_name, states=tuple(sizes), reverse=nd.reverse, emit=emit,
                        init=tuple(given), context=tuple(context), fused=None if isinstance(fused, str) else fused,
                        not_fused=fused if isinstance(fused, str) else "")
    outputs = {"out": TensorType((n, steps, emitted.shape[1]), seq.dtype), **state_types}
    node_inputs = (inputs[0], *init, *context.values())
    node = Node(path, _SCAN, params, node_inputs, outputs, src.location(ypath, key=True), ctx.scope,
                _SCAN.node_traits(params, [v.type for v in node_inputs]))
    ex.add_node(node)
    return {port: Value(path, port, t) for port, t in outputs.items()}


def _check_cell_inputs(ex, block, bsrc, bpath: tuple, sizes: dict[str, int], path: str) -> None:
    """A cell's `inputs:` are its whole signature, as for any block: the step input, then the
    states, then the context tensors, in the order `states:` and `context:` declare them."""
    step_input = block.inputs[0] if block.inputs else None
    for i, c in enumerate(block.context):
        clash = "also a state" if c in sizes else "also the step input" if c == step_input else \
            "named twice" if c in block.context[:i] else None
        if clash:
            raise ex.error("E305", f"context '{c}' is {clash}", bsrc, bpath + ("context", i), path=path,
                           hint="a context tensor is read-only and whole: neither a state nor the step input")
    if len(block.inputs) != 1 + len(sizes) + len(block.context) or block.inputs[1:] != [*sizes, *block.context]:
        want = ", ".join(["x", *sizes, *block.context])
        what = "then its states" + (", then its context tensors" if block.context else "")
        raise ex.error("E204", f"a cell's inputs are the step input, {what}, in order: [{want}]; found {block.inputs}",
                       bsrc, bpath + ("inputs",), path=path)


def _initial_states(ex, nd, ctx, ypath: tuple, path: str,
                    state_types: dict[str, TensorType]) -> tuple[list[str], list[Value]]:
    """The states `init` gives a value (in state order) and those values; the others start at zeros."""
    if nd.init is None:
        return [], []
    unknown = [k for k in nd.init if k not in state_types]
    missing = [k for k in state_types if k not in nd.init]
    if unknown or missing:
        key = (unknown or missing)[0]
        raise ex.error("E408", f"`init` gives state '{key}' that the cell does not have" if unknown else
                       f"`init` must give every state of the cell or none; '{key}' is missing",
                       ctx.source, ypath + ("init",) + ((key,) if unknown else ()), key=True, path=path,
                       hint=f"the cell's states: {', '.join(state_types)}" + ("" if unknown else
                                                                              f"; `{key}: 0` starts it at zeros"))
    given, values = [], []
    for state, t in state_types.items():
        ref = nd.init[state]
        if not isinstance(ref, str):
            if ref != 0:
                raise ex.error("E204", f"the initial state '{state}' is a node or 0 (zeros), found {ref!r}", ctx.source,
                               ypath + ("init", state), path=path)
            continue
        value = ex.refs.resolve(ref, ctx, ypath + ("init", state), path)
        if value.type.shape != t.shape:
            raise ex.error("E402", f"initial state '{state}' has shape {value.type}, the cell's state is {t}",
                           ctx.source, ypath + ("init", state), path=path)
        given.append(state)
        values.append(value)
    return given, values


def _context(ex, nd, block, block_name: str, ctx, ypath: tuple, path: str, seq: TensorType) -> dict[str, Value]:
    """The tensors `context:` binds to the cell's context names, in the cell's order, each
    checked to have the scanned sequence's batch dim."""
    bound = nd.context or {}
    declared = block.context
    for name in bound:
        if name not in declared:
            hint = did_you_mean(name, declared) or (f"its context: {', '.join(declared)}" if declared else
                                                     f"declare it in the cell: `context: [{name}]`, and name it in "
                                                     f"its `inputs:` after the states")
            raise ex.error("E301", f"cell '{block_name}' has no context '{name}'", ctx.source, ypath + ("context", name),
                           key=True, path=path, hint=hint)
    missing = [c for c in declared if c not in bound]
    if missing:
        raise ex.error("E408", f"cell '{block_name}' reads context '{missing[0]}', which the scan does not bind",
                       ctx.source, ypath + (("context",) if nd.context is not None else ()), key=True, path=path,
                       hint=f"context: {{{', '.join(f'{c}: <node>' for c in declared)}}}")
    values: dict[str, Value] = {}
    for name in declared:
        value = ex.refs.resolve(bound[name], ctx, ypath + ("context", name), path)
        t = value.type
        if t.rank == 0:
            raise ex.error("E410", f"context '{name}' is a scalar; a context tensor has the batch dim first, like "
                                   f"the sequence {seq}", ctx.source, ypath + ("context", name), path=path)
        if t.shape[0] != seq.shape[0]:
            raise ex.error("E402", f"context '{name}' has batch dim {t.shape[0]} ({bound[name]} {t}); the scanned "
                                   f"sequence has {seq.shape[0]} ({seq})", ctx.source, ypath + ("context", name),
                           path=path, hint="each sequence of the batch reads its own context: dim 0 is the batch")
        values[name] = value
    return values
