"""Memory: bytes of weights and activations per node, and the predicted peak of an inference pass.

Everything here is arithmetic on the Graph's inferred types at concrete sizes (the batch and
any other symbolic dim given by the caller), so, like the rest of the summary, it needs no
torch module.  What is counted, and why:

- **parameter bytes** of a node: its trainable parameters (the op's own ``num_params``) times
  the size of the weights' dtype, float32 — what :func:`specgraph.builder.build_module`
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
  only.  Each op declares how its outputs live and what its kernel allocates, on its own class
  (``Op.storage``, ``Op.view_strides``, ``Op.scratch_bytes``; see specgraph/ops/base.py), so a
  user's op can declare it too; this module is the walker.  Declared by the built-in ops:
  oneDNN's convolution computes into a channel-blocked buffer and reorders the weight on
  every call (ops/conv.py); max pooling computes int64 indices nobody asked for (ops/pool.py);
  the recurrent layers project the input for all steps, keep every step's state and stack
  them, and oneDNN's LSTM reorders its weights and takes an RNN scratchpad (ops/recurrent.py);
  ``scan`` keeps its hoisted projection, every step's output and the cell's live tensors of
  one step (specgraph/scan.py).  An op with ``scratch_modelled = False`` makes the peak a
  lower bound, and the report lists it.

The **inference peak** (eval mode, under ``torch.no_grad``) walks the eval graph — the nodes
that the non-training outputs need, in the order the built module runs them — and keeps a
storage alive from the node that allocates it to the last node that reads it or any view of
it: the fx module the builder generates drops each value after its last use.  The graph inputs
are held by the caller for the whole call and the outputs are alive at its end.  At each node
the live bytes are those alive before it, plus its new bytes and its scratch; the peak is
the largest such sum.  It counts activation memory only: the weights are resident anyway and
are reported as ``param_bytes``.

A training peak (forward + backward) is not predicted: which tensors autograd saves depends on
each kernel's backward formula, which this module does not model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from ...ir.dims import TensorType, evaluate
from ...ir.graph import Graph, Node
from ...ops import ShapeError, get_op

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


# ---- what an op's memory hooks are given --------------------------------------------------

@dataclass(frozen=True)
class MemoryContext:
    """What an op's ``scratch_bytes`` may need besides its tensors."""

    sizes: dict[str, int]  # the size of every symbolic dim
    threads: int  # torch's intra-op threads (some kernels choose by it)
    param_bytes: int  # this node's parameter bytes


class Allocations:
    """A running total of allocations and frees and its high-water mark: for an op's
    ``scratch_bytes`` that replays what its kernel allocates, in order."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def alloc(self, nbytes: int) -> int:
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        return nbytes

    def free(self, *nbytes: int) -> None:
        self.live -= sum(nbytes)


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


def _sizes_text(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "no sizes"


def contiguous_strides(shape: Shape) -> Shape:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


def reshape_strides(old: Shape, old_strides: Shape, new: Shape) -> Shape | None:
    """Strides of ``new`` viewing a tensor (old, old_strides), or None when torch must copy
    (a port of ATen's ``computeStride``, which decides whether ``reshape`` is a view)."""
    if not old:
        return (1,) * len(new)
    if math.prod(old) == 0:
        return contiguous_strides(new)
    result = [0] * len(new)
    view_d = len(new) - 1
    chunk_base = old_strides[-1]
    tensor_numel = view_numel = 1
    for tensor_d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[tensor_d]
        if tensor_d == 0 or (old[tensor_d - 1] != 1 and old_strides[tensor_d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                result[view_d] = view_numel * chunk_base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base = old_strides[tensor_d - 1]
                tensor_numel = view_numel = 1
    return tuple(result) if view_d == -1 else None


# ---- the walk ---------------------------------------------------------------------------------

def _param_bytes(node: Node) -> int:
    return get_op(node.op).num_params(node.params, [v.type for v in node.inputs]) * DTYPE_BYTES[PARAM_DTYPE]


def _eval_nodes(graph: Graph) -> set[str]:
    """The nodes that the outputs of eval mode need (the builder leaves the others out)."""
    import networkx as nx

    needed: set[str] = set()
    for o in graph.outputs:
        if not o.train_only:
            needed.add(o.value.node)
            needed |= nx.ancestors(graph.nx, o.value.node)
    return needed


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
    run = _eval_nodes(graph)
    nodes: dict[str, NodeMemory] = {}
    made: dict[str, tuple[list[Tensor], set[int], int]] = {}
    for node in order:
        op = get_op(node.op)
        ins = [values[(v.node, v.port)] for v in node.inputs]
        try:
            in_types = [TensorType(t.shape, t.dtype) for t in ins]
            out_types = op.infer(node.params, in_types)
        except ShapeError as e:
            raise SizeError(f"node '{node.path}' ({node.op}) at {_sizes_text(sizes)}: {e.message}") from e
        before = set(storages)
        outs = []
        for port, t in zip(node.outputs, out_types):
            shape, dtype = _concrete(t, sizes, f"node '{node.path}'")
            out = None
            if op.storage == "input" and ins[0].shape == shape:
                out = ins[0]
            elif op.storage == "view":
                strides = op.view_strides(node.params, ins[0].shape, ins[0].strides, shape)
                out = None if strides is None else Tensor(shape, tuple(strides), dtype, ins[0].storage)
            outs.append(out if out is not None else allocate(shape, dtype))
            values[(node.path, port)] = outs[-1]
        new = {t.storage for t in outs} - before
        param_bytes = _param_bytes(node)
        scratch = max(0, op.scratch_bytes(node.params, ins, outs, MemoryContext(sizes, threads, param_bytes)))
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
    unmodelled = [n.path for n in steps if not get_op(n.op).scratch_modelled]
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
           "DTYPE_BYTES", "Tensor", "MemoryContext", "Allocations", "contiguous_strides", "reshape_strides"]
