"""Expansion and shape inference: Spec -> Graph, in one topological pass.

Blocks are instantiated, `repeat:` unrolled, expressions evaluated, `when:` decided, and
each op's output types inferred as soon as its inputs are known, so an expression may read
an input's shape (``${x.channels}``).  Errors are collected, not raised one by one: a node
that fails is *poisoned* (reporting.py), and nodes that depend on it stay silent, so every
independent mistake is reported once in a single run.

Naming: a node's path is its name under its parent (``layer1.0.conv1``).  Items of a `seq`
are numbered.  An `inline: true` block or seq adds no level: its nodes take their names
(or, inside a seq, their numbers) directly in the parent, which is how a spec matches the
flat module names of a hand-written model.

This module holds the node-level machinery (mappings of nodes, `when`/`repeat`); its
collaborators: node_defs.py (a node's structural keys), order.py (the order of a scope's
nodes, cycles), references.py (`from:`), op_nodes.py (`op:` nodes), blocks.py (blocks, seqs,
a scan's cell), scan.py (`scan:` nodes), boundary.py (the spec's inputs and outputs),
requirements.py (`require:`), own_text.py (the checks of a node whose input failed), lint.py
and unused.py (warnings).  An :class:`~specgraph.expand.observer.ExpansionObserver` sees it work.
"""

from __future__ import annotations

import keyword
from dataclasses import replace
from typing import Any, Mapping

from ..diagnostics import Diagnostic, Location, SpecError
from ..ir.dims import Sym
from ..ir.graph import Graph, GraphBuilder, Node, Scope, Value
from ..ir.tensor_type import TensorType
from ..lang.document import NodeDef
from ..lang.expr import ExprError, evaluate, is_expression, referenced_names, spending, value_location
from ..lang.marked_yaml import Source
from ..lang.names import NAME_RE, RESERVED_NAMES
from ..lang.params import bind_params, parse_param_decls
from ..lang.spec import Spec
from .blocks import Blocks, single_output
from .boundary import Boundary
from .lint import lint
from .node_defs import node_def
from .observer import Attempt, ExpansionObserver
from .op_nodes import OpNodes, reads_nothing
from .order import dependencies, dependency_order
from .own_text import check_own_text
from .references import References
from .reporting import POISONED, InstanceDiagnostics, Poisoned
from .requirements import check_requirements
from .scope import Ctx, Namer, Result, copy_names, numbered_namer, parent_scope
from .symbolic import concrete_size_fix, needs_a_number_hint
from .unused import unused_names

__all__ = ["expand", "Expander"]


def expand(spec: Spec, *, input_shapes: dict[str, TensorType] | None = None, suggest_sizes: bool = True) -> Graph:
    """Expand and shape-check ``spec``. Raises SpecError listing every error found.

    ``input_shapes`` replaces the declared input types. When a shape error depends on a
    concrete input size, the hint of the first such error names the nearest sizes that work.
    """
    expander = Expander(spec, input_shapes)
    try:
        try:
            return expander.run()
        except Poisoned:  # a top-level failure (params, `let`): its diagnostic is recorded
            expander.diags.raise_if_errors()
            raise
    except SpecError as e:
        if suggest_sizes and expander.input_types:
            from .size_hint import add_size_hint

            raise add_size_hint(e, expander.input_types, lambda shapes: expand(spec, input_shapes=shapes,
                                                                              suggest_sizes=False)) from None
        raise


