"""The Graph: the expanded, shape-inferred network that build, render and summary read.

A Graph is frozen once built.  Its nodes are held in creation order, which is topological by
construction (a node is added only after the nodes it reads), and each holds the Op *object*
that computes it, so re-registering an op later cannot change an already-checked Graph.  Block
and seq instances are recorded as :class:`Scope` objects, so a reader can draw clusters or
collapse a block without re-running expansion.  Graphs are made only by a
:class:`GraphBuilder`, and validated in one place (:meth:`Graph.__post_init__`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import networkx as nx

from ..diagnostics import Diagnostic, Location
from .requirements import Requirement
from .tensor_type import TensorType
from .traits import Trait
from .written import Frame, Written


class _Shared:
    """Immutable objects are shared, never copied: a deepcopy of an fx module (whose nodes carry
    their spec Node in ``meta``) must not copy the whole network description with it."""

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


@dataclass(frozen=True)
class Value:
    """One tensor flowing in the graph: output ``port`` of node ``node`` (a path or input name)."""

    node: str
    port: str
    type: TensorType

    @property
    def ref(self) -> str:
        return self.node if self.port == "out" else f"{self.node}.{self.port}"


@dataclass(frozen=True, eq=False)
class Node(_Shared):
    """One op application, or a graph input (``op`` is None).

    ``op`` is the Op instance (specgraph.ops) that computes it, ``params`` its validated params,
    ``outputs`` port -> type in the op's port order, ``traits`` what the op promises for these
    params and inputs (``Op.node_traits``), ``requires`` what its shape rule needs of symbolic
    sizes that only the input decides (checked when the built module is called), ``written`` how
    the spec wrote it (ir/written.py).
    """

    path: str
    op: Any
    params: Any
    inputs: tuple[Value, ...]
    outputs: Mapping[str, TensorType]
    location: Location | None = None
    scope: tuple[str, ...] = ()  # enclosing scope paths, outermost first
    traits: frozenset[Trait] = frozenset()
    requires: tuple[Requirement, ...] = ()
    written: Written | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "outputs", MappingProxyType(dict(self.outputs)))
        object.__setattr__(self, "scope", tuple(self.scope))

    def __reduce__(self):
        return (_node, (self.path, self.op, self.params, self.inputs, dict(self.outputs), self.location, self.scope,
                        self.traits, self.requires, self.written))

    @property
    def is_input(self) -> bool:
        return self.op is None

    @property
    def op_name(self) -> str:
        """The op's name as written in the spec (``input`` for a graph input)."""
        return "input" if self.op is None else self.op.name

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def out(self) -> TensorType:
        return next(iter(self.outputs.values()))


def _node(*args: Any) -> Node:
    return Node(*args)


@dataclass(frozen=True)
class Scope(_Shared):
    """A block or seq instance: a named group of nodes (a cluster in diagrams).

    ``frame``: a block instance's frame (its params as written, its ``let``), ``written``: the
    node that made a seq or repeat scope (see ir/written.py)."""

    path: str
    kind: str  # "block" | "seq"
    name: str  # block name, or "seq" / "repeat"
    params: Mapping[str, Any] = field(default_factory=dict)
    location: Location | None = None
    inputs: tuple[Value, ...] = ()
    outputs: Mapping[str, Value] = field(default_factory=dict)
    parent: str | None = None
    frame: Frame | None = None
    written: Written | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "outputs", dict(self.outputs))


@dataclass(frozen=True)
class OutputInfo:
    name: str
    value: Value
    train_only: bool = False


