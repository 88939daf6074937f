"""The Graph: the expanded, shape-inferred network that build, render and summary read.

Nodes of the networkx DiGraph are node paths (``layer1.0.conv1``) and graph input names;
each carries a :class:`Node` under the attribute ``node``.  Edges carry the list of
``(port, slot)`` pairs they feed: the producer's output port and the consumer's input slot.
Block and seq instances are recorded as :class:`Scope` objects, so a reader can draw
clusters or collapse a block without re-running expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from .dims import TensorType
from ..diagnostics import Diagnostic, Location


@dataclass(frozen=True)
class Value:
    """One tensor flowing in the graph: output ``port`` of node ``node`` (a path or input name)."""

    node: str
    port: str
    type: TensorType

    @property
    def ref(self) -> str:
        return self.node if self.port == "out" else f"{self.node}.{self.port}"


@dataclass
class Node:
    """One op application. ``op`` is 'input' for graph inputs (no params, no inputs)."""

    path: str
    op: str
    params: Any  # the op's validated params model (None for inputs)
    inputs: list[Value]
    outputs: dict[str, TensorType]  # port -> type
    location: Location | None = None
    scope: tuple[str, ...] = ()  # enclosing scope paths, outermost first
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def out(self) -> TensorType:
        return next(iter(self.outputs.values()))


@dataclass
class Scope:
    """A block or seq instance: a named group of nodes (a cluster in diagrams)."""

    path: str
    kind: str  # "block" | "seq"
    name: str  # block name, or "seq"
    params: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None
    inputs: list[Value] = field(default_factory=list)
    outputs: dict[str, Value] = field(default_factory=dict)
    parent: str | None = None
    repeat_group: str | None = None  # set on copies made by `repeat:` (the group's path)


@dataclass
class OutputInfo:
    name: str
    value: Value
    train_only: bool = False


@dataclass
class Graph:
    """The compiled network: node graph, scopes, inputs, outputs and resolved params."""

    name: str
    nx: nx.DiGraph
    inputs: dict[str, TensorType]
    outputs: list[OutputInfo]
    scopes: dict[str, Scope]
    params: dict[str, Any]
    warnings: list[Diagnostic] = field(default_factory=list)

    def node(self, path: str) -> Node:
        return self.nx.nodes[path]["node"]

    def nodes(self) -> Iterator[Node]:
        """Every node, graph inputs first, in a topological order (stable: creation order)."""
        for path in nx.lexicographical_topological_sort(self.nx, key=self._order_key):
            yield self.nx.nodes[path]["node"]

    def op_nodes(self) -> Iterator[Node]:
        return (n for n in self.nodes() if n.op != "input")

    def _order_key(self, path: str) -> int:
        return self.nx.nodes[path]["order"]

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, path: str) -> bool:
        return path in self.nx

    @property
    def has_train_only_outputs(self) -> bool:
        return any(o.train_only for o in self.outputs)
