"""The built model read as the spec's structure, for the Python export: which nodes, scopes and
switched-off definitions each scope holds directly, in order, and the fx nodes computing each
spec node.

A *unit* is the top of the graph (path ``""``) or a scope; its *children* are the op nodes and
scopes directly in it (an ``inline`` block's nodes are directly in the scope around it) and the
definitions ``when:``/``repeat: 0`` switched off there (:attr:`Graph.skipped`), each at the place
it was written in the order of making.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from torch import fx

from ...ir.graph import Graph, Node, Scope, Value
from ...ir.written import Written
from ..build import META_KEY, PART_KEY


@dataclass
class Child:
    """One thing directly in a unit: an op node, a scope, or a definition switched off here."""

    local: str  # its name in the unit: "conv1", "0", "downsample"
    position: float  # where it stands in the order of making
    node: Node | None = None
    scope: Scope | None = None
    skipped: Written | None = None

    @property
    def written(self) -> Written | None:
        if self.node is not None:
            return self.node.written
        if self.scope is not None:
            return self.scope.frame.written if self.scope.frame is not None else self.scope.written
        return self.skipped

    @property
    def is_block(self) -> bool:
        return self.scope is not None and self.scope.kind == "block"

    @property
    def is_seq(self) -> bool:
        return self.scope is not None and self.scope.kind == "seq"


@dataclass
class Structure:
    graph: Graph
    fx_graph: fx.Graph
    children: dict[str, list[Child]] = field(default_factory=dict)
    fx_nodes: dict[str, list[fx.Node]] = field(default_factory=dict)  # spec node path -> its fx nodes, in order
    fx_value: dict[fx.Node, tuple[str, str]] = field(default_factory=dict)  # fx node -> (spec path, port)

    @classmethod
    def read(cls, graph: Graph, fx_graph: fx.Graph) -> "Structure":
        s = cls(graph, fx_graph)
        s._read_children()
        s._read_fx()
        return s

    # ---- scopes ---------------------------------------------------------------------------
    def _read_children(self) -> None:
        order = {node.path: i for i, node in enumerate(self.graph.nodes())}
        first: dict[str, float] = {}
        for node in self.graph.op_nodes():
            unit = node.scope[-1] if node.scope else ""
            self._add(unit, Child(_local(node.path, unit), order[node.path], node=node))
            for scope_path in node.scope:
                first.setdefault(scope_path, order[node.path])
        for scope in self.graph.scopes.values():
            unit = scope.parent or ""
            self._add(unit, Child(_local(scope.path, unit), first.get(scope.path, float("inf")) - 0.25, scope=scope))
        by_written = {id(s.written): s.path for s in self.graph.scopes.values() if s.written is not None}
        for w in self.graph.skipped:
            unit = by_written.get(id(w.seq)) if w.seq is not None and not w.seq.inline else None
            if unit is None:
                frame = w.frame
                while frame is not None and frame.scope is None and frame.parent is not None:
                    frame = frame.parent
                unit = frame.scope if frame is not None and frame.scope is not None else ""
            self._add(unit, Child(w.key, (w.position or 0) - 0.5, skipped=w))
        for kids in self.children.values():
            kids.sort(key=lambda c: c.position)

    def _add(self, unit: str, child: Child) -> None:
        self.children.setdefault(unit, []).append(child)

    def outputs(self, scope: Scope) -> dict[str, Value]:
        """A scope's outputs; a repeat's are its last copy's (the Graph records none for it)."""
        if scope.outputs or scope.kind != "seq":
            return dict(scope.outputs)
        last = next((c for c in reversed(self.children.get(scope.path, [])) if c.skipped is None), None)
        if last is None:
            return {}
        if last.node is not None:
            return {port: Value(last.node.path, port, t) for port, t in last.node.outputs.items()}
        return self.outputs(last.scope)

    def scope(self, path: str) -> Scope | None:
        return self.graph.scopes.get(path) if path else None

    def inputs(self, path: str) -> list[tuple[str, Value]]:
        """The unit's inputs: (name, value), in order."""
        if not path:
            return [(name, Value(name, "out", t)) for name, t in self.graph.inputs.items()]
        scope = self.graph.scopes[path]
        names = scope.frame.inputs if scope.frame is not None else ("x",) * len(scope.inputs)
        return list(zip(names, scope.inputs))

    # ---- fx --------------------------------------------------------------------------------
    def _read_fx(self) -> None:
        for n in self.fx_graph.nodes:
            spec = n.meta.get(PART_KEY) or n.meta.get(META_KEY)
            if spec is None:
                continue
            self.fx_nodes.setdefault(spec.path, []).append(n)
        for path, nodes in self.fx_nodes.items():
            node = self.graph.node(path)
            ports = list(node.outputs)
            result = next((n for n in nodes if n.meta.get(META_KEY) is node), nodes[-1])
            if len(ports) == 1:
                self.fx_value[result] = (path, ports[0])
            else:
                for n in nodes:
                    if n.op == "call_function" and n.target is operator.getitem and n.args[0] is result:
                        self.fx_value[n] = (path, ports[n.args[1]])
        for n in self.fx_graph.nodes:
            if n.op == "placeholder":
                name = next(k for k in self.graph.inputs if _same_name(k, n.target))
                self.fx_value[n] = (name, "out")

    def result(self, path: str) -> fx.Node | None:
        """The fx node whose value is the spec node's (its only output, or the tuple of its ports)."""
        node = self.graph.node(path)
        return next((n for n in self.fx_nodes.get(path, ()) if n.meta.get(META_KEY) is node), None)


def _same_name(spec_name: str, fx_name: str) -> bool:
    from ..names import identifier

    return identifier(spec_name) == fx_name


def _local(path: str, unit: str) -> str:
    return path[len(unit) + 1:] if unit else path


__all__ = ["Child", "Structure"]
