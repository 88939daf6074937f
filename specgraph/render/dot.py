"""Render: a Graph as a ``graphviz.Digraph`` — clusters per block, a shape on every edge.

The diagram reads the Graph and never recomputes it: labels come from each op's
``describe`` and ``num_params``, edge labels from the inferred types.  Node ids are the
spec's node paths, declared in the graph's topological order, so the DOT text is
deterministic and a change to a spec gives a small DOT diff.

    >>> dot = render("specs/resnet50.yaml", depth=1, rankdir="LR")
    >>> dot.source          # DOT text, no Graphviz install needed
    >>> dot.pipe("svg")     # needs Graphviz's `dot` program

A spec that fails checking still renders: everything that expanded is drawn, and each
failing node is a red node, fed by red edges, carrying its error message.
"""

from __future__ import annotations

from typing import Any, Iterable

import graphviz
from graphviz.quoting import quote, quote_edge

from ..diagnostics import Diagnostics
from ..gcpause import gc_paused
from ..ir.graph import Graph
from ..expand.partial import PartialGraph, expand_partial
from .style import (CATEGORY_COLOURS, CLUSTER_FILLS, EDGE_COLOUR, ERROR_COLOUR, ERROR_FILL, FONT, MUTED, SKIP_COLOUR,
                    category_colour, esc, html, legend_label, params_text, round_numbers, shape_text, small,
                    short_value_text, value_text, wrap)
from .runs import varying_params
from .view import Cluster, RenderOptionError, View, ViewOptions, VNode, build_view
from ..lang.params import parse_param_decls
from ..lang.spec import Spec

RANKDIRS = ("TB", "LR", "BT", "RL")

LARGE = 800  # drawn nodes above which `dot` is told to spend less effort on crossings
# Layout weights by edge role (render_layout.py): the main path pulls hardest, so it stays straight.
WEIGHTS = {"main": "8", "fan": "2", "skip": "0", "bridge": "6", "error": "2", "output": "8", "recurrent": "0"}

__all__ = ["render", "render_view", "render_partial", "RenderOptionError"]


@gc_paused
def render(spec: Spec | Graph, *, depth: int | None = None, collapse: Iterable[str] = (), only: str | None = None,
           rankdir: str = "TB", shapes: bool = True, rolled: bool = False, legend: bool = True,
           **params: Any) -> graphviz.Digraph:
    """The diagram of ``spec`` (a loaded Spec, or a checked Graph; :func:`specgraph.render` also
    takes a path or YAML text).

    ``depth``: levels of nested blocks drawn open (deeper ones become one node showing
    their input and output shapes); ``collapse``: block paths drawn as one node; ``only``:
    draw this block or node alone, with stubs for what feeds and reads it; ``rolled``:
    draw a run of identical chained blocks once, marked ×N; ``shapes``: label every edge
    with its tensor shape; ``params``: spec param overrides.  Raises SpecError only when
    the spec cannot be loaded at all; expansion errors are drawn in red.
    """
    dot, _ = render_partial(spec, depth=depth, collapse=collapse, only=only, rankdir=rankdir, shapes=shapes,
                            rolled=rolled, legend=legend, **params)
    return dot


def render_partial(spec: Spec | Graph, *, depth: int | None = None, collapse: Iterable[str] = (), only: str | None = None,
                   rankdir: str = "TB", shapes: bool = True, rolled: bool = False, legend: bool = True,
                   **params: Any) -> tuple[graphviz.Digraph, PartialGraph]:
    """Like :func:`render`, also returning the PartialGraph (its diagnostics say what failed)."""
    if rankdir not in RANKDIRS:
        raise RenderOptionError(f"rankdir must be one of {', '.join(RANKDIRS)}, found {rankdir!r}")
    loaded = None
    if isinstance(spec, Graph):
        if params:
            raise RenderOptionError(f"param overrides ({', '.join(params)}) need the spec, not a checked Graph")
        partial = PartialGraph(spec, [], list(spec.warnings))
    else:
        loaded = spec.with_params(**params) if params else spec
        partial = expand_partial(loaded)
    opts = ViewOptions(depth, tuple(collapse), only, rolled)
    view = build_view(partial.graph, opts, partial.failures)
    dot = render_view(view, partial, rankdir=rankdir, shapes=shapes, legend=legend, spec=loaded)
    return dot, partial


