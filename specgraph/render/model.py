"""The viewer's model: a Graph, and the failures of a spec that does not check, as the JSON
the interactive viewer (``assets/viewer.js``) draws.

Like the static diagram it reads what the compiler knows and recomputes nothing: labels from
each op's ``describe``, counts from the summary (the panel shows the summary's own numbers,
formatted as ``specgraph summary`` formats them), edge roles (skip, bridge) from
:mod:`.layout`, runs of one structure from :mod:`.runs`, the spec text and docs from
:mod:`.sources`.  Nodes refer to one another by index, so the JSON grows linearly with the
graph.  A scan node carries the model of its cell, with the states the cell feeds back.

    {"name", "doc", "ok", "totals": {...}, "nodes": [...], "scopes": [...], "runs": [[scope, ...]],
     "sources": [{"file", "line", "lines"}], "errors": [...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.summary import Summary, SummaryRow, summarize
from ..analysis.memory.walk import format_bytes
from ..diagnostics import Diagnostics
from ..expand.partial import PartialGraph
from ..ir.graph import Graph, Node, Scope
from ..lang.params import parse_param_decls
from ..lang.spec import Spec
from .runs import find_runs, nodes_by_scope
from .sources import Docs, SourceTable
from .style import round_numbers, shape_text, value_text
from .view import View, ViewOptions, build_view

FORMAT = 1  # of the model; the viewer refuses another


def viewer_model(partial: PartialGraph, spec: Spec | None = None) -> dict[str, Any]:
    """The JSON-ready model of ``partial`` (``spec``, when given, supplies the source text and docs)."""
    return _Model(partial.graph, partial, spec, SourceTable(spec), Docs(spec)).build()


class _Model:
    def __init__(self, graph: Graph, partial: PartialGraph | None, spec: Spec | None, sources: SourceTable,
                 docs: Docs):
        self.g, self.partial, self.spec, self.sources, self.docs = graph, partial, spec, sources, docs
        self.index: dict[str, int] = {}
        self.scope_index = {path: i for i, path in enumerate(graph.scopes)}
        self.nodes: list[dict[str, Any]] = []
        self.summary = _summary(graph)
        self.rows = {r.path: r for r in self.summary.rows} if self.summary else {}
        self.fused: dict[str, str] = {}  # node -> the gather-dot it runs in (its scores node), from the view
        self._decls: dict[str, dict] = {}

    def build(self) -> dict[str, Any]:
        g = self.g
        failures = self.partial.failures if self.partial else []
        view = build_view(g, ViewOptions(), failures)
        roles = _roles(view)
        self.fused = view.fused
        for node in g.nodes():
            self.index[node.path] = len(self.nodes)
            self.nodes.append(self.node(node))
        for i, node in enumerate(g.nodes()):
            self.nodes[i]["in"] = [self.edge(v, k in _size_only(node), roles.get((v.node, node.path), ""))
                                   for k, v in enumerate(node.inputs)]
        for out in g.outputs:
            self.nodes.append({"id": "@out/" + out.name, "kind": "output", "name": out.name, "scope": -1,
                               "in": [self.edge(out.value, False, "")], "train_only": out.train_only})
        errors = self.errors()
        for f in failures:
            scope = next((self.scope_index[s] for s in reversed(f.scope) if s in self.scope_index), -1)
            self.nodes.append({
                "id": f.path if f.path not in self.index else f.path + "@error", "kind": "error",
                "name": f.path.rsplit(".", 1)[-1], "op": f.what, "scope": scope,
                "in": [self.edge(v, False, "error") for v in f.inputs if v.node in self.index],
                "errors": [errors.index(e) for e in (self._error(d) for d in f.diagnostics) if e in errors],
                "src": self.sources.ref(f.diagnostics[0].location) if f.diagnostics else None})
        return {
            "format": FORMAT, "name": g.name, "doc": self.docs.spec_doc if self.partial else None,
            "ok": self.partial.ok if self.partial else True, "totals": self.totals(),
            "nodes": self.nodes, "scopes": [self.scope(s) for s in g.scopes.values()],
            "runs": [[self.scope_index[p] for p in run] for run in find_runs(g).values()],
            "sources": self.sources.rows, "errors": errors,
        }

    # ---- nodes -------------------------------------------------------------------------------
    def node(self, node: Node) -> dict[str, Any]:
        scope = self.scope_index[node.scope[-1]] if node.scope else -1
        outs = [[port, shape_text(t), str(t)] for port, t in node.outputs.items()]
        if node.is_input:
            return {"id": node.path, "kind": "input", "name": node.path, "scope": -1, "out": outs,
                    "src": self.sources.ref(node.location)}
        op = node.op
        given = node.params.model_dump(exclude_defaults=True) if hasattr(node.params, "model_dump") else {}
        params = [[k, _param_text(v), k not in given] for k, v in _params(node).items()]
        entry: dict[str, Any] = {
            "id": node.path, "kind": "op", "name": node.name, "op": node.op_name,
            "label": round_numbers(op.describe(node.params)), "cat": op.category, "scope": scope, "out": outs,
            "params": params, "src": self.sources.ref(node.location), "doc": self.docs.node(node.location)}
        if node.path in self.fused:  # one kernel computes it with the others of its gather-dot (as the diagram says)
            entry["fused"] = f"gather-dot → {self.fused[node.path]}"
        row = self.rows.get(node.path)
        if row is not None and self.summary is not None:  # the summary's own row, as `specgraph summary` prints it
            cells = self.summary.cells(row)
            entry.update(count=cells[3], macs=cells[4])
            if self.summary.memory is not None:
                entry.update(param_bytes=cells[5], activations=cells[6])
        recurrence = op.recurrence(node.params)
        if recurrence is not None:  # a scan: the cell it runs, with the states it feeds back
            cell, states = recurrence
            model = _Model(cell, None, self.spec, self.sources, self.docs).build()
            model["states"] = list(states)
            entry["cell"] = model
        return entry

    def edge(self, value, size_only: bool, role: str) -> list[Any]:
        return [self.index[value.node], value.port, int(size_only), role]

    # ---- scopes -------------------------------------------------------------------------------
    def scope(self, s: Scope) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": s.path, "kind": s.kind, "name": s.name,
            "parent": self.scope_index.get(s.parent, -1) if s.parent else -1,
            "params": [[k, _param_text(v), self.is_default(s, k, v)] for k, v in s.params.items()],
            "in": [str(v.type) for v in s.inputs], "out": [[k, str(v.type)] for k, v in s.outputs.items()],
            "src": [r for r in (self.sources.ref(s.location),) if r is not None], "doc": None}
        if s.kind == "block" and s.name in self.docs.blocks:
            doc, defined = self.docs.blocks[s.name]
            entry["doc"] = doc
            ref = self.sources.ref(defined)
            if ref is not None and ref not in entry["src"]:
                entry["src"].append(ref)
        inside = [self.rows[n.path] for n in self._by_scope().get(s.path, ()) if n.path in self.rows]
        entry.update(self.counts(inside))
        return entry

    def is_default(self, s: Scope, name: str, value: Any) -> bool:
        """Whether a block param has its declared default (the diagrams show only the others)."""
        if s.kind != "block" or self.spec is None or s.name not in self.spec.library.blocks:
            return False
        if s.name not in self._decls:
            block, src, bpath = self.spec.library.blocks[s.name]
            self._decls[s.name] = parse_param_decls(block.params, src, bpath + ("params",), Diagnostics())
        decl = self._decls[s.name].get(name)
        return decl is not None and not decl.required and decl.default == value

    def _by_scope(self) -> dict[str, list[Node]]:
        if not hasattr(self, "_scoped"):
            self._scoped = nodes_by_scope(self.g)
        return self._scoped

    # ---- numbers and errors ----------------------------------------------------------------------
    def counts(self, rows: list[SummaryRow]) -> dict[str, Any]:
        """Params, MACs and memory of a block's ``rows``, as ``specgraph summary`` prints totals."""
        if self.summary is None or not rows:
            return {}
        part = Summary(self.g.name, rows, {}, {}, self.summary.memory)
        cells = part.total_cells()
        out = {"count": cells[3], "macs": cells[4]}
        if self.summary.memory is not None:
            out["param_bytes"] = format_bytes(sum(r.param_bytes or 0 for r in rows))
            out["activations"] = format_bytes(sum(r.activation_bytes or 0 for r in rows))
        return out

    def totals(self) -> dict[str, Any]:
        if self.summary is None:
            return {}
        cells = self.summary.total_cells()
        return {"count": cells[3], "macs": cells[4], "memory": self.summary.memory_lines()}

    def errors(self) -> list[dict[str, Any]]:
        if self.partial is None:
            return []
        return [self._error(d) for d in self.partial.diagnostics]

    def _error(self, d) -> dict[str, Any]:
        loc = d.location
        where = f"{self.sources.display(loc.file)}:{loc.line}:{loc.col}" if loc else None
        return {"code": d.code, "severity": d.severity, "message": d.message, "path": d.path,
                "where": where, "col": loc.col if loc else None,
                "details": list(d.details), "hint": d.hint, "src": self.sources.ref(loc)}