@dataclass(frozen=True, eq=False)
class Graph(_Shared):
    """The compiled network: nodes in creation (= topological) order, scopes, inputs, outputs and
    the resolved params.  Made by :meth:`GraphBuilder.build`; never changed afterwards.

    ``frame`` is the graph as written (its params and ``let``), ``skipped`` the node definitions
    that ``when: false`` or ``repeat: 0`` switched off (ir/written.py)."""

    name: str
    node_map: Mapping[str, Node]
    inputs: Mapping[str, TensorType]
    outputs: tuple[OutputInfo, ...]
    scopes: Mapping[str, Scope]
    params: Mapping[str, Any]
    warnings: tuple[Diagnostic, ...] = ()
    dag: Any = field(default=None, repr=False)  # the networkx DiGraph of paths, frozen
    frame: Frame | None = field(default=None, repr=False)
    skipped: tuple[Written, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_map", MappingProxyType(dict(self.node_map)))
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "scopes", MappingProxyType(dict(self.scopes)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        self._validate()
        dag = self.dag if self.dag is not None else _dag(self.node_map.values())
        object.__setattr__(self, "dag", nx.freeze(dag))

    def _validate(self) -> None:
        """Every node reads only nodes made before it, through ports they have, at their types;
        every output and scope names what exists.  A failure is a bug of whoever built it."""
        seen: dict[str, Node] = {}
        for path, node in self.node_map.items():
            if path != node.path:
                raise ValueError(f"graph {self.name}: node {node.path!r} stored under {path!r}")
            for v in node.inputs:
                producer = seen.get(v.node)
                if producer is None or producer.outputs.get(v.port) != v.type:
                    raise ValueError(f"graph {self.name}: node {path!r} reads {v.ref!r}, which is not made before it "
                                     f"with type {v.type}")
            seen[path] = node
        for name in self.inputs:
            if name not in seen or not seen[name].is_input:
                raise ValueError(f"graph {self.name}: input {name!r} has no input node")
        for o in self.outputs:
            if o.value.node not in seen or o.value.port not in seen[o.value.node].outputs:
                raise ValueError(f"graph {self.name}: output {o.name!r} names {o.value.ref!r}, which does not exist")
        for scope in self.scopes.values():
            if scope.parent is not None and scope.parent not in self.scopes:
                raise ValueError(f"graph {self.name}: scope {scope.path!r} has the unknown parent {scope.parent!r}")

    def __reduce__(self):
        return (Graph, (self.name, dict(self.node_map), dict(self.inputs), self.outputs, dict(self.scopes),
                        dict(self.params), self.warnings, None, self.frame, self.skipped))

    def __repr__(self) -> str:  # the dataclass's would print every node
        ins = ", ".join(f"{k} {v}" for k, v in self.inputs.items())
        outs = ", ".join(f"{o.name} {o.value.type}" for o in self.outputs)
        return f"<Graph {self.name}: {len(self._op_nodes)} nodes; in: {ins}; out: {outs}>"

    def _repr_html_(self) -> str:
        """A notebook's view: inputs, outputs, params and the nodes (``specgraph.render(graph)``
        draws it, ``specgraph.summary(graph)`` counts it)."""
        import html

        def table(rows) -> str:
            return "<table>" + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                                       for r in rows) + "</table>"

        nodes = [(n.path, n.op_name, ", ".join(str(t) for t in n.outputs.values())) for n in self._op_nodes]
        shown = nodes if len(nodes) <= 60 else nodes[:30] + [("...", f"{len(nodes) - 60} more", "")] + nodes[-30:]
        return (f"<div><b>Graph {html.escape(self.name)}</b>: {len(nodes)} nodes"
                + (f", {len(self.warnings)} warnings" if self.warnings else "")
                + table([("input", k, v) for k, v in self.inputs.items()]
                        + [("output" + (" (train only)" if o.train_only else ""), o.name, o.value.type)
                           for o in self.outputs]
                        + [("param", k, repr(v)) for k, v in self.params.items()])
                + table(shown) + "</div>")

    # ---- reading ----------------------------------------------------------------------------
    @property
    def nx(self) -> nx.DiGraph:
        """The frozen networkx DiGraph of node paths (edges from producer to consumer)."""
        return self.dag

    def node(self, path: str) -> Node:
        return self.node_map[path]

    @cached_property
    def _nodes(self) -> tuple[Node, ...]:
        return tuple(self.node_map.values())

    def nodes(self) -> tuple[Node, ...]:
        """Every node, graph inputs first, in creation order (a topological order)."""
        return self._nodes

    @cached_property
    def _op_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self._nodes if not n.is_input)

    def op_nodes(self) -> tuple[Node, ...]:
        return self._op_nodes

    def __len__(self) -> int:
        return len(self.node_map)

    def __contains__(self, path: object) -> bool:
        return path in self.node_map

    @property
    def input_symbols(self) -> list[str]:
        """The symbolic dims of the inputs (N, H, W ...), sorted: what ``--dim`` may size."""
        return sorted({sym for t in self.inputs.values() for d in t.shape for sym in getattr(d, "symbols", ())})

    @property
    def has_train_only_outputs(self) -> bool:
        return any(o.train_only for o in self.outputs)

    @property
    def eval_outputs(self) -> tuple[OutputInfo, ...]:
        """The outputs of eval mode: every output that is not training-only."""
        return tuple(o for o in self.outputs if not o.train_only)

    def needed_by(self, outputs: Iterable[OutputInfo] | None = None) -> set[str]:
        """The paths that ``outputs`` (default: every output) need: their nodes and all ancestors."""
        needed: set[str] = set()
        for o in self.outputs if outputs is None else outputs:
            if o.value.node not in needed:
                needed.add(o.value.node)
                needed |= nx.ancestors(self.dag, o.value.node)
        return needed

    def requirements(self, outputs: Iterable[OutputInfo] | None = None) -> list[tuple[Node, Requirement]]:
        """(node, requirement) for each condition on input sizes the nodes ``outputs`` need
        (default: every output) state, those of the graphs an op runs (a scan's cell) included;
        each condition once, with the first node that states it."""
        found: dict[tuple, tuple[Node, Requirement]] = {}
        needed = self.needed_by(outputs)
        for node in self.op_nodes():
            if node.path not in needed:
                continue
            for req in node.requires:
                found.setdefault(req.key, (node, req))
            for sub in node.op.subgraphs(node.params).values():
                for inner, req in ([] if sub is None else sub.requirements()):
                    found.setdefault(req.key, (inner, req))
        return list(found.values())

    def with_warnings(self, warnings: Iterable[Diagnostic]) -> "Graph":
        """This graph with ``warnings``: a copy of its fields, not made anew (it was validated when
        made, and warnings change nothing validation reads; re-making it walked every node again)."""
        graph = object.__new__(type(self))
        graph.__dict__.update(self.__dict__)
        object.__setattr__(graph, "warnings", tuple(warnings))
        return graph