class Expander:
    """Expands one spec into a Graph (:meth:`run`); ``observer`` sees every step."""

    def __init__(self, spec: Spec, input_shapes: dict[str, TensorType] | None = None,
                 observer: ExpansionObserver | None = None):
        self.input_shapes = input_shapes or {}
        self.input_types: dict[str, TensorType] = {}
        self.spec = spec
        self.limits = spec.limits
        self.observer = observer or ExpansionObserver()
        self.diags = InstanceDiagnostics(self.observer.diagnostic_reported)
        self.g = GraphBuilder()  # the graph being made (a scan's cell swaps in its own)
        self.blocks = Blocks(self)
        self.boundary = Boundary(self)
        self.op_nodes = OpNodes(self)
        self.refs = References(self)
        self.expanded = 0  # node definitions expanded, those a `when:` switches off included

    # ---- reporting -------------------------------------------------------------------
    def error(self, code: str, message: str, source: Source | None, ypath: tuple = (), *, key: bool = False,
              path: str | None = None, hint: str | None = None, details: tuple[str, ...] = (),
              location: Location | None = None) -> Poisoned:
        loc = location or (source.location(ypath, key=key) if source else None)
        self.diags.add(Diagnostic(code, message, loc, path=path, hint=hint, details=details))
        return Poisoned()

    def evaluate(self, value: Any, env: Mapping, source: Source, ypath: tuple, path: str | None) -> Any:
        try:
            return evaluate(value, env, self.limits)
        except ExprError as e:
            hint = needs_a_number_hint(e.hint, e.dim, self.input_types) if e.code == "E406" else e.hint
            poisoned = self.error(e.code, e.message, source, path=path, hint=hint,
                                  location=value_location(source.location(ypath), source.lines, e.value, e.offset))
            if e.code == "E505":  # the check's budget is spent: every later expression would say so again
                raise SpecError(self.diags.items)
            raise poisoned

    # ---- top level -------------------------------------------------------------------
    @spending  # one work budget for all the expressions of the check
    def run(self) -> Graph:
        spec, doc, src = self.spec, self.spec.doc, self.spec.source
        decls = parse_param_decls(doc.params, src, ("params",), self.diags)
        # An override comes from the command line or the API, which have no spec text: point at
        # the param's declaration instead (or at `params:`), where its name and type are.
        declared = ("params",) if "params" in doc.model_fields_set else ()
        params = bind_params(decls, spec.overrides, owner=f"spec '{spec.name}'", limits=self.limits,
                             report=self.diags.add, given_as="given as an override",
                             where=lambda n: src.location(declared + ((n,) if n in decls else ()), key=True)) or {}
        self.diags.raise_if_errors()
        params = self.blocks.bind_let(doc.let, params, src, ("let",), None)
        self.diags.raise_if_errors()
        names: dict[str, Result | None] = {}
        for name, raw in doc.inputs.items():
            t = self.input_shapes.get(name) or self.boundary.input_type(name, raw, params)
            if t is not None:
                self.input_types[name] = t
                self.g.add_input(name, t, src.location(("inputs", name), key=True))
                names[name] = {"out": Value(name, "out", t)}
            else:
                names[name] = None
        if not doc.graph:
            self.error("E202", "the spec has no `graph:` to build", src, ())
        first = None
        if names:  # a node without `from` at the top of the graph reads the first input
            result = next(iter(names.values()))
            first = POISONED if result is None else result["out"]
        ctx = Ctx(src, ("graph",), params, names, Namer("", False), first_input=first)
        if doc.require:  # a combination of params refused: what follows would build another model
            check_requirements(self, doc.require, ctx.env(), src, ("require",), None)
            self.diags.raise_if_errors()
        self.expand_mapping(doc.graph, ctx)
        outputs = self.boundary.outputs(ctx)
        self.observer.outputs_resolved(outputs)
        self.diags.raise_if_errors()
        graph = self.g.build(spec.name, outputs, params)
        return graph.with_warnings(lint(graph) + unused_names(spec, self.blocks.instantiated))

    # ---- scopes --------------------------------------------------------------------------
    def expand_mapping(self, nodes: dict[str, Any], ctx: Ctx) -> dict[str, Result | None]:
        """Expand a mapping of named nodes (the graph, or a block's nodes) in dependency order."""
        src = ctx.source
        written = list(nodes)
        defs: dict[str, NodeDef] = {}
        froms: dict[str, Any] = {}  # `from:` with its expressions evaluated
        deps: dict[str, set[str]] = {}
        implicit: dict[str, str | None] = {}
        for i, name in enumerate(written):
            ypath = ctx.base + (name,)
            path = ctx.namer.peek(name)
            if not self.valid_name(name, ctx, ypath, path):
                continue
            nd = node_def(self, nodes[name], src, ypath, path)
            if nd is None:
                continue
            try:
                froms[name] = None if nd.from_ is None else self.refs.evaluate_from(nd.from_, ctx, ypath + ("from",), path)
            except Poisoned:
                continue
            defs[name] = nd
            previous = written[i - 1] if i and not reads_nothing(nd) else None
            deps[name], implicit[name] = dependencies(nd, froms[name], previous, ctx, nodes)
        order = dependency_order(self, deps, implicit, written, ctx)
        position = {name: i for i, name in enumerate(written)}
        for name in written:  # names that failed validation are poisoned
            ctx.names.setdefault(name, None) if name not in defs else None
        for name in order:
            ypath = ctx.base + (name,)
            nd = defs[name]
            path = ctx.namer.peek(name)
            try:
                inputs = self.inputs_of(nd, froms[name], position[name], written, ctx, ypath, path)
            except Poisoned:  # an input failed: only the mistakes of the node's own text are told
                check_own_text(self, name, nd, ctx, ypath)
                ctx.names[name] = None
                continue
            try:
                ctx.names[name] = self.expand_node(name, nd, inputs, ctx, ypath, in_seq=False)
            except Poisoned:
                ctx.names[name] = None
        return {n: ctx.names.get(n) for n in written}

    def inputs_of(self, nd: NodeDef, from_: Any, i: int, written: list[str], ctx: Ctx, ypath: tuple,
                  path: str) -> list[Value]:
        """What a node of a mapping reads: its `from:`, else the node written before it, else the
        scope's first input.  Raises Poisoned when one of them failed."""
        if from_ is not None:
            whole = isinstance(nd.from_, str) and is_expression(nd.from_)
            return self.refs.resolve_from(from_, ctx, ypath + ("from",), path, at_once=whole)
        if reads_nothing(nd):  # a parameter: no implicit input, so none that failed silences it
            return []
        if i:
            return [self.refs.resolve(written[i - 1], ctx, ypath, path, implicit=True)]
        if ctx.first_input is POISONED:  # the scope's first input failed: stay silent
            raise Poisoned()
        return [] if ctx.first_input is None else [ctx.first_input]

    def valid_name(self, name: str, ctx: Ctx, ypath: tuple, path: str) -> bool:
        src = ctx.source
        if not NAME_RE.match(name):
            self.error("E204", f"node name '{name}' must be letters, digits and _ only", src, ypath, key=True)
        elif keyword.iskeyword(name):  # `self.from(...)` cannot be written in the generated forward
            self.error("E204", f"node name '{name}' is a Python keyword, which a module attribute cannot be", src,
                       ypath, key=True, path=path, hint=f"rename the node, e.g. '{name}_'")
        elif name in RESERVED_NAMES:
            self.error("E204", f"node name '{name}' is taken by torch's Module (model.{name})", src, ypath,
                       key=True, path=path, hint=f"rename the node, e.g. '{name}_'")
        elif name in ctx.names:
            self.error("E305", f"node '{name}' has the same name as an input of this scope", src, ypath, key=True,
                       path=path)
        else:
            return True
        return False

    # ---- nodes ---------------------------------------------------------------------------
    def expand_node(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple,
                    in_seq: bool, index: int | None = None) -> Result:
        """Expand one node definition (with its `when` and `repeat`) and return its outputs."""
        src = ctx.source
        extra = {"index": index} if index is not None else {}
        here = ctx.namer.peek(name)  # the node's path, for errors found before it is named
        # Switched-off nodes add nothing to the graph but cost time: a repeated block of them
        # must meet the node limit too.
        self.expanded += 1
        if self.expanded > self.limits.max_graph_nodes:
            self.diags.add(Diagnostic("E601", f"expanding the spec visits more than {self.limits.max_graph_nodes} nodes "
                                      "(those switched off by `when` included)", src.location(ypath, key=True),
                                      path=here, hint="raise it with --limit max_graph_nodes=N"))
            raise SpecError(self.diags.items)
        # A repeated node whose `when:` reads `index` decides copy by copy; any other `when:`, once.
        per_copy = nd.repeat is not None and "index" in referenced_names(nd.when)
        if nd.when is not None and not per_copy and not self.keep(nd.when, ctx.env(extra), src, ypath, here):
            return self.pass_through(inputs, src, ypath, here)
        if nd.repeat is not None:
            count = self.evaluate(nd.repeat, ctx.env(extra), src, ypath + ("repeat",), here)
            if isinstance(count, Sym):
                raise self.error("E406", f"`repeat` needs a number, found the symbolic dim {count}", src,
                                 ypath + ("repeat",), path=here, hint=f"{concrete_size_fix(count, self.input_types)}, "
                                                                      "or count with a param")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise self.error("E204", f"`repeat` must be a non-negative integer, found {count!r}", src, ypath + ("repeat",),
                                 path=here, hint="`repeat: 0` removes the node (its input passes through)")
            if count > self.limits.max_repeat:
                raise self.error("E603", f"repeat {count} exceeds the limit of {self.limits.max_repeat}", src, ypath + ("repeat",),
                                 path=here, hint="raise it with --limit max_repeat=N")
            if count == 0:
                return self.pass_through(inputs, src, ypath, here)
            single = nd.model_copy(update={"repeat": None, "when": None, "name": None})
            if nd.name is not None and (in_seq or nd.inline and ctx.namer.numbered):
                raise self.error("E204", "`name` names the copies of a repeat by name: not inside a seq, whose items "
                                 "are numbered", src, ypath + ("name",), key=True, path=here)
            if in_seq:
                inner = ctx
            elif nd.inline and nd.name is not None:  # the copies, each a level of its own, named beside their siblings
                inner = ctx
                single = single.model_copy(update={"inline": False})
            elif nd.inline:
                inner = replace(ctx, namer=numbered_namer(ctx.namer))
            else:
                path = ctx.namer.name(name)
                self.g.add_scope(Scope(path, "seq", "repeat", location=src.location(ypath, key=True),
                                       parent=parent_scope(ctx), inputs=inputs))
                inner = replace(ctx, namer=Namer(path, nd.name is None), scope=ctx.scope + (path,))
            names = copy_names(self, nd.name, count, ctx, extra, ypath, here) if nd.name is not None else None
            result: Result | None = None
            for i in range(count):
                if result is not None:  # only a copy followed by another must have one output
                    inputs = [single_output(result, src, ypath, self)]
                if per_copy and not self.keep(nd.when, ctx.env({**extra, "index": i}), src, ypath, here):
                    result = self.pass_through(inputs, src, ypath, here)
                    continue
                result = self.expand_single(names[i] if names else name, single, inputs, inner, ypath, index=i)
            return result  # type: ignore[return-value]
        if nd.name is not None:
            raise self.error("E204", "`name` names the copies of a `repeat`; this node is not repeated", src,
                             ypath + ("name",), key=True, path=here, hint="rename the node itself instead")
        return self.expand_single(name, nd, inputs, ctx, ypath, index=index)

    def keep(self, when: Any, env: Mapping, src: Source, ypath: tuple, here: str) -> bool:
        """The value of a `when:`, which must be true or false."""
        keep = self.evaluate(when, env, src, ypath + ("when",), here)
        if not isinstance(keep, bool):
            raise self.error("E204", f"`when` must be true or false, found {keep!r}", src, ypath + ("when",), path=here,
                             hint="compare explicitly, e.g. `when: \"${stride != 1}\"`")
        return keep

    def pass_through(self, inputs: list[Value], src: Source, ypath: tuple, path: str | None = None) -> Result:
        if not inputs:
            raise self.error("E312", "a disabled node (when: false / repeat: 0) passes its input through, but it has no input",
                             src, ypath, key=True, path=path)
        return {"out": inputs[0]}

    def expand_single(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple,
                      index: int | None = None) -> Result:
        kind = next(k for k in ("op", "block", "scan", "seq") if getattr(nd, k) is not None)
        what = {"op": nd.op, "block": f"block {nd.block}", "scan": f"scan {nd.scan}", "seq": "seq"}[kind]
        attempt = Attempt(ctx.namer.peek(name), kind, str(what), tuple(inputs), tuple(ctx.scope))
        self.observer.node_begun(attempt)
        try:
            if nd.op is not None:
                result = self.op_nodes.expand_op(name, nd, inputs, ctx, ypath, index)
            elif nd.block is not None:
                result = self.blocks.expand_block(name, nd, inputs, ctx, ypath, index)
            elif nd.scan is not None:
                from .scan import expand_scan

                result = expand_scan(self, name, nd, inputs, ctx, ypath, index)
            else:
                result = self.blocks.expand_seq(name, nd, inputs, ctx, ypath, index)
        except Poisoned:
            self.observer.node_ended(attempt, failed=True)
            raise
        self.observer.node_ended(attempt, failed=False)
        return result

    def add_node(self, node: Node) -> None:
        if node.path in self.g:
            raise self.error("E305", f"two nodes get the path '{node.path}'", None, path=node.path, location=node.location,
                             hint="an inline block or seq put a name that exists already into this scope")
        if len(self.g) >= self.limits.max_graph_nodes:
            self.diags.add(Diagnostic("E601", f"the graph exceeds {self.limits.max_graph_nodes} nodes", node.location,
                                      path=node.path, hint="raise it with --limit max_graph_nodes=N"))
            raise SpecError(self.diags.items)
        self.g.add(node)