# ---- drawing -------------------------------------------------------------------------------------

def render_view(view: View, partial: PartialGraph, *, rankdir: str = "TB", shapes: bool = True, legend: bool = True,
                spec: Spec | None = None) -> graphviz.Digraph:
    g = view.graph
    only = view.only
    total = view.scope_params.get(only, view.node_params.get(only, 0)) if only and view.cell_of is None \
        else sum(view.node_params.values())
    title = [f"<B>{esc(view.name or g.name)}</B>" + (f" — {esc(only)}" if only else ""),
             small(esc(params_text(total)), size=10)]
    if view.cell_of is not None:
        title.append(small(esc(f"{view.cell_of.op.describe(view.cell_of.params)}: the cell, one time step"), size=10))
    if not partial.ok:
        n = sum(1 for d in partial.diagnostics if d.severity == "error")
        title.append(f'<FONT COLOR="{ERROR_COLOUR}">{n} error{"s" if n != 1 else ""}: drawn up to the failure</FONT>')
    dot = graphviz.Digraph(g.name, graph_attr={
        "rankdir": rankdir, "fontname": FONT, "fontsize": "12", "label": html(title), "labelloc": "t",
        "labeljust": "l", "nodesep": "0.25", "ranksep": "0.32", "newrank": "true", "outputorder": "edgesfirst",
        "bgcolor": "white", "pad": "0.2"})
    if len(view.nodes) > LARGE:  # less crossing minimisation: ~30% faster layout, long chains lose little
        dot.attr(mclimit="0.3", remincross="false")
    dot.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10", height="0.3",
             margin="0.12,0.04", color="#7a7a7a", penwidth="0.8")
    dot.attr("edge", fontname=FONT, fontsize="8", fontcolor=MUTED, color=EDGE_COLOUR, arrowsize="0.6", penwidth="0.9")
    drawer = _Drawer(view, shapes, spec)
    drawer.emit_items(dot, view.top)
    for e in view.edges:
        drawer.emit_edge(dot, e)
    for e in view.edges:  # a bridge's ends on one rank: its encoder end left, its decoder end right
        if e.role == "bridge":
            row = graphviz.Digraph()
            drawer.graph_attrs(row, rank="same")
            drawer.node(row, e.tail)
            drawer.node(row, e.head)
            dot.subgraph(row)
    if legend:
        drawer.emit_legend(dot, partial)
    if partial.unplaced:
        lines = [f'<B><FONT COLOR="{ERROR_COLOUR}">errors</FONT></B>']
        for d in partial.unplaced[:12]:
            where = f"line {d.location.line}: " if d.location else ""
            lines += [esc(t) for t in wrap(f"{where}error[{d.code}] {d.message}".split(), 60, " ")]
        dot.node("@errors", html(lines), shape="note", fillcolor=ERROR_FILL, color=ERROR_COLOUR, style="filled")
    return dot


