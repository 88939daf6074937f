"""Memory: bytes of weights and activations per node, and the predicted peak of an inference pass.

Everything here is arithmetic on the Graph's inferred types at concrete sizes (the batch and
any other symbolic dim given by the caller), so, like the rest of the summary, it needs no
torch module.  What is counted, and why:

- **parameter bytes** of a node: its trainable parameters (the op's own ``num_params``) times
  the size of the weights' dtype, float32 — what :func:`specgraph.torch.build.build_module`
  makes.  Buffers (batch norm's running statistics) are not parameters and are left out, as
  ``sum(p.numel() * p.element_size() for p in model.parameters())`` leaves them out.
- **activation bytes** of a node: the sizes of its output tensors at the given sizes, each at
  its own dtype (float32, or int64 for token ids) — whether or not the output owns its memory.
- **new bytes** of a node: the memory its outputs really add.  A view (flatten or reshape of
  a tensor whose strides allow it, permute, unsqueeze, chunk, split, a centre crop) and an op
  that hands back its input (identity, dropout in eval mode) share their input's storage and
  add nothing.  Strides are followed the way torch follows them, so a reshape after a permute
  that torch must copy is counted as a copy.
- **scratch bytes** of a node: memory torch's CPU kernel allocates for the length of the op
  only, from the model registered for the op's class (scratch.py; kernels/), for the ISA the
  machine runs (machine.py).  How the outputs live is what the op promises in its traits:
  ``Trait.IDENTITY_IN_EVAL`` (the output is the input), ``Trait.VIEW`` (a view where
  ``Op.view_strides`` allows one), and a node the built module runs in place (``ir/in_place.py``:
  an activation or add overwriting an input nothing else reads) writes into its input's storage;
  the nodes of a fused gather-dot (ops/gather_dot_match.py: skip-gram's gathers and product, run
  as one kernel that writes only the scores) hold no storage and no scratch.
  An op class without a scratch model (or whose model
  returns None for these inputs) makes the peak a lower bound, and the report lists its nodes.

The **inference peak** (eval mode, under ``torch.no_grad``) walks the eval graph — the nodes
that the non-training outputs need, in the order the built module runs them — and keeps a
storage alive from the node that allocates it to the last node that reads it or any view of
it, or to the end of the block the value was passed into, when that is later: the fx module
the builder generates lets go of each value then, as nested ``nn.Module`` calls do
(``ir/lifetimes.py``).  The graph inputs
are held by the caller for the whole call and the outputs are alive at its end.  At each node
the live bytes are those alive before it, plus its new bytes and its scratch; the peak is
the largest such sum.  It counts activation memory only: the weights are resident anyway and
are reported as ``param_bytes``.

The peak of a training step is not this walk's: which tensors autograd saves and when it frees
them is read from a run on fake tensors (specgraph/torch/train_memory.py, with the arithmetic
in specgraph/analysis/training.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from ...ir.dims import Sym, evaluate
from ...ir.graph import Graph, Node
from ...ir.in_place import in_place_nodes
from ...ir.lifetimes import released_after
from ...ir.strides import contiguous_strides
from ...ir.tensor_type import TensorType
from ...ir.traits import Trait
from ...ops import ShapeError
from ...ops.gather_dot_kernel import unavailable as gather_dot_unavailable
from ...ops.gather_dot_match import gather_dots
from . import kernels  # noqa: F401  (registers the built-in ops' scratch models)
from .scratch import MemoryContext, scratch_model
from .machine import detect

BATCH_DIM = "N"
PARAM_DTYPE = "float32"  # what build_module makes the weights
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
               "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


class SizeError(ValueError):
    """The sizes given do not size the graph: a symbolic dim without a size, or a size at
    which a node's shape rule fails (a window larger than its input)."""


Shape = tuple[int, ...]


@dataclass(frozen=True)
class Tensor:
    """A value at concrete sizes: shape, strides (in elements), dtype and the storage it lives in."""

    shape: Shape
    strides: Shape
    dtype: str
    storage: int

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES.get(self.dtype, 4)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class NodeMemory:
    path: str
    param_bytes: int
    activation_bytes: int  # all its outputs, views included
    new_bytes: int  # what its outputs add to the live memory (0 for a view)
    scratch_bytes: int  # allocated and freed inside the op
    live_bytes: int  # live while it runs: what is alive before it + new + scratch


