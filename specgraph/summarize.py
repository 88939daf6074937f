"""Summary: one row per op node — path, op, output shape, parameters, MACs — and totals.

Counts come from each op's own ``num_params`` and ``macs`` (arithmetic on the inferred
types), so a summary needs no torch module.  MACs are per sample (symbolic batch = 1) and
unknown ('?') where a spatial dim is symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph
from .ops import get_op


@dataclass(frozen=True)
class SummaryRow:
    path: str
    op: str
    output: str
    params: int
    macs: int | None


@dataclass
class Summary:
    name: str
    rows: list[SummaryRow]
    inputs: dict[str, str]
    outputs: dict[str, str]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int | None:
        if any(r.macs is None for r in self.rows):
            return None
        return sum(r.macs for r in self.rows)  # type: ignore[misc]

    def __str__(self) -> str:
        head = ("node", "op", "output shape", "params", "MACs")
        body = [(r.path, r.op, r.output, f"{r.params:,}" if r.params else "", _macs(r.macs)) for r in self.rows]
        foot = ("total", "", "", f"{self.total_params:,}", _macs(self.total_macs))
        widths = [max(len(row[i]) for row in [head, foot, *body]) for i in range(5)]
        fmt = lambda row: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        rule = "-" * (sum(widths) + 8)
        return "\n".join([f"{self.name}", fmt(head), rule, *map(fmt, body), rule, fmt(foot)])


def _macs(m: int | None) -> str:
    if m is None:
        return "?"
    if m == 0:
        return ""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if m >= size:
            return f"{m / size:.2f}{unit}"
    return str(m)


def summarize(graph: Graph) -> Summary:
    rows = []
    for node in graph.op_nodes():
        op = get_op(node.op)
        in_types = [v.type for v in node.inputs]
        out_types = list(node.outputs.values())
        try:
            macs = op.macs(node.params, in_types, out_types)
        except (KeyError, TypeError):  # a symbolic dim other than the batch
            macs = None
        shape = ", ".join(str(t) for t in out_types)
        rows.append(SummaryRow(node.path, node.op, shape, op.num_params(node.params, in_types), macs))
    return Summary(graph.name, rows, {k: str(v) for k, v in graph.inputs.items()},
                   {o.name: str(o.value.type) for o in graph.outputs})