class _Drawer:
    def __init__(self, view: View, shapes: bool, spec: Spec | None):
        self.view, self.shapes, self.spec = view, shapes, spec
        self.categories: list[str] = []
        self.quoted: dict[str, str] = {}
        self.quoted_edge: dict[str, str] = {}

    # ---- DOT statements -------------------------------------------------------------------------
    # The lines graphviz's Digraph.node/.edge write, written straight into the body: those
    # methods quote every attribute name and value anew through several wrappers, which was
    # most of the time of a large diagram.  Names and most values repeat (colours, styles,
    # weights), so their quoted forms are kept; long ones (labels, tooltips) are not.
    def _quote(self, text: str) -> str:
        q = self.quoted.get(text)
        if q is None:
            q = quote(text)
            if len(text) <= 40:
                self.quoted[text] = q
        return q

    def _attr_list(self, label: str | None, attrs: dict[str, str | None]) -> str:
        q = self._quote
        parts = [f"label={q(label)}"] if label is not None else []
        parts += [f"{q(k)}={q(v)}" for k, v in sorted(attrs.items()) if v is not None]
        return f" [{' '.join(parts)}]" if parts else ""

    def node(self, dot: graphviz.Digraph, name: str, label: str | None = None, **attrs: str | None) -> None:
        """``dot.node(name, label, **attrs)``, the same DOT line."""
        dot.body.append(f"\t{self._quote(name)}{self._attr_list(label, attrs)}\n")

    def graph_attrs(self, dot: graphviz.Digraph, **attrs: str | None) -> None:
        """``dot.attr(**attrs)`` (a graph's or cluster's own attributes), the same DOT line."""
        dot.body.append(f"\t{self._attr_list(None, attrs)[2:-1]}\n")

    def edge(self, dot: graphviz.Digraph, tail: str, head: str, **attrs: str | None) -> None:
        """``dot.edge(tail, head, **attrs)``, the same DOT line."""
        ends = []
        for name in (tail, head):
            q = self.quoted_edge.get(name)
            if q is None:
                q = self.quoted_edge[name] = quote_edge(name)
            ends.append(q)
        label = attrs.pop("label", None)
        dot.body.append(f"\t{ends[0]} -> {ends[1]}{self._attr_list(label, attrs)}\n")

    def emit_items(self, dot: graphviz.Digraph, items: list[str]) -> None:
        for item in items:
            if item in self.view.clusters:
                cluster = self.view.clusters[item]
                # Not `with dot.subgraph(name=...)`: graphviz's context manager starts the
                # subgraph as a copy of the parent (its whole body, then discarded), so N
                # clusters in one parent cost O(N²) — 25k block copies took minutes.
                sub = graphviz.Digraph(f"cluster_{item}")
                caption = self.cluster_attrs(sub, item, cluster)
                self.emit_items(sub, cluster.items)
                # The caption is a node beside the cluster's first node rather than the
                # cluster's label: a label sits where edges enter the cluster, and they
                # would be drawn straight through its text.
                self.node(sub, f"@caption/{item}", caption, shape="plaintext", style="", margin="0.02")
                row = graphviz.Digraph()
                self.graph_attrs(row, rank="same")
                self.node(row, f"@caption/{item}")
                self.node(row, self.entry(item))
                sub.subgraph(row)
                dot.subgraph(sub)
            else:
                self.emit_node(dot, self.view.nodes[item])

    # ---- clusters -------------------------------------------------------------------------------
    def entry(self, item: str) -> str:
        """The first node drawn in a cluster (its first item, recursively)."""
        while item in self.view.clusters:
            item = self.view.clusters[item].items[0]
        return item

    def cluster_attrs(self, sub: graphviz.Digraph, path: str, c: Cluster) -> str:
        """Set the cluster's style; returns its caption (an HTML-like label)."""
        s = c.scope
        name = esc(_short_name(path))
        times = f" ×{c.count}" if c.count > 1 else ""
        n_params = self.view.scope_params.get(path, 0)
        if s.kind == "block":
            lines = [f"<B>{name}</B>{esc(times)} : {esc(s.name)}"]
            lines += [small(esc(t)) for t in wrap(self.key_params(s))]
        else:
            kind = "repeat" if s.name == "repeat" else "seq"
            lines = [f"<B>{name}</B>{esc(times)} " + small(kind)]
        if c.count > 1:
            lines.append(small(esc(f"{path} … {c.last}, drawn once")))
        if n_params:
            each = " each" if c.count > 1 else ""
            lines.append(small(esc(params_text(n_params)) + each))
        fill = CLUSTER_FILLS[min(c.level, len(CLUSTER_FILLS) - 1)]
        style = "rounded,filled" if s.kind == "block" else "rounded,dashed"
        self.graph_attrs(sub, label="", style=style, fillcolor=fill, color="#9aa5b1",
                         penwidth="2.2" if c.count > 1 else "0.9", fontsize="10", tooltip=path, margin="6")
        return "<" + "".join(f'{line}<BR ALIGN="LEFT"/>' for line in lines) + ">"

    def key_params(self, scope) -> list[str]:
        """Params given explicitly or different from the block's defaults, in declared order;
        for the first block of a rolled run, those that vary along it as ranges; then what the
        block `uses:` from its caller ("uses: eps 0.001"), so that inherited values show."""
        run = self.view.runs.get(scope.path)
        varying = varying_params(self.view.graph, run) if run else {}
        shown = dict(scope.params)
        used: list[str] = []
        if self.spec is not None and scope.name in self.spec.library.blocks:
            block, src, bpath = self.spec.library.blocks[scope.name]
            decls = parse_param_decls(block.params, src, bpath + ("params",), Diagnostics())
            used = [k for k in block.uses if k in scope.params and k not in varying]
            shown = {k: v for k, v in scope.params.items()
                     if k in varying or (k in decls and k not in used and (decls[k].required or decls[k].default != v))}
        parts = [f"{k} {short_value_text(varying[k][0])} … {short_value_text(varying[k][1])}" if k in varying else
                 f"{k} {short_value_text(v)}" for k, v in shown.items()]
        parts += [("uses: " if i == 0 else "") + f"{k} {short_value_text(scope.params[k])}" for i, k in enumerate(used)]
        return parts

    # ---- nodes ----------------------------------------------------------------------------------
    def emit_node(self, dot: graphviz.Digraph, v: VNode) -> None:
        getattr(self, f"node_{v.kind}")(dot, v)

    def node_input(self, dot, v: VNode) -> None:
        label = html([f"<B>{esc(v.id)}</B>", small(esc(shape_text(v.node.out)), "#333333", 9)])
        self.node(dot, v.id, label, shape="box", style="rounded,filled,bold", fillcolor="#ffffff", color="#333333")

    def node_output(self, dot, v: VNode) -> None:
        tag = "output, train only" if v.train_only else "output"
        self.node(dot, v.id, html([f"<B>{esc(v.label)}</B>", small(tag)]), shape="box",
                  style="rounded,filled,bold" + (",dashed" if v.train_only else ""), fillcolor="#ffffff",
                  color="#333333")

    def node_external(self, dot, v: VNode) -> None:
        self.node(dot, v.id, html([esc(v.label)]), shape="box", style="rounded,dashed", color="#9a9a9a",
                  fontcolor=MUTED)

    def node_op(self, dot, v: VNode) -> None:
        node = v.node
        op = node.op
        category = op.category if op is not None else "other"
        if category not in self.categories:
            self.categories.append(category)
        describe = round_numbers(op.describe(node.params)) if op is not None else ""
        head = f"<B>{esc(node.op_name)}</B>" + (f" {esc(describe)}" if describe else "")
        extra = []
        name = node.name
        if name != node.op_name and not name.isdigit():
            extra.append(esc(name))
        n = self.view.node_params.get(node.path, 0)
        if n:
            extra.append(esc(params_text(n)))
        lines = [head] + ([small(" · ".join(extra))] if extra else [])
        if node.path in self.view.fused:  # one kernel computes it with the others of its gather-dot
            lines.append(small(esc(f"fused: gather-dot → {self.view.fused[node.path]}"), "#7a4b00"))
        self.node(dot, v.id, html(lines), fillcolor=category_colour(category), tooltip=node.path)

    def node_block(self, dot, v: VNode) -> None:
        s = v.scope
        times = f" ×{v.count}" if v.count > 1 else ""
        kind = s.name if s.kind == "block" else ("repeat" if s.name == "repeat" else "seq")
        lines = [f"<B>{esc(_short_name(s.path))}</B>{esc(times)} : {esc(kind)}"]
        if s.kind == "block":
            lines += [small(esc(t)) for t in wrap(self.key_params(s), 40)]
        ins = ", ".join(shape_text(x.type) for x in s.inputs) or "—"
        outs = ", ".join(shape_text(x.type) for x in s.outputs.values()) or "—"
        lines.append(small(esc(f"{ins} → {outs}"), "#333333", 9))
        n = self.view.scope_params.get(s.path, 0)
        if n:
            lines.append(small(esc(params_text(n)) + (" each" if v.count > 1 else "")))
        self.node(dot, v.id, html(lines), shape="box",
                  style="rounded,filled,bold" + (",diagonals" if v.count > 1 else ""),
                  fillcolor="#eef1f5", color="#56606b", penwidth="1.4", tooltip=s.path)

    def node_error(self, dot, v: VNode) -> None:
        f = v.failure
        lines = [f'<B>{esc(_short_name(f.path))}</B> {esc(f.what)}']
        for d in f.diagnostics[:3]:
            words = f"error[{d.code}] {d.message}".split()
            lines += [f'<FONT COLOR="{ERROR_COLOUR}">{esc(t)}</FONT>' for t in wrap(words, 48, " ")]
            lines += [small(esc(t), ERROR_COLOUR) for t in d.details[:6]]
            if d.hint:
                lines += [small(esc(t), ERROR_COLOUR) for t in wrap(f"hint: {d.hint}".split(), 60, " ")]
            if d.location:
                lines.append(small(esc(f"line {d.location.line}, col {d.location.col}"), ERROR_COLOUR))
        self.node(dot, v.id, html(lines), fillcolor=ERROR_FILL, color=ERROR_COLOUR, penwidth="2",
                  tooltip=_plain(f.diagnostics[0]))

    # ---- edges ----------------------------------------------------------------------------------
    def emit_edge(self, dot: graphviz.Digraph, e) -> None:
        attrs = {"weight": WEIGHTS[e.role]}
        if self.shapes and e.type is not None:
            attrs["label"] = shape_text(e.type) if e.port is None else f"{e.port}: {shape_text(e.type)}"
        elif e.port is not None:
            attrs["label"] = e.port
        if e.size_only:  # a `like` input: only its size is read
            attrs.update(style="dotted", label=(attrs.get("label", "") + " (size)").strip())
        if e.role == "skip":
            attrs.update(style="dashed", color=SKIP_COLOUR, fontcolor=SKIP_COLOUR, constraint="false")
        elif e.role == "bridge":  # its ends share a rank (render_view): minlen 0 lets it lie flat
            attrs.update(style="dashed", color=SKIP_COLOUR, fontcolor=SKIP_COLOUR, minlen="0")
        elif e.role == "error":
            attrs.update(color=ERROR_COLOUR, fontcolor=ERROR_COLOUR, penwidth="1.8")
            failure = self.view.nodes[e.head].failure
            if failure is not None:
                attrs["tooltip"] = _plain(failure.diagnostics[0])
        elif e.role == "recurrent":  # the state at step t+1: back up to the cell's input
            attrs.update(style="dashed", color=SKIP_COLOUR, fontcolor=SKIP_COLOUR, constraint="false",
                         label=f"{e.port} → next step")
        elif e.role == "output" and e.train_only:
            attrs.update(style="dashed", label=(attrs.get("label", "") + " (train only)").strip())
        if e.reverse:  # ranked head first, so this side of the U rises; the arrow still points at the head
            self.edge(dot, e.head, e.tail, dir="back", **attrs)
        else:
            self.edge(dot, e.tail, e.head, **attrs)

    def emit_legend(self, dot: graphviz.Digraph, partial: PartialGraph) -> None:
        extras = []
        if any(e.role in ("skip", "bridge") for e in self.view.edges):
            extras.append(("- - skip edge", "dashed", SKIP_COLOUR))
        if any(e.role == "recurrent" for e in self.view.edges):
            extras.append(("- - state, to the next step", "dashed", SKIP_COLOUR))
        if any(e.size_only for e in self.view.edges):
            extras.append(("··· size only", "dotted", EDGE_COLOUR))
        if any(v.kind == "block" for v in self.view.nodes.values()):
            extras.append(("▣ collapsed block", "bold", "#56606b"))
        if not partial.ok:
            extras.append(("■ error", "bold", ERROR_COLOUR))
        palette = list(CATEGORY_COLOURS)
        used = sorted(self.categories, key=lambda c: (palette.index(c) if c in palette else len(palette), c))
        if used or extras:
            dot.node("@legend", legend_label(used, extras), shape="plaintext", style="", margin="0")


def _plain(d) -> str:
    """A diagnostic without its file name (diagrams must not depend on where the spec lies)."""
    lines = [f"error[{d.code}] {d.message}", *d.details] + ([f"hint: {d.hint}"] if d.hint else [])
    # DOT's own line-break escape: a raw newline would split the statement over lines.
    return "\\n".join(line.replace("\\", "\\\\") for line in lines)


def _short_name(path: str) -> str:
    """The last part of a path, or the last two when the last is a seq index ('branch2.0')."""
    parts = path.split(".")
    if len(parts) > 1 and parts[-1].isdigit():
        return ".".join(parts[-2:])
    return parts[-1]