@dataclass
class MemoryReport:
    sizes: dict[str, int]
    nodes: dict[str, NodeMemory]  # every op node, eval-only or not
    input_bytes: int
    inference_peak: int
    peak_node: str | None  # the node during which the peak is reached (None: the inputs alone)
    unmodelled: list[str]  # eval nodes whose kernels' scratch is not counted: the peak is a lower bound
    output_bytes: int = 0  # the storage the eval outputs hold when the call returns (inputs excluded)

    @property
    def batch_size(self) -> int | None:
        return self.sizes.get(BATCH_DIM)

    @property
    def param_bytes(self) -> int:
        return sum(n.param_bytes for n in self.nodes.values())

    @property
    def activation_bytes(self) -> int:
        """The storage all the outputs occupy, each view counted once with what it views."""
        return sum(n.new_bytes for n in self.nodes.values())

    def to_json(self) -> dict:
        return {"sizes": self.sizes, "param_bytes": self.param_bytes, "activation_bytes": self.activation_bytes,
                "input_bytes": self.input_bytes, "inference_peak_bytes": self.inference_peak,
                "peak_node": self.peak_node, "unmodelled": self.unmodelled}


# ---- sizes ------------------------------------------------------------------------------------

def resolve_sizes(graph: Graph, batch_size: int | None = 1, dims: Mapping[str, int] | None = None) -> dict[str, int]:
    """The size of every symbolic dim of the graph inputs: ``N`` is ``batch_size``, the others
    come from ``dims``.  SizeError names each dim left without a size and the inputs using it."""
    sizes = dict(dims or {})
    if batch_size is not None:
        sizes.setdefault(BATCH_DIM, batch_size)
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SizeError(f"the size of dim {name} must be a positive integer, found {value!r}")
    missing: dict[str, list[str]] = {}
    for name, t in graph.inputs.items():
        for d in t.shape:
            for sym in sorted(getattr(d, "symbols", ())):
                if sym not in sizes:
                    missing.setdefault(sym, []).append(name)
    if missing:
        listed = "; ".join(f"{sym} (in {', '.join(dict.fromkeys(ins))})" for sym, ins in missing.items())
        give = " ".join(f"--dim {sym}=INT" for sym in missing)
        raise SizeError(f"symbolic dims without a size: {listed}; give {give}")
    return sizes


def _concrete(t: TensorType, sizes: dict[str, int], who: str) -> tuple[Shape, str]:
    try:
        return tuple(evaluate(d, sizes) for d in t.shape), t.dtype
    except KeyError as e:
        raise SizeError(f"{who}: cannot size {t} with {_sizes_text(sizes)}") from e


def params_at(params, sizes: dict[str, int]):
    """``params`` with their symbolic values (a reshape's ``${x.height // 7}``) at these sizes: the
    shape rules run again on concrete inputs, which show no symbols to size them against."""
    def at(value):
        if isinstance(value, Sym):
            return evaluate(value, sizes)
        if isinstance(value, (list, tuple)):
            return type(value)(at(v) for v in value)
        return value

    update = {name: at(getattr(params, name)) for name in type(params).model_fields}
    return params.model_copy(update=update)