def _summary(graph: Graph) -> Summary | None:
    try:
        return summarize(graph)
    except Exception:  # a partial graph may not size everything: the panel then shows no counts
        return None


def _roles(view: View) -> dict[tuple[str, str], str]:
    """The role of each edge (producer path, consumer path) in the whole graph drawn open
    (``view``, built with the default options): 'skip', 'bridge', or 'rise' (laid out rising,
    the decoder side of a U)."""
    roles: dict[tuple[str, str], str] = {}
    for e in view.edges:
        role = "rise" if e.reverse else e.role if e.role in ("skip", "bridge") else ""
        if role:
            roles[(e.tail, e.head)] = role
    return roles


def _size_only(node: Node) -> frozenset[int]:
    return node.op.size_only_inputs if node.op is not None else frozenset()


def _params(node: Node) -> dict[str, Any]:
    if not hasattr(node.params, "model_dump"):
        return {}
    # Values a spec can write; a param holding a compiled object (a scan's cell Graph) is drawn, not printed.
    return {k: v for k, v in node.params.model_dump().items() if _plain(v)}


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return value is None or isinstance(value, (str, int, float, bool))


def _param_text(value: Any) -> str:
    return round_numbers(value_text(value))


def with_errors(model: dict[str, Any] | None, name: str, diagnostics, folder: Path | None = None) -> dict[str, Any]:
    """``model`` (the last good one; an empty one when there is none) marked stale, carrying
    ``diagnostics``: what the live view shows while the spec does not load at all (``folder``: the
    spec's, which file names are given relative to)."""
    base = dict(model) if model is not None else {
        "format": FORMAT, "name": name, "doc": None, "totals": {}, "nodes": [], "scopes": [], "runs": [],
        "sources": [], "errors": []}
    sources = SourceTable(None, folder)
    sources.rows = list(base["sources"])  # new snippets are appended after the model's own
    maker = _Model.__new__(_Model)
    maker.sources = sources
    base.update(ok=False, stale=True, errors=[maker._error(d) for d in diagnostics], sources=sources.rows)
    return base
