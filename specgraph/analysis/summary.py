"""Summary: one row per op node — path, op, output shape, parameters, MACs — and totals;
with memory (parameter and activation bytes per node, the predicted inference peak) when the
symbolic dims have sizes (see :mod:`specgraph.analysis.memory`), and optionally the memory of
a training step (:mod:`specgraph.analysis.training`, attached by the caller).

Counts come from each op's own ``num_params``, ``num_buffers`` and ``macs`` (arithmetic on the
inferred types), so a summary needs no torch module.  Parameters are the trainable ones (what
``requires_grad`` parameters count); the non-trainable state is the buffers (batch norm's
running statistics: Keras' "non-trainable params").  MACs are per sample (the batch dim at 1);
once the other symbolic dims have sizes (a recurrent layer's T) they are computed at those
sizes, and the total is also given at the batch.  Unknown MACs show '?'.

With ``depth``, the table groups nodes by their path (``layer1.0.conv1`` is in ``layer1`` and
``layer1.0``): a row per block down to that depth, with the totals of what it holds, as
torchinfo's ``depth`` does.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..ir.graph import Graph
from ..ir.tensor_type import TensorType
from ..ops.gather_dot_kernel import unavailable as gather_dot_unavailable
from ..ops.gather_dot_match import gather_dots
from .memory.walk import MemoryReport, SizeError, params_at, format_bytes, memory_report


@dataclass(frozen=True)
class SummaryRow:
    path: str
    op: str
    output: str
    params: int
    macs: int | None
    param_bytes: int | None = None  # None: no memory report (a symbolic dim without a size)
    activation_bytes: int | None = None  # a node's outputs; a block's: the storage its outputs add
    view: bool = False  # its outputs share their input's storage
    buffers: int = 0  # non-trainable elements (buffers)
    level: int = 0  # 0: a node of the flat table; k >= 1: a row at depth k of a grouped one
    block: bool = False  # a row summing the nodes under a path prefix


@dataclass
class Summary:
    name: str
    nodes: list[SummaryRow]
    inputs: dict[str, str]
    outputs: dict[str, str]
    memory: MemoryReport | None = None
    memory_note: str | None = None  # why there is no memory report
    depth: int | None = None
    training: Any = None  # an analysis.training.TrainingMemory
    fit: tuple[int, int] | None = None  # (budget bytes, the largest batch whose training step fits)
    rows: list[SummaryRow] = field(default_factory=list)  # what the table shows (nodes, or blocks to `depth`)
    runs_as: dict[str, str] = field(default_factory=dict)  # node -> how it runs, where the compiler chose (Op.runs_as)

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = self.nodes if self.depth is None else _grouped(self.nodes, self.depth, self.memory)

    @property
    def total_params(self) -> int:
        """Trainable parameters."""
        return sum(r.params for r in self.nodes)

    @property
    def total_buffers(self) -> int:
        """Non-trainable state (buffer elements)."""
        return sum(r.buffers for r in self.nodes)

    @property
    def total_macs(self) -> int | None:
        """Per sample."""
        return _sum_macs(self.nodes)

    @property
    def batch_macs(self) -> int | None:
        """At the batch size of the memory report (MACs scale with the batch)."""
        if self.memory is None or self.total_macs is None:
            return None
        return self.total_macs * (self.memory.batch_size or 1)

    def columns(self) -> tuple[str, ...]:
        memory = ("param bytes", f"activations (N={self.memory.batch_size})") if self.memory else ()
        return ("node", "op", "output shape", "params", "MACs", *memory)

    def cells(self, r: SummaryRow) -> tuple[str, ...]:
        """One row as text, in the order of :meth:`columns`."""
        path = "  " * max(r.level - 1, 0) + r.path
        base = (path, r.op, r.output, f"{r.params:,}" if r.params else "", _macs(r.macs))
        if self.memory is None:
            return base
        acts = format_bytes(r.activation_bytes) + (" (view)" if r.view else "")
        return (*base, format_bytes(r.param_bytes) if r.param_bytes else "", acts)

    def total_cells(self) -> tuple[str, ...]:
        base = ("total", "", "", f"{self.total_params:,}", _macs(self.total_macs))
        if self.memory is None:
            return base
        return (*base, format_bytes(self.memory.param_bytes), format_bytes(self.memory.activation_bytes))

    def memory_lines(self) -> list[str]:
        """The lines under the table: parameters, MACs at the batch, memory, training, and how
        nodes run where the compiler chose (a scan fused into torch's layer kernel, or not and why)."""
        lines = [f"parameters: {self.total_params:,} trainable, {self.total_buffers:,} non-trainable (buffers)"]
        if self.batch_macs is not None and self.memory is not None:
            lines.append(f"MACs at N={self.memory.batch_size}: {_macs(self.batch_macs)} ({self.batch_macs:,})")
        m = self.memory
        if m is None:
            lines += [f"memory: {self.memory_note}"] if self.memory_note else []
        else:
            sizes = ", ".join(f"{k}={v}" for k, v in m.sizes.items())
            at = f" (during {m.peak_node})" if m.peak_node else ""
            lines += [f"memory at {sizes}: parameters {format_bytes(m.param_bytes)}, activations "
                      f"{format_bytes(m.activation_bytes)}, inputs {format_bytes(m.input_bytes)}",
                      f"predicted inference peak (eval, no_grad, CPU): {format_bytes(m.inference_peak)}{at}: "
                      f"inputs, live outputs and kernel scratch, on top of the parameters"]
            if m.unmodelled:
                lines.append(f"  a lower bound: the kernel scratch of {', '.join(m.unmodelled)} is not modelled")
        if self.training is not None:
            lines += self.training.lines()
        if self.fit is not None:
            budget, batch = self.fit
            t = self.training
            how = f" ({t.optimizer}, precision {t.precision})" if t is not None else ""
            lines.append(f"largest batch whose training step fits in {format_bytes(budget)}{how}: "
                         + (str(batch) if batch else "none (a batch of 1 is over)"))
        return lines + [f"{path}: {how}" for path, how in self.runs_as.items()]

    def to_json(self) -> dict:
        def row(r: SummaryRow) -> dict:
            out = {"path": r.path, "op": r.op, "output": r.output, "params": r.params, "buffers": r.buffers,
                   "macs": r.macs}
            if self.memory:
                out |= {"param_bytes": r.param_bytes, "activation_bytes": r.activation_bytes, "view": r.view}
            return out | ({"level": r.level, "block": r.block} if r.level else {})

        data = {"name": self.name, "inputs": self.inputs, "outputs": self.outputs,
                "nodes": [row(r) for r in self.nodes],
                "total_params": self.total_params, "trainable_params": self.total_params,
                "non_trainable_params": self.total_buffers, "total_macs": self.total_macs,
                "memory": self.memory.to_json() if self.memory else None}
        if self.memory is not None:
            data["batch_macs"] = {"batch_size": self.memory.batch_size, "macs": self.batch_macs}
        if self.depth is not None:
            data["depth"], data["rows"] = self.depth, [row(r) for r in self.rows]
        if self.memory_note:
            data["memory_note"] = self.memory_note
        if self.training is not None:
            data["training"] = self.training.to_json()
        if self.fit is not None:
            data["fit"] = {"budget_bytes": self.fit[0], "largest_batch": self.fit[1]}
        if self.runs_as:
            data["runs_as"] = self.runs_as
        return data

    def __str__(self) -> str:
        head, foot = self.columns(), self.total_cells()
        body = [self.cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in [head, foot, *body]) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([f"{self.name}", fmt(head), rule, *map(fmt, body), rule, fmt(foot), *self.memory_lines()])

    def __repr__(self) -> str:
        macs = _macs(self.total_macs) or "0"
        return f"<Summary {self.name}: {len(self.nodes)} nodes, {self.total_params:,} params, {macs} MACs>"

    def _repr_html_(self) -> str:
        """The table in a notebook (Jupyter calls this): the same cells as ``str(summary)``."""
        def row(cells, tag="td"):
            return "<tr>" + "".join(f'<{tag} style="text-align:{"right" if i >= 3 else "left"}">{html.escape(c)}</{tag}>'
                                    for i, c in enumerate(cells)) + "</tr>"

        lines = "".join(f"<br>{html.escape(line)}" for line in self.memory_lines())
        return (f"<div><b>{html.escape(self.name)}</b><table><thead>{row(self.columns(), 'th')}</thead><tbody>"
                + "".join(row(self.cells(r)) for r in self.rows)
                + f"</tbody><tfoot>{row(self.total_cells(), 'th')}</tfoot></table>{lines}</div>")


def _macs(m: int | None) -> str:
    if m is None:
        return "?"
    if m == 0:
        return ""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if m >= size:
            return f"{m / size:.2f}{unit}"
    return str(m)


def _sum_macs(rows) -> int | None:
    if any(r.macs is None for r in rows):
        return None
    return sum(r.macs for r in rows)


def _grouped(nodes: list[SummaryRow], depth: int, memory: MemoryReport | None) -> list[SummaryRow]:
    """The rows to ``depth``: each path prefix of at most ``depth`` parts, in the order its first
    node runs; a prefix that is not a node itself is a block row summing the nodes under it (its
    output: its last node's)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, found {depth}")
    members: dict[str, list[SummaryRow]] = {}
    for r in nodes:
        parts = r.path.split(".")
        for k in range(1, min(len(parts), depth) + 1):
            members.setdefault(".".join(parts[:k]), []).append(r)
    out = []
    for prefix, rows in members.items():
        level = prefix.count(".") + 1
        if len(rows) == 1 and rows[0].path == prefix:
            out.append(SummaryRow(**{**rows[0].__dict__, "level": level}))
            continue
        sized = memory is not None
        out.append(SummaryRow(prefix, "block", rows[-1].output, sum(r.params for r in rows), _sum_macs(rows),
                              sum(r.param_bytes or 0 for r in rows) if sized else None,
                              sum(memory.nodes[r.path].new_bytes for r in rows) if sized else None,
                              False, sum(r.buffers for r in rows), level, True))
    return out


def summarize(graph: Graph, batch_size: int | None = None, dims: Mapping[str, int] | None = None, *,
              depth: int | None = None) -> Summary:
    """The summary of ``graph``; with memory at batch ``batch_size`` (the dim N) and ``dims``.

    Without either, memory is reported at batch 1 when that sizes every symbolic dim, and left
    out (with a note saying which dims need a size) otherwise.  When either is given, a dim
    without a size raises :class:`specgraph.analysis.memory.SizeError`, and the output shapes
    are shown at those sizes.  ``depth``: group the rows by path to that depth (see the module
    docstring).
    """
    asked = batch_size is not None or bool(dims)
    memory, note = None, None
    try:
        memory = memory_report(graph, batch_size if batch_size is not None else 1, dims)
    except SizeError as e:
        if asked:
            raise
        note = str(e)
    sizes = memory.sizes if memory is not None else None
    rows, runs_as = [], {}
    for node in graph.op_nodes():
        op = node.op
        how = op.runs_as(node.params)
        if how:
            runs_as[node.path] = how
        in_types = [v.type for v in node.inputs]
        out_types = list(node.outputs.values())
        macs = _node_macs(node, in_types, out_types, sizes)
        shown = [_at(t, sizes) for t in out_types] if asked and sizes else out_types
        m = memory.nodes[node.path] if memory else None
        rows.append(SummaryRow(node.path, node.op_name, ", ".join(str(t) for t in shown),
                               op.num_params(node.params, in_types), macs,
                               m.param_bytes if m else None, m.activation_bytes if m else None,
                               bool(m and m.activation_bytes and not m.new_bytes), op.num_buffers(node.params, in_types)))
    fused, missed = gather_dots(graph, kernel_missing=gather_dot_unavailable)
    runs_as.update({f.scores.path: f.describe() for f in fused})
    runs_as.update({m.node.path: m.describe() for m in missed})
    return Summary(graph.name, rows, {k: str(_at(v, sizes) if asked and sizes else v) for k, v in graph.inputs.items()},
                   {o.name: str(_at(o.value.type, sizes) if asked and sizes else o.value.type) for o in graph.outputs},
                   memory, note, depth, runs_as=runs_as)


def _at(t: TensorType, sizes: Mapping[str, int]) -> TensorType:
    """``t`` with its symbolic dims at ``sizes`` (itself where they do not size it)."""
    try:
        return t.with_shape(t.concrete(**sizes))
    except (KeyError, TypeError, ValueError):
        return t


def _node_macs(node, in_types, out_types, sizes) -> int | None:
    """The op's MACs per sample: on the inferred types, or — where a dim other than the batch is
    symbolic (a recurrent layer's T) and ``sizes`` size it — on the types at those sizes."""
    op = node.op
    try:
        macs = op.macs(node.params, in_types, out_types)
    except (KeyError, TypeError):
        macs = None
    if macs is not None or not sizes:
        return macs
    try:
        concrete_in, concrete_out = [_at(t, sizes) for t in in_types], [_at(t, sizes) for t in out_types]
        return op.macs(params_at(node.params, sizes), concrete_in, concrete_out)
    except (KeyError, TypeError, ValueError):
        return None
