"""Summary: one row per op node — path, op, output shape, parameters, MACs — and totals;
with memory (parameter and activation bytes per node, the predicted inference peak) when the
symbolic dims have sizes (see :mod:`specgraph.analysis.memory`).

Counts come from each op's own ``num_params`` and ``macs`` (arithmetic on the inferred
types), so a summary needs no torch module.  MACs are per sample (symbolic batch = 1) and
unknown ('?') where a spatial dim is symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Mapping

from ..ir.graph import Graph
from .memory.walk import MemoryReport, SizeError, format_bytes, memory_report


@dataclass(frozen=True)
class SummaryRow:
    path: str
    op: str
    output: str
    params: int
    macs: int | None
    param_bytes: int | None = None  # None: no memory report (a symbolic dim without a size)
    activation_bytes: int | None = None
    view: bool = False  # its outputs share their input's storage


@dataclass
class Summary:
    name: str
    rows: list[SummaryRow]
    inputs: dict[str, str]
    outputs: dict[str, str]
    memory: MemoryReport | None = None
    memory_note: str | None = None  # why there is no memory report

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int | None:
        if any(r.macs is None for r in self.rows):
            return None
        return sum(r.macs for r in self.rows)  # type: ignore[misc]

    def columns(self) -> tuple[str, ...]:
        memory = ("param bytes", f"activations (N={self.memory.batch_size})") if self.memory else ()
        return ("node", "op", "output shape", "params", "MACs", *memory)

    def cells(self, r: SummaryRow) -> tuple[str, ...]:
        """One row as text, in the order of :meth:`columns`."""
        base = (r.path, r.op, r.output, f"{r.params:,}" if r.params else "", _macs(r.macs))
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
        """The memory totals under the table: the predicted peak and what it counts."""
        m = self.memory
        if m is None:
            return [f"memory: {self.memory_note}"] if self.memory_note else []
        sizes = ", ".join(f"{k}={v}" for k, v in m.sizes.items())
        at = f" (during {m.peak_node})" if m.peak_node else ""
        lines = [f"memory at {sizes}: parameters {format_bytes(m.param_bytes)}, activations "
                 f"{format_bytes(m.activation_bytes)}, inputs {format_bytes(m.input_bytes)}",
                 f"predicted inference peak (eval, no_grad, CPU): {format_bytes(m.inference_peak)}{at}: "
                 f"inputs, live outputs and kernel scratch, on top of the parameters"]
        if m.unmodelled:
            lines.append(f"  a lower bound: the kernel scratch of {', '.join(m.unmodelled)} is not modelled")
        return lines

    def to_json(self) -> dict:
        return {"name": self.name, "inputs": self.inputs, "outputs": self.outputs,
                "nodes": [{"path": r.path, "op": r.op, "output": r.output, "params": r.params, "macs": r.macs,
                           **({"param_bytes": r.param_bytes, "activation_bytes": r.activation_bytes, "view": r.view}
                              if self.memory else {})} for r in self.rows],
                "total_params": self.total_params, "total_macs": self.total_macs,
                "memory": self.memory.to_json() if self.memory else None,
                **({"memory_note": self.memory_note} if self.memory_note else {})}

    def __str__(self) -> str:
        head, foot = self.columns(), self.total_cells()
        body = [self.cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in [head, foot, *body]) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([f"{self.name}", fmt(head), rule, *map(fmt, body), rule, fmt(foot), *self.memory_lines()])


def _macs(m: int | None) -> str:
    if m is None:
        return "?"
    if m == 0:
        return ""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if m >= size:
            return f"{m / size:.2f}{unit}"
    return str(m)


def summarize(graph: Graph, batch_size: int | None = None, dims: Mapping[str, int] | None = None) -> Summary:
    """The summary of ``graph``; with memory at batch ``batch_size`` (the dim N) and ``dims``.

    Without either, memory is reported at batch 1 when that sizes every symbolic dim, and left
    out (with a note saying which dims need a size) otherwise.  When either is given, a dim
    without a size raises :class:`specgraph.analysis.memory.SizeError`.
    """
    asked = batch_size is not None or bool(dims)
    memory, note = None, None
    try:
        memory = memory_report(graph, batch_size if batch_size is not None else 1, dims)
    except SizeError as e:
        if asked:
            raise
        note = str(e)
    rows = []
    for node in graph.op_nodes():
        op = node.op
        in_types = [v.type for v in node.inputs]
        out_types = list(node.outputs.values())
        try:
            macs = op.macs(node.params, in_types, out_types)
        except (KeyError, TypeError):  # a symbolic dim other than the batch
            macs = None
        shape = ", ".join(str(t) for t in out_types)
        m = memory.nodes[node.path] if memory else None
        rows.append(SummaryRow(node.path, node.op_name, shape, op.num_params(node.params, in_types), macs,
                               m.param_bytes if m else None, m.activation_bytes if m else None,
                               bool(m and m.activation_bytes and not m.new_bytes)))
    return Summary(graph.name, rows, {k: str(v) for k, v in graph.inputs.items()},
                   {o.name: str(o.value.type) for o in graph.outputs}, memory, note)
