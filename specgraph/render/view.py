"""What a diagram shows: the visible nodes, edges and clusters of a Graph under the options.

A *view* maps every graph node to the element that stands for it: itself, the collapsed
block that contains it (``--depth``, ``--collapse``), the first copy of a run of identical
blocks (``--rolled``), or nothing (outside ``--only``).  Edges are the graph's edges
mapped the same way; render_layout.py then gives each edge its role (main, fan, skip,
bridge), which decides its look and its layout weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..ir.tensor_type import TensorType
from ..diagnostics import did_you_mean
from ..ir.graph import Graph, Node, Scope
from .layout import assign_roles
from .runs import find_runs
from ..expand.partial import Failure
from ..ops.gather_dot_kernel import unavailable as gather_dot_unavailable
from ..ops.gather_dot_match import gather_dots


class RenderOptionError(ValueError):
    """An option names a path the graph does not have (a usage error, not a spec error)."""


@dataclass(frozen=True)
class ViewOptions:
    depth: int | None = None  # levels of nested blocks drawn open; deeper blocks become one node
    collapse: tuple[str, ...] = ()  # block or seq paths drawn as one node
    only: str | None = None  # draw only this block, seq or node
    rolled: bool = False  # draw runs of chained blocks of one structure once, marked ×N (runs.py)


@dataclass
class VNode:
    id: str
    kind: str  # input | op | block | external | output | error
    clusters: tuple[str, ...] = ()  # enclosing cluster scope paths, outermost first
    node: Node | None = None
    scope: Scope | None = None  # for a collapsed block
    count: int = 1  # ×N when it stands for a rolled run
    failure: Failure | None = None
    label: str = ""  # outputs and externals: the name shown
    train_only: bool = False  # outputs


@dataclass
class VEdge:
    tail: str
    head: str
    type: TensorType | None
    role: str = "main"  # main | fan | skip | bridge | error | output | recurrent (see layout.py)
    train_only: bool = False
    reverse: bool = False  # laid out head-to-tail (the rising side of a U), drawn tail-to-head
    port: str | None = None  # the producer's output port, when it has several (chunk's i, f, g, o)
    size_only: bool = False  # only its shape is read (interpolate's or center_crop's `like`)


@dataclass
class Cluster:
    scope: Scope
    level: int  # nesting depth of the cluster, 0 outermost
    count: int = 1  # ×N for a rolled run
    last: str | None = None  # the run's last copy
    items: list[str] = field(default_factory=list)  # vnode ids and cluster paths, in order


@dataclass
class View:
    graph: Graph
    nodes: dict[str, VNode] = field(default_factory=dict)
    edges: list[VEdge] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)  # top-level vnode ids and cluster paths
    only: str | None = None  # the --only path
    node_params: dict[str, int] = field(default_factory=dict)
    scope_params: dict[str, int] = field(default_factory=dict)
    runs: dict[str, list[str]] = field(default_factory=dict)  # --rolled: first copy -> every copy
    fused: dict[str, str] = field(default_factory=dict)  # node -> the gather-dot it runs in (its scores node)
    name: str = ""  # the title's graph name when it is not graph.name (a scan's cell, drawn alone)
    cell_of: Node | None = None  # the scan node whose cell this view draws (--only that node)


def node_params(node: Node) -> int:
    return node.op.num_params(node.params, [v.type for v in node.inputs])


class _Builder:
    def __init__(self, graph: Graph, opts: ViewOptions, failures: Iterable[Failure]):
        self.g, self.opts = graph, opts
        self.failures = list(failures)
        self.view = View(graph, only=opts.only)
        self.members: dict[str, tuple[str, int]] = {}  # rolled copy path -> (first copy, index)
        self.runs: dict[str, list[str]] = {}  # first copy -> all copies
        self._validate()
        self.root_scope = opts.only if opts.only in graph.scopes else None
        self.collapsed = self._collapsed()

    # ---- options --------------------------------------------------------------------------
    def _validate(self) -> None:
        scopes = self.g.scopes
        for path in self.opts.collapse:
            if path not in scopes:
                what = "a node, not a block or seq" if path in self.g else "not a block or seq of this graph"
                raise RenderOptionError(f"--collapse {path}: {what}" + _suggest(path, scopes))
        only = self.opts.only
        if only is not None and only not in scopes and (only not in self.g or self.g.node(only).is_input):
            raise RenderOptionError(f"--only {only}: no block, seq or node has this path"
                                    + _suggest(only, list(scopes) + [n for n in self.g.nx]))
        if self.opts.depth is not None and self.opts.depth < 0:
            raise RenderOptionError(f"--depth must be 0 or more, found {self.opts.depth}")

    def _inside_root(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        """The part of a scope chain drawn as clusters: from the --only scope down."""
        if self.root_scope is None:
            return chain
        return chain[chain.index(self.root_scope):] if self.root_scope in chain else ()

    def _collapsed(self) -> set[str]:
        out = set(self.opts.collapse)
        if self.opts.depth is None:
            return out
        levels: dict[str, int] = {}
        for path, scope in self.g.scopes.items():  # parents are recorded before children
            parent = levels.get(scope.parent, 0) if scope.parent and scope.parent != self.root_scope else 0
            inside = self.root_scope is None or (path != self.root_scope and _below(path, self.root_scope))
            levels[path] = parent + (1 if scope.kind == "block" and inside else 0)
            if inside and scope.kind == "block" and levels[path] > self.opts.depth:
                out.add(path)
        return out

    def _in_subtree(self, node: Node) -> bool:
        only = self.opts.only
        if only is None:
            return True
        return node.path == only or (self.root_scope is not None and self.root_scope in node.scope)

    # ---- rolled runs ---------------------------------------------------------------------
    def find_runs(self, by_scope: dict[str, list[Node]]) -> None:
        for first, run in find_runs(self.g, by_scope).items():
            if self.root_scope in run[1:]:  # --only a later copy: draw it
                continue
            self.runs[first] = run
            for i, path in enumerate(run):
                self.members[path] = (first, i)

    def first_copy(self, node: Node) -> Node:
        for s in node.scope:
            hit = self.members.get(s)
            if hit and hit[1] > 0:
                return self.g.node(hit[0] + node.path[len(s):])
        return node

    def copy_index(self, node: Node) -> tuple[str, int] | None:
        for s in node.scope:
            if s in self.members:
                return self.members[s]
        return None

    # ---- nodes ------------------------------------------------------------------------------
    def stand_in(self, node: Node) -> str | None:
        """The id of the vnode that stands for ``node`` (creating it), or None when hidden."""
        if node.is_input:
            if self.opts.only is not None:
                return None
            return self._add(VNode(node.path, "input", node=node))
        if not self._in_subtree(node):
            return None
        node = self.first_copy(node)
        chain = self._inside_root(node.scope)
        for i, s in enumerate(chain):
            if s in self.collapsed:
                run = self.runs.get(s, [s])
                return self._add(VNode(s, "block", chain[:i], scope=self.g.scopes[s], count=len(run)))
        return self._add(VNode(node.path, "op", chain, node=node))

    def _add(self, vnode: VNode) -> str:
        nodes = self.view.nodes
        if vnode.id not in nodes:
            nodes[vnode.id] = vnode
            self._place(vnode.id, vnode.clusters)
        return vnode.id

    def _place(self, item: str, chain: tuple[str, ...]) -> None:
        parent_items = self.view.top
        for level, path in enumerate(chain):
            cluster = self.view.clusters.get(path)
            if cluster is None:
                run = self.runs.get(path, [path])
                cluster = Cluster(self.g.scopes[path], level, len(run), run[-1] if len(run) > 1 else None)
                self.view.clusters[path] = cluster
                parent_items.append(path)
            parent_items = cluster.items
        parent_items.append(item)

    def external(self, node: Node) -> str:
        """A stub for a node outside --only that feeds or reads the drawn subtree."""
        return self._add(VNode("@ext/" + node.path, "external", node=node, label=node.path))

    # ---- build --------------------------------------------------------------------------------
    def build(self) -> View:
        g, view = self.g, self.view
        nodes = list(g.nodes())  # topological: the DOT text follows the spec's order
        by_scope: dict[str, list[Node]] = {}
        for node in nodes:
            for s in node.scope:
                by_scope.setdefault(s, []).append(node)
            if not node.is_input:
                view.node_params[node.path] = node_params(node)
        for s, inside in by_scope.items():
            view.scope_params[s] = sum(view.node_params[n.path] for n in inside)
        for fusion in gather_dots(g, kernel_missing=gather_dot_unavailable)[0]:
            view.fused.update(dict.fromkeys(fusion.paths, fusion.scores.path))
        if self.opts.rolled:
            self.find_runs(by_scope)
            view.runs = self.runs
        seen: dict[tuple, VEdge] = {}
        for node in nodes:
            head = self.stand_in(node)
            size_only = node.op.size_only_inputs if node.op is not None else ()
            for i, value in enumerate(node.inputs):
                shape_read = i in size_only
                producer = g.node(value.node)
                tail = self.stand_in(producer)
                if head is None and tail is None:
                    continue
                if head is None:
                    head_id = self.external(node) if tail is not None and self.opts.only else None
                    if head_id is None:
                        continue
                    self._edge(seen, tail, head_id, value.node, value.port, value.type,  # type: ignore[arg-type]
                               size_only=shape_read)
                    continue
                if tail is None:
                    if self.opts.only is None:
                        continue
                    tail = self.external(producer)
                a, b = self.copy_index(producer), self.copy_index(node)
                if a and b and a[0] == b[0] and a[1] != b[1]:
                    continue  # between two copies of a rolled run: drawn once, inside it
                self._edge(seen, tail, head, self.first_copy(producer).path, value.port, value.type, size_only=shape_read)
        self._outputs(seen)
        self._failures(seen)
        assign_roles(view)
        return view

    def _edge(self, seen: dict, tail: str, head: str, producer: str, port: str, t: TensorType, role: str = "main",
              size_only: bool = False) -> None:
        if tail == head:
            return
        key = (tail, head, producer, port, role)
        if key in seen:  # several readers inside one collapsed block: data if any reads data
            seen[key].size_only = seen[key].size_only and size_only
            return
        node = self.g.node(producer) if producer in self.g else None
        several = node is not None and node.op is not None and len(node.outputs) > 1
        edge = seen[key] = VEdge(tail, head, t, role, port=port if several else None, size_only=size_only)
        self.view.edges.append(edge)

    def _outputs(self, seen: dict) -> None:
        for out in self.g.outputs:
            producer = self.g.node(out.value.node)
            tail = self.stand_in(producer)
            if tail is None:
                continue
            vid = self._add(VNode("@out/" + out.name, "output", label=out.name, train_only=out.train_only))
            self._edge(seen, tail, vid, producer.path, out.value.port, out.value.type, "output")
            self.view.edges[-1].train_only = out.train_only

    def _failures(self, seen: dict) -> None:
        for f in self.failures:
            chain = self._inside_root(f.scope)
            if self.opts.only is not None and not chain and f.path != self.opts.only:
                continue
            for i, s in enumerate(chain):  # inside a collapsed block: the block carries the error
                if s in self.collapsed:
                    chain = chain[:i]
                    break
            vid = f.path if f.path not in self.view.nodes else f.path + "@error"
            self._add(VNode(vid, "error", chain, failure=f))
            for value in f.inputs:
                tail = self.stand_in(self.g.node(value.node)) if value.node in self.g else None
                if tail is not None:
                    self._edge(seen, tail, vid, value.node, value.port, value.type, "error")


def _below(path: str, root: str) -> bool:
    return path.startswith(root + ".")


def _suggest(path: str, candidates: Iterable[str]) -> str:
    hint = did_you_mean(path, candidates)
    return f"; {hint}" if hint else ""


def build_view(graph: Graph, opts: ViewOptions, failures: Iterable[Failure] = ()) -> View:
    """The view of ``graph`` under ``opts``; ``--only`` a node that runs a cell (a scan) draws
    that cell, each state fed back from its output to its input by a recurrent edge."""
    node = graph.node(opts.only) if opts.only is not None and opts.only in graph else None
    recurrence = node.op.recurrence(node.params) if node is not None and node.op is not None else None
    if recurrence is None:
        return _Builder(graph, opts, failures).build()
    cell, states = recurrence
    view = _Builder(cell, ViewOptions(opts.depth, opts.collapse, None, opts.rolled), ()).build()
    view.only, view.name, view.cell_of = opts.only, graph.name, node
    for state in states:
        out = "@out/" + state
        if out in view.nodes and state in view.nodes:
            view.edges.append(VEdge(out, state, cell.inputs[state], "recurrent", port=state))
    return view