def _sizes_text(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "no sizes"


# ---- the walk ---------------------------------------------------------------------------------

def _param_bytes(node: Node) -> int:
    return node.op.num_params(node.params, [v.type for v in node.inputs]) * DTYPE_BYTES[PARAM_DTYPE]


def memory_report(graph: Graph, batch_size: int | None = 1, dims: Mapping[str, int] | None = None, *,
                  threads: int | None = None) -> MemoryReport:
    """Per-node parameter, activation and scratch bytes, and the predicted inference peak,
    at batch ``batch_size`` (the dim ``N``) and ``dims`` for the other symbolic dims.

    ``threads``: torch's intra-op threads (default: the CPU count, torch's default), which
    decide some convolutions' kernel.  Raises SizeError when a symbolic dim has no size, or a
    node's shape rule fails at these sizes.
    """
    threads = threads or os.cpu_count() or 1
    sizes = resolve_sizes(graph, batch_size, dims)
    values: dict[tuple[str, str], Tensor] = {}
    storages: dict[int, int] = {}  # storage id -> bytes

    def allocate(shape: Shape, dtype: str) -> Tensor:
        t = Tensor(shape, contiguous_strides(shape), dtype, len(storages))
        storages[t.storage] = t.nbytes
        return t

    for name, t in graph.inputs.items():
        values[(name, "out")] = allocate(*_concrete(t, sizes, f"input {name}"))
    input_storages = set(storages)

    order = list(graph.op_nodes())
    run = graph.needed_by(graph.eval_outputs)  # the builder leaves the other nodes out
    overwriting = in_place_nodes(graph, graph.eval_outputs)  # what the builder runs in place
    # the nodes the builder runs inside one gather-dot kernel: only its scores are ever made
    fusions = gather_dots(graph, kernel_missing=gather_dot_unavailable)[0]
    inside = {path for f in fusions for path in f.paths if path != f.scores.path}
    fused = inside | {f.scores.path for f in fusions}
    machine = detect()
    nodes: dict[str, NodeMemory] = {}
    made: dict[str, tuple[list[Tensor], set[int], int]] = {}
    not_modelled: set[str] = set()
    for node in order:
        op = node.op
        ins = [values[(v.node, v.port)] for v in node.inputs]
        try:
            in_types = [TensorType(t.shape, t.dtype) for t in ins]
            out_types = op.infer(params_at(node.params, sizes), in_types)
        except ShapeError as e:
            raise SizeError(f"node '{node.path}' ({node.op_name}) at {_sizes_text(sizes)}: {e.message}") from e
        before = set(storages)
        outs = []
        for port, t in zip(node.outputs, out_types):
            shape, dtype = _concrete(t, sizes, f"node '{node.path}'")
            out = None
            if Trait.RESIDENT in node.traits or node.path in inside:
                # held by the module, like its weights, or never materialised (a fused gather-dot's
                # gathers and product): no activation memory
                out = Tensor(shape, contiguous_strides(shape), dtype, -1 - len(values))
                storages[out.storage] = 0
            elif Trait.IDENTITY_IN_EVAL in node.traits and ins[0].shape == shape:
                out = ins[0]
            elif node.path in overwriting:
                out = Tensor(shape, ins[0].strides, dtype, ins[0].storage)
            elif Trait.VIEW in node.traits:
                strides = op.view_strides(node.params, ins[0].shape, ins[0].strides, shape)
                out = None if strides is None else Tensor(shape, tuple(strides), dtype, ins[0].storage)
            outs.append(out if out is not None else allocate(shape, dtype))
            values[(node.path, port)] = outs[-1]
        new = {t.storage for t in outs} - before
        param_bytes = _param_bytes(node)
        model = scratch_model(op)
        scratch = None if model is None else model(op, node.params, ins, outs,
                                                   MemoryContext(sizes, threads, param_bytes, machine, memory_report))
        if node.path in fused:  # the gather-dot kernel writes the scores and allocates nothing else
            scratch = 0
        if scratch is None:  # no model, or none for these inputs: the peak is a lower bound
            not_modelled.add(node.path)
        scratch = max(0, scratch or 0)
        made[node.path] = (outs, new, scratch)
        nodes[node.path] = NodeMemory(node.path, param_bytes, sum(t.nbytes for t in outs),
                                      sum(storages[s] for s in new), scratch, 0)

    # Liveness over the eval graph: a storage dies after the last node reading it (or a view of it).
    steps = [n for n in order if n.path in run]
    position = {n.path: i for i, n in enumerate(steps)}
    end = len(steps)
    last_use = {s: end for s in input_storages}
    for o in graph.outputs:
        if not o.train_only:
            last_use[values[(o.value.node, o.value.port)].storage] = end
    for node in steps:
        for v in node.inputs:
            s = values[(v.node, v.port)].storage
            last_use[s] = max(last_use.get(s, -1), position[node.path])
    # ... or later: the module holds a value until the block it was passed into returns
    for (producer, port), held_until in released_after([n for n in steps if n.path not in inside]).items():
        s = values[(producer, port)].storage
        last_use[s] = max(last_use[s], position[held_until])
    live = sum(storages[s] for s in input_storages)
    peak, peak_node = live, None
    dying: dict[int, list[int]] = {}
    for s, i in last_use.items():
        dying.setdefault(i, []).append(s)
    for i, node in enumerate(steps):
        outs, new, scratch = made[node.path]
        for s in new:
            if s not in last_use:  # an output nobody reads: freed as soon as the op returns
                dying.setdefault(i, []).append(s)
                last_use[s] = i
        live += sum(storages[s] for s in new)
        now = live + scratch
        m = nodes[node.path]
        nodes[node.path] = NodeMemory(m.path, m.param_bytes, m.activation_bytes, m.new_bytes, m.scratch_bytes, now)
        if now > peak:
            peak, peak_node = now, node.path
        live -= sum(storages[s] for s in dying.get(i, ()))
    unmodelled = [n.path for n in steps if n.path in not_modelled]
    held = {values[(o.value.node, o.value.port)].storage for o in graph.outputs if not o.train_only}
    return MemoryReport(sizes, nodes, sum(storages[s] for s in input_storages), peak, peak_node, unmodelled,
                        sum(storages[s] for s in held - input_storages))


def format_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB' (binary units, as memory is allocated)."""
    if n is None:
        return "?"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


__all__ = ["memory_report", "resolve_sizes", "MemoryReport", "NodeMemory", "SizeError", "format_bytes",
           "DTYPE_BYTES", "Tensor", "params_at"]