def _dag(nodes: Iterable[Node]) -> nx.DiGraph:
    g = nx.DiGraph()
    for node in nodes:
        g.add_node(node.path)
        for v in node.inputs:
            g.add_edge(v.node, node.path)
    return g


class GraphBuilder:
    """Collects nodes and scopes while a graph is being made; :meth:`build` freezes them.

    Nodes are added after the nodes they read (so creation order is topological); a scope's
    outputs are known only when its nodes are, so :meth:`finish_scope` records them later.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.scopes: dict[str, Scope] = {}
        self.dag = nx.DiGraph()
        self.skipped: list[Written] = []
        self.frame: Frame | None = None

    def __contains__(self, path: object) -> bool:
        return path in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, path: str) -> Node:
        return self.nodes[path]

    def add_input(self, name: str, type: TensorType, location: Location | None = None) -> Node:
        return self.add(Node(name, None, None, (), {"out": type}, location))

    def add(self, node: Node) -> Node:
        if node.path in self.nodes:
            raise ValueError(f"a node with the path {node.path!r} exists already")
        self.nodes[node.path] = node
        self.dag.add_node(node.path)
        for v in node.inputs:
            self.dag.add_edge(v.node, node.path)
        return node

    def ancestors(self, path: str) -> set[str]:
        return nx.ancestors(self.dag, path)

    def add_scope(self, scope: Scope) -> None:
        self.scopes[scope.path] = scope

    def finish_scope(self, path: str, outputs: Mapping[str, Value]) -> None:
        self.scopes[path] = replace(self.scopes[path], outputs=dict(outputs))

    def skip(self, written: Written) -> None:
        """Record a node definition that `when: false` or `repeat: 0` switched off (where it stands
        among the nodes made: after the ones made so far)."""
        self.skipped.append(replace(written, position=len(self.nodes)))

    def build(self, name: str, outputs: Iterable[OutputInfo], params: Mapping[str, Any],
              warnings: Iterable[Diagnostic] = ()) -> Graph:
        inputs = {n.path: n.out for n in self.nodes.values() if n.is_input}
        return Graph(name, self.nodes, inputs, tuple(outputs), self.scopes, params, tuple(warnings), self.dag,
                     self.frame, tuple(self.skipped))


__all__ = ["Value", "Node", "Scope", "OutputInfo", "Graph", "GraphBuilder"]
