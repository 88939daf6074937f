"""Expansion and shape inference: Spec -> Graph, in one topological pass.

Blocks are instantiated, `repeat:` unrolled, expressions evaluated, `when:` decided, and
each op's output types inferred as soon as its inputs are known, so an expression may read
an input's shape (``${x.channels}``).  Errors are collected, not raised one by one: a node
that fails is *poisoned*, and nodes that depend on it stay silent, so every independent
mistake is reported once in a single run.

Naming: a node's path is its name under its parent (``layer1.0.conv1``).  Items of a `seq`
are numbered.  An `inline: true` block or seq adds no level: its nodes take their names
(or, inside a seq, their numbers) directly in the parent, which is how a spec matches the
flat module names of a hand-written model.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping

import networkx as nx
from pydantic import ValidationError

from . import dims
from .bind import bind_params
from .dims import TensorType
from .errors import Diagnostic, Diagnostics, Location, SpecError, did_you_mean
from .expr import ExprError, ShapeView, evaluate, is_expression, referenced_names
from .graph import Graph, Node, OutputInfo, Scope, Value
from .hints import shape_error_hint
from .loader import Source
from .ops import Op, ShapeError, get_op, op_names
from .spec import NODE_KEYS, BlockDef, NodeDef, OutputDef, ParamDecl, Spec, parse_param_decls, pydantic_diagnostics

# Names may be numbers too ("0", quoted in YAML): hand-written models number parallel branches.
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
# Node names become submodule names, which cannot be attributes of torch's Module or fx's
# GraphModule (`train`, `to`, `graph`, ...): add_module refuses them. Listed here so that
# checking never imports torch (from torch 2.x's dir(torch.fx.GraphModule)).
RESERVED_NAMES = frozenset("""
    T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu cuda
    delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta modules mtia named_buffers
    named_children named_modules named_parameters parameters print_readable recompile register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty to_folder train training type xpu zero_grad
""".split())
Result = dict[str, Value]  # port -> value


class _Poisoned(Exception):
    """A node failed (its diagnostic is already recorded); dependents stay silent."""


_POISONED: Any = object()  # a scope's first input when that input failed


class _InstanceDiagnostics(Diagnostics):
    """The diagnostics of one expansion, where a mistake in a block's text is met once per instance.

    It is reported once, at the block's text, naming the first instance and listing the others
    ("also in: u2, u3"), even where the message differs between instances (their shapes do).
    """

    def __init__(self) -> None:
        super().__init__()
        self._first: dict[tuple, int] = {}  # (code, location[, message]) -> index in items
        self._seen: dict[int, tuple[Diagnostic, list[str]]] = {}  # index -> (as first reported, other paths)

    def add(self, d: Diagnostic) -> None:
        exact = (d.code, d.location, d.message)
        i = self._first.get(exact) if d.location else None
        if i is None and d.location and d.path:
            j = self._first.get((d.code, d.location))
            if j is not None and self.items[j].path not in (None, d.path):
                i = j
        if i is None:
            self.items.append(d)
            if d.location:
                self._first.setdefault(exact, len(self.items) - 1)
                self._first.setdefault((d.code, d.location), len(self.items) - 1)
            return
        first, others = self._seen.setdefault(i, (self.items[i], []))
        if not d.path or d.path == first.path or d.path in others:
            return
        others.append(d.path)
        shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        self.items[i] = replace(first, details=first.details + (f"also in: {shown}",))

    def extend(self, diagnostics) -> None:
        for d in diagnostics:
            self.add(d)


class Namer:
    """Gives node paths in a scope: by name under a prefix, or by running number in a seq."""

    def __init__(self, prefix: str, numbered: bool):
        self.prefix = prefix
        self.numbered = numbered
        self.next = 0

    def peek(self, local: str) -> str:
        """The path :meth:`name` would give now, without taking it (for error messages)."""
        part = str(self.next) if self.numbered else local
        return f"{self.prefix}.{part}" if self.prefix else part

    def name(self, local: str) -> str:
        path = self.peek(local)
        self.next += self.numbered
        return path


@dataclass
class Ctx:
    """Where nodes are being expanded: their source text, names in sight and params."""

    source: Source
    base: tuple  # YAML path of the mapping that holds the nodes
    params: dict[str, Any]
    names: dict[str, Result | None]  # scope inputs and siblings expanded so far
    namer: Namer
    scope: tuple[str, ...] = ()  # enclosing scope paths
    blocks: tuple[str, ...] = ()  # block names being instantiated (recursion guard)
    first_input: Value | None = None  # or _POISONED

    def env(self, extra: dict[str, Any] | None = None) -> "Env":
        return Env(self.params, self.names, extra or {})


class Env(Mapping):
    """What an expression sees: params, then tensors in sight as shape views (built lazily)."""

    def __init__(self, params: dict[str, Any], names: dict[str, Result | None], extra: dict[str, Any]):
        self._params, self._names, self._extra = params, names, extra

    def __getitem__(self, key: str) -> Any:
        if key in self._extra:
            return self._extra[key]
        if key in self._params:
            return self._params[key]
        result = self._names.get(key)
        if result is not None and len(result) == 1:
            return ShapeView(next(iter(result.values())).type)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from self._params
        yield from (k for k, r in self._names.items() if r is not None and len(r) == 1)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def expand(spec: Spec, *, input_shapes: dict[str, TensorType] | None = None, suggest_sizes: bool = True) -> Graph:
    """Expand and shape-check ``spec``. Raises SpecError listing every error found.

    ``input_shapes`` replaces the declared input types. When a shape error depends on a
    concrete input size, the hint of the first such error names the nearest sizes that work.
    """
    expander = _Expander(spec, input_shapes)
    try:
        try:
            return expander.run()
        except _Poisoned:  # a top-level failure (params, `let`): its diagnostic is recorded
            expander.diags.raise_if_errors()
            raise
    except SpecError as e:
        if suggest_sizes and expander.input_types:
            from .sizes import add_size_hint

            raise add_size_hint(e, expander.input_types, lambda shapes: expand(spec, input_shapes=shapes,
                                                                              suggest_sizes=False)) from None
        raise


class _Expander:
    def __init__(self, spec: Spec, input_shapes: dict[str, TensorType] | None = None):
        self.input_shapes = input_shapes or {}
        self.input_types: dict[str, TensorType] = {}
        self.spec = spec
        self.limits = spec.limits
        self.diags = _InstanceDiagnostics()
        self.g = nx.DiGraph()
        self.scopes: dict[str, Scope] = {}
        self.order = itertools.count()
        self.decl_cache: dict[int, dict[str, ParamDecl]] = {}
        self.expanded = 0  # node definitions expanded, those a `when:` switches off included

    # ---- reporting -------------------------------------------------------------------
    def error(self, code: str, message: str, source: Source | None, ypath: tuple = (), *, key: bool = False,
              path: str | None = None, hint: str | None = None, details: tuple[str, ...] = (),
              location: Location | None = None) -> _Poisoned:
        loc = location or (source.location(ypath, key=key) if source else None)
        self.diags.add(Diagnostic(code, message, loc, path=path, hint=hint, details=details))
        return _Poisoned()

    def evaluate(self, value: Any, env: Mapping, source: Source, ypath: tuple, path: str | None) -> Any:
        try:
            return evaluate(value, env, self.limits)
        except ExprError as e:
            raise self.error(e.code, e.message, source, path=path, hint=e.hint,
                             location=_offset_location(source.location(ypath), e.offset))

    # ---- top level -------------------------------------------------------------------
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
        params = self.bind_let(doc.let, params, src, ("let",), None)
        self.diags.raise_if_errors()
        names: dict[str, Result | None] = {}
        inputs: dict[str, TensorType] = {}
        for name, raw in doc.inputs.items():
            t = self.input_shapes.get(name) or self.input_type(name, raw, params)
            if t is not None:
                inputs[name] = self.input_types[name] = t
                self.g.add_node(name, node=Node(name, "input", None, [], {"out": t}, src.location(("inputs", name), key=True)),
                                order=next(self.order))
                names[name] = {"out": Value(name, "out", t)}
            else:
                names[name] = None
        if not doc.graph:
            self.error("E202", "the spec has no `graph:` to build", src, ())
        first = None
        if names:  # a node without `from` at the top of the graph reads the first input
            result = next(iter(names.values()))
            first = _POISONED if result is None else result["out"]
        ctx = Ctx(src, ("graph",), params, names, Namer("", False), first_input=first)
        self.expand_mapping(doc.graph, ctx)
        outputs = self.outputs(ctx)
        self.diags.raise_if_errors()
        graph = Graph(spec.name, self.g, inputs, outputs, self.scopes, params)
        graph.warnings = self.lint(graph)
        return graph

    def input_type(self, name: str, raw: Any, params: dict[str, Any]) -> TensorType | None:
        src, ypath = self.spec.source, ("inputs", name)
        dtype = "float32"
        shape = raw
        if isinstance(raw, dict):
            unknown = set(raw) - {"shape", "dtype"}
            if unknown or "shape" not in raw:
                key = sorted(unknown)[0] if unknown else None
                self.error("E201" if unknown else "E202",
                           f"input '{name}': " + (f"unknown key '{key}'" if key else "needs `shape`"),
                           src, ypath + ((key,) if key else ()), key=True, hint="an input is [dims...] or {shape: [...], dtype: ...}")
                return None
            shape, dtype = raw["shape"], raw.get("dtype", "float32")
            ypath = ypath + ("shape",)
            if dtype not in DTYPES:
                self.error("E204", f"input '{name}': unknown dtype {dtype!r}", src, ("inputs", name, "dtype"),
                           hint=did_you_mean(str(dtype), DTYPES) or f"dtypes: {', '.join(DTYPES)}")
                return None
        if not isinstance(shape, list) or not shape:
            self.error("E203", f"input '{name}': a shape is a list of dims like [N, 3, 224, 224]", src, ypath)
            return None
        out = []
        for i, d in enumerate(shape):
            try:
                d = self.evaluate(d, params, src, ypath + (i,), None)
                out.append(dims.parse_dim(d))
            except _Poisoned:
                return None
            except ValueError as e:
                self.error("E204", f"input '{name}': {e}", src, ypath + (i,))
                return None
            if isinstance(out[-1], int) and out[-1] > self.limits.max_dim:  # ops check outputs, not inputs
                self.error("E602", f"input '{name}': dim {out[-1]} exceeds the limit {self.limits.max_dim}", src,
                           ypath + (i,), hint="raise it with --limit max_dim=N")
                return None
        numel = math.prod(d for d in out if isinstance(d, int))
        if numel > self.limits.max_numel:
            self.error("E602", f"input '{name}' has {numel} elements, over the limit {self.limits.max_numel}", src,
                       ypath, hint="raise it with --limit max_numel=N")
            return None
        return TensorType(tuple(out), dtype)

    def outputs(self, ctx: Ctx) -> list[OutputInfo]:
        doc, src = self.spec.doc, self.spec.source
        raw = doc.outputs
        entries: list[tuple[str, Any, tuple]] = []
        if raw is None:
            if doc.graph:
                last = list(doc.graph)[-1]
                entries.append((last, last, ("graph", last)))
        elif isinstance(raw, str):
            entries.append((raw.replace(".", "_"), raw, ("outputs",)))
        elif isinstance(raw, list):
            entries += [(r.replace(".", "_"), r, ("outputs", i)) for i, r in enumerate(raw)]
        else:
            entries += [(k, v, ("outputs", k)) for k, v in raw.items()]
        result = []
        for name, entry, ypath in entries:
            try:
                train_only = False
                if isinstance(entry, dict):
                    try:
                        od = OutputDef.model_validate(entry)
                    except ValidationError as e:
                        self.diags.extend(pydantic_diagnostics(e, entry, src, ypath, f"output '{name}'",
                                                               allowed=["from", "train_only", "when"]))
                        continue
                    if od.when is not None:
                        keep = self.evaluate(od.when, ctx.env(), src, ypath + ("when",), None)
                        if not isinstance(keep, bool):
                            raise self.error("E204", f"`when` must be true or false, found {keep!r}", src, ypath + ("when",))
                        if not keep:
                            continue
                    entry, train_only, ypath = od.from_, od.train_only, ypath + ("from",)
                if not isinstance(entry, str):
                    raise self.error("E203", f"output '{name}' names a node, found {entry!r}", src, ypath)
                value = self.resolve(entry, ctx, ypath, None)
                result.append(OutputInfo(name, value, train_only))
            except _Poisoned:
                continue
        if result and all(o.train_only for o in result):
            self.error("E204", "every output is train_only: the model would return nothing in eval mode", src, ("outputs",))
        return result

    # ---- scopes --------------------------------------------------------------------------
    def expand_mapping(self, nodes: dict[str, Any], ctx: Ctx) -> dict[str, Result | None]:
        """Expand a mapping of named nodes (the graph, or a block's nodes) in dependency order."""
        src = ctx.source
        written = list(nodes)
        defs: dict[str, NodeDef] = {}
        deps: dict[str, set[str]] = {}
        for i, name in enumerate(written):
            ypath = ctx.base + (name,)
            path = ctx.namer.peek(name)
            if not NAME_RE.match(name):
                self.error("E204", f"node name '{name}' must be letters, digits and _ only", src, ypath, key=True)
                continue
            if name in RESERVED_NAMES:
                self.error("E204", f"node name '{name}' is taken by torch's Module (model.{name})", src, ypath,
                           key=True, path=path, hint=f"rename the node, e.g. '{name}_'")
                continue
            if name in ctx.names:
                self.error("E305", f"node '{name}' has the same name as an input of this scope", src, ypath, key=True,
                           path=path)
                continue
            nd = self.node_def(nodes[name], src, ypath, path)
            if nd is None:
                continue
            defs[name] = nd
            refs = _refs(nd.from_) if nd.from_ is not None else ([written[i - 1]] if i else [])
            # Expressions may read a sibling's shape (${conv1.channels}): that is a dependency
            # too, unless the name is a param, which expressions see first.
            read = referenced_names(nd.when) | referenced_names(nd.repeat) | referenced_names(nd.extras)
            refs = refs + list((nd.init or {}).values())  # a scan's initial states
            used = {r.split(".", 1)[0] for r in refs} | (read - set(ctx.params))
            deps[name] = {u for u in used if u in nodes}
        order = self.dependency_order(defs, deps, written, ctx)
        position = {name: i for i, name in enumerate(written)}
        for name in written:  # names that failed validation are poisoned
            ctx.names.setdefault(name, None) if name not in defs else None
        for name in order:
            ypath = ctx.base + (name,)
            nd = defs[name]
            path = ctx.namer.peek(name)
            try:
                if nd.from_ is not None:
                    inputs = self.resolve_from(nd.from_, ctx, ypath + ("from",), path)
                else:
                    i = position[name]
                    if i:
                        inputs = [self.resolve(written[i - 1], ctx, ypath, path, implicit=True)]
                    elif ctx.first_input is _POISONED:  # the scope's first input failed: stay silent
                        raise _Poisoned()
                    elif ctx.first_input is not None:
                        inputs = [ctx.first_input]
                    else:
                        inputs = []
                ctx.names[name] = self.expand_node(name, nd, inputs, ctx, ypath, in_seq=False)
            except _Poisoned:
                ctx.names[name] = None
        return {n: ctx.names.get(n) for n in written}

    def dependency_order(self, defs: dict[str, NodeDef], deps: dict[str, set[str]], written: list[str], ctx: Ctx) -> list[str]:
        index = {n: i for i, n in enumerate(written)}
        if all(index[d] < index[n] for n, ds in deps.items() for d in ds if d in defs):
            return [n for n in written if n in defs]  # the usual case: written in dependency order
        dg = nx.DiGraph()
        dg.add_nodes_from(defs)
        dg.add_edges_from((d, n) for n, ds in deps.items() for d in ds if d in defs)
        try:
            return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))
        except nx.NetworkXUnfeasible:
            pass
        bad: set[str] = set()
        for comp in nx.strongly_connected_components(dg):
            if len(comp) > 1 or any(dg.has_edge(n, n) for n in comp):
                cycle = sorted(comp, key=index.__getitem__)
                first = cycle[0]
                loop = [e[0] for e in nx.find_cycle(dg.subgraph(comp), source=first)]
                self.error("E304", f"cycle: {' -> '.join(loop + [loop[0]])}", ctx.source, ctx.base + (first,), key=True,
                           path=ctx.namer.peek(first), hint="a node cannot depend on itself; remove one `from` on the cycle")
                bad |= comp
        bad |= {d for n in bad for d in nx.descendants(dg, n)}
        for n in bad:
            ctx.names[n] = None
        dg.remove_nodes_from(bad)
        return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))

    def node_def(self, raw: Any, source: Source, ypath: tuple, path: str | None = None) -> NodeDef | None:
        if not isinstance(raw, dict):
            self.error("E203", f"a node is a mapping like {{op: relu}}, found {type(raw).__name__} {raw!r}"[:200], source, ypath,
                       path=path)
            return None
        try:
            nd = NodeDef.model_validate(raw)
        except ValidationError as e:
            self.diags.extend(replace(d, path=path) for d in pydantic_diagnostics(e, raw, source, ypath, "node", allowed=NODE_KEYS))
            return None
        kinds = [k for k in ("op", "block", "seq", "scan") if getattr(nd, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none of them"
            hint = None
            if not kinds:
                guess = next((did_you_mean(k, ("op", "block", "seq", "scan")) for k in nd.extras
                              if did_you_mean(k, ("op", "block", "seq", "scan"))), None)
                hint = guess and f"{guess} (a node is `op:`, `block:` or `seq:`)"
            self.error("E202", f"a node needs exactly one of `op`, `block`, `seq`, `scan`; found {found}", source, ypath, key=True,
                       hint=hint, path=path)
            return None
        if nd.seq is not None and nd.extras:
            key = next(iter(nd.extras))
            self.error("E201", f"unknown key '{key}' in a seq node", source, ypath + (key,), key=True, path=path,
                       hint=did_you_mean(key, NODE_KEYS) or f"a seq node takes: {', '.join(NODE_KEYS)}")
            return None
        return nd

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
        if nd.when is not None:
            keep = self.evaluate(nd.when, ctx.env(extra), src, ypath + ("when",), here)
            if not isinstance(keep, bool):
                raise self.error("E204", f"`when` must be true or false, found {keep!r}", src, ypath + ("when",), path=here,
                                 hint="compare explicitly, e.g. `when: \"${stride != 1}\"`")
            if not keep:
                return self.pass_through(inputs, src, ypath, here)
        if nd.repeat is not None:
            count = self.evaluate(nd.repeat, ctx.env(extra), src, ypath + ("repeat",), here)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise self.error("E204", f"`repeat` must be a non-negative integer, found {count!r}", src, ypath + ("repeat",),
                                 path=here, hint="`repeat: 0` removes the node (its input passes through)")
            if count > self.limits.max_repeat:
                raise self.error("E603", f"repeat {count} exceeds the limit of {self.limits.max_repeat}", src, ypath + ("repeat",),
                                 path=here, hint="raise it with --limit max_repeat=N")
            if count == 0:
                return self.pass_through(inputs, src, ypath, here)
            single = nd.model_copy(update={"repeat": None, "when": None})
            if in_seq:
                inner = ctx
            elif nd.inline:
                inner = replace(ctx, namer=_numbered(ctx.namer))
            else:
                path = ctx.namer.name(name)
                self.add_scope(Scope(path, "seq", "repeat", location=src.location(ypath, key=True), parent=_parent(ctx),
                                     inputs=list(inputs)))
                inner = replace(ctx, namer=Namer(path, True), scope=ctx.scope + (path,))
            result: Result | None = None
            for i in range(count):
                if result is not None:  # only a copy followed by another must have one output
                    inputs = [_single(result, src, ypath, self)]
                result = self.expand_single(name, single, inputs, inner, ypath, index=i)
            return result  # type: ignore[return-value]
        return self.expand_single(name, nd, inputs, ctx, ypath, index=index)

    def pass_through(self, inputs: list[Value], src: Source, ypath: tuple, path: str | None = None) -> Result:
        if not inputs:
            raise self.error("E312", "a disabled node (when: false / repeat: 0) passes its input through, but it has no input",
                             src, ypath, key=True, path=path)
        return {"out": inputs[0]}

    def expand_single(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple,
                      index: int | None = None) -> Result:
        if nd.op is not None:
            return self.expand_op(name, nd, inputs, ctx, ypath, index)
        if nd.block is not None:
            return self.expand_block(name, nd, inputs, ctx, ypath, index)
        if nd.scan is not None:
            from .scan import expand_scan

            return expand_scan(self, name, nd, inputs, ctx, ypath, index)
        return self.expand_seq(name, nd, inputs, ctx, ypath, index)

    def expand_op(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None) -> Result:
        src = ctx.source
        env = ctx.env({"index": index} if index is not None else None)
        here = ctx.namer.peek(name)
        if is_expression(nd.op):
            op_name = self.evaluate(nd.op, env, src, ypath + ("op",), here)
            if not isinstance(op_name, str):
                raise self.error("E204", f"`op` must name an op, found {op_name!r}", src, ypath + ("op",), path=here)
            nd = nd.model_copy(update={"op": op_name})
        op = get_op(nd.op)
        if nd.op == "scan":
            raise self.error("E302", "`op: scan` is made by the compiler; write `scan: <cell block>`", src, ypath + ("op",),
                             hint="e.g. {scan: lstm_cell, hidden: 128} (docs/language.md, Recurrence)")
        if op is None:
            hint = did_you_mean(nd.op, op_names())
            if self.spec.library.blocks.get(nd.op) is not None:
                hint = f"'{nd.op}' is a block: write `block: {nd.op}`"
            raise self.error("E302", f"unknown op '{nd.op}'", src, ypath + ("op",), path=here,
                             hint=hint or "see `specgraph ops` for the list")
        if nd.inline:
            raise self.error("E204", "`inline` applies to block and seq nodes, not ops", src, ypath + ("inline",), key=True,
                             path=here)
        path = ctx.namer.name(name)
        values = {}
        failed = False
        for key, raw in nd.extras.items():
            try:
                values[key] = self.evaluate(raw, env, src, ypath + (key,), path)
            except _Poisoned:
                failed = True
        if failed:
            raise _Poisoned()
        try:
            params = op.Params.model_validate(values)
        except ValidationError as e:
            self.diags.extend(replace(d, path=path) for d in pydantic_diagnostics(
                e, values, src, ypath, f"op {op.name}", allowed=tuple(op.Params.model_fields) + NODE_KEYS))
            raise _Poisoned()
        location = src.location(ypath, key=True)
        n_in = len(inputs)
        if n_in < op.min_inputs or (op.max_inputs is not None and n_in > op.max_inputs):
            want = (f"{op.min_inputs}" if op.max_inputs == op.min_inputs else
                    f"at least {op.min_inputs}" if op.max_inputs is None else f"{op.min_inputs} to {op.max_inputs}")
            raise self.error("E408", f"{op.name} takes {want} input(s), found {n_in}", None, path=path, location=location,
                             hint="list its inputs with `from: [a, b]`" if n_in < op.min_inputs else None)
        in_types = [v.type for v in inputs]
        try:
            op.check_dtypes(in_types)
            out_types = op.infer(params, in_types)
            ports = op.output_ports(params)
        except ShapeError as e:
            details = tuple(_relabel(d, inputs) for d in e.details) or tuple(f"{v.ref} -> {v.type}" for v in inputs)
            hint = e.hint or shape_error_hint(self.g, op.name, params, inputs, e)
            raise self.error(e.code, e.message, None, path=path, location=location, hint=hint, details=details)
        self.check_dims(out_types, path, location)
        for key, value in values.items():  # a weight's size (an embedding's `num`) is no output's dim
            big = next((v for v in _ints(value) if abs(v) > self.limits.max_dim), None)
            if big is not None:
                raise self.error("E602", f"param '{key}' = {big} exceeds the limit {self.limits.max_dim}", src,
                                 ypath + (key,), path=path, hint="raise it with --limit max_dim=N")
        # The weights too: torch cannot even allocate an lstm of hidden 10**12. Only the built-in
        # ops' counts are used, which are arithmetic (the default count builds the module).
        if type(op).num_params is not Op.num_params and type(op).__module__.startswith("specgraph."):
            weights = op.num_params(params, in_types)
            if isinstance(weights, int) and weights > self.limits.max_numel:
                raise self.error("E602", f"its weights have {weights} elements, over the limit {self.limits.max_numel}",
                                 None, path=path, location=location, hint="raise it with --limit max_numel=N")
        node = Node(path, op.name, params, list(inputs), dict(zip(ports, out_types)), location, ctx.scope)
        self.add_node(node)
        return {port: Value(path, port, t) for port, t in node.outputs.items()}

    def check_dims(self, types: list[TensorType], path: str, location: Location) -> None:
        for t in types:
            numel = 1
            for d in t.shape:
                if isinstance(d, int):
                    if d <= 0:
                        raise self.error("E404", f"output shape {t} has a non-positive dim", None, path=path, location=location)
                    if d > self.limits.max_dim:
                        raise self.error("E602", f"dim {d} exceeds the limit {self.limits.max_dim}", None, path=path,
                                         location=location, hint="raise it with --limit max_dim=N")
                    numel *= d
            if numel > self.limits.max_numel:
                raise self.error("E602", f"output {t} has {numel} elements, over the limit {self.limits.max_numel}", None,
                                 path=path, location=location, hint="raise it with --limit max_numel=N")

    def add_node(self, node: Node) -> None:
        if node.path in self.g:
            raise self.error("E305", f"two nodes get the path '{node.path}'", None, path=node.path, location=node.location,
                             hint="an inline block or seq put a name that exists already into this scope")
        if self.g.number_of_nodes() >= self.limits.max_graph_nodes:
            self.diags.add(Diagnostic("E601", f"the graph exceeds {self.limits.max_graph_nodes} nodes", node.location,
                                      path=node.path, hint="raise it with --limit max_graph_nodes=N"))
            raise SpecError(self.diags.items)
        self.g.add_node(node.path, node=node, order=next(self.order))
        for slot, v in enumerate(node.inputs):
            if self.g.has_edge(v.node, node.path):
                self.g.edges[v.node, node.path]["ports"].append((v.port, slot))
            else:
                self.g.add_edge(v.node, node.path, ports=[(v.port, slot)])

    def add_scope(self, scope: Scope) -> None:
        self.scopes[scope.path] = scope

    def lookup_block(self, nd: NodeDef, ctx: Ctx, ypath: tuple, index: int | None, here: str,
                     key: str = "block") -> tuple[str, BlockDef, Source, tuple]:
        """The block a `block:` (or `scan:`) node names, its name evaluated if it is an expression."""
        src = ctx.source
        env = ctx.env({"index": index} if index is not None else None)
        ref = getattr(nd, key)
        if is_expression(ref):
            ref = self.evaluate(ref, env, src, ypath + (key,), here)
            if not isinstance(ref, str):
                raise self.error("E204", f"`{key}` must name a block, found {ref!r}", src, ypath + (key,), path=here)
        nd = nd.model_copy(update={"block": ref})
        entry = self.spec.library.blocks.get(nd.block)
        if entry is None:
            blocks = self.spec.library.blocks
            hint = did_you_mean(nd.block, blocks)
            if get_op(nd.block) is not None:
                hint = f"'{nd.block}' is an op: write `op: {nd.block}`"
            raise self.error("E303", f"unknown block '{nd.block}'", src, ypath + (key,), path=here,
                             hint=hint or (f"blocks defined: {', '.join(blocks)}" if blocks else
                                           "define it under `blocks:` or include a file that does"))
        block, bsrc, bpath = entry
        if not block.nodes:  # it would have no output to give
            raise self.error("E204", f"block '{nd.block}' has no nodes", bsrc, bpath + ("nodes",), path=here,
                             hint="a block needs at least one node")
        if block.outputs is not None and not block.outputs:  # `outputs: {}` or `[]`
            raise self.error("E204", f"block '{nd.block}' has no outputs", bsrc, bpath + ("outputs",), path=here,
                             hint="name at least one node, or leave `outputs` out to output the last node")
        if len(ctx.blocks) >= self.limits.max_block_depth:
            # A block may instantiate itself (U-Net's levels), as long as a `when:` ends it.
            if nd.block in ctx.blocks:
                # Name the first instance that recursed, not the 64th: that is where `when:` is missing.
                chain = [p for p in ctx.scope if p in self.scopes and self.scopes[p].kind == "block"
                         and self.scopes[p].name == nd.block] or [here]
                raise self.error("E604", f"block '{nd.block}' instantiates itself without end "
                                 f"(more than {self.limits.max_block_depth} levels)", src, ypath + (key,),
                                 path=chain[1] if len(chain) > 1 else chain[0],
                                 details=(f"{' -> '.join(chain[:3])} -> ... ({len(chain)} instances)",),
                                 hint="end the recursion with a param-driven `when:` (e.g. when: \"${depth > 0}\")")
            raise self.error("E604", f"blocks nested deeper than {self.limits.max_block_depth}", src, ypath + (key,),
                             path=here, hint="raise it with --limit max_block_depth=N")
        return nd.block, block, bsrc, bpath

    def block_params(self, nd: NodeDef, block: BlockDef, bsrc: Source, bpath: tuple, ctx: Ctx, ypath: tuple,
                     index: int | None, path: str) -> dict[str, Any]:
        """The params and `let` values of one block instance, from the node's extra keys."""
        src = ctx.source
        env = ctx.env({"index": index} if index is not None else None)
        given = {}
        for key, raw in nd.extras.items():
            given[key] = self.evaluate(raw, env, src, ypath + (key,), path)
        decls = self.decl_cache.get(id(block))
        if decls is None:
            decls = self.decl_cache[id(block)] = parse_param_decls(block.params, bsrc, bpath + ("params",), self.diags)
        values = bind_params(decls, given, owner=f"block '{nd.block}'", limits=self.limits, report=self.diags.add,
                             path=path, where=lambda k: src.location(ypath + ((k,) if k else ()), key=True),
                             keys=NODE_KEYS)
        if values is None:
            raise _Poisoned()
        return self.bind_let(block.let, values, bsrc, bpath + ("let",), path)

    def expand_block(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None) -> Result:
        src = ctx.source
        here = ctx.namer.peek(name)
        block_name, block, bsrc, bpath = self.lookup_block(nd, ctx, ypath, index, here)
        nd = nd.model_copy(update={"block": block_name})
        path = None if nd.inline else ctx.namer.name(name)
        values = self.block_params(nd, block, bsrc, bpath, ctx, ypath, index, path or here)
        bound = self.bind_inputs(nd, block, inputs, src, ypath, path or here)
        location = src.location(ypath, key=True)
        if path is not None:
            self.add_scope(Scope(path, "block", nd.block, values, location, list(inputs), parent=_parent(ctx)))
        inner = Ctx(bsrc, bpath + ("nodes",), values, {k: ({"out": v} if v else None) for k, v in bound.items()},
                    ctx.namer if path is None else Namer(path, False),
                    ctx.scope if path is None else ctx.scope + (path,), ctx.blocks + (nd.block,),
                    first_input=next(iter(bound.values()), None))
        self.expand_mapping(block.nodes, inner)
        result: Result = {}
        for port, ref, opath in _block_outputs(block, bpath):
            value = self.resolve(ref, inner, opath, path, source=bsrc)
            if port in result:
                raise self.error("E305", f"block '{nd.block}' has two outputs named '{port}'", bsrc, opath,
                                 hint="name them: outputs: {a: x.out, b: y.out}")
            result[port] = value
        if path is not None:
            self.scopes[path].outputs = dict(result)
        return result

    def expand_cell(self, block: BlockDef, bsrc: Source, bpath: tuple, values: dict[str, Any],
                    input_types: dict[str, TensorType], path: str, block_name: str) -> Graph:
        """Expand ``block`` for one time step into a graph of its own (a scan's cell).

        Node paths inside are relative to the cell; diagnostics found there name the full path.
        """
        saved = (self.g, self.scopes, self.order)
        self.g, self.scopes, self.order = nx.DiGraph(), {}, itertools.count()
        first_diag = len(self.diags.items)
        try:
            names: dict[str, Result | None] = {}
            for name, t in input_types.items():
                self.g.add_node(name, node=Node(name, "input", None, [], {"out": t}), order=next(self.order))
                names[name] = {"out": Value(name, "out", t)}
            first = next(iter(names.values()))["out"]
            inner = Ctx(bsrc, bpath + ("nodes",), values, names, Namer("", False), (), (block_name,), first_input=first)
            self.expand_mapping(block.nodes, inner)
            outputs = [OutputInfo(port, self.resolve(ref, inner, opath, path, source=bsrc))
                       for port, ref, opath in _block_outputs(block, bpath)]
            return Graph(block_name, self.g, dict(input_types), outputs, self.scopes, values)
        finally:
            for i in range(first_diag, len(self.diags.items)):
                d = self.diags.items[i]
                self.diags.items[i] = replace(d, path=f"{path}.cell.{d.path}" if d.path else path)
            self.g, self.scopes, self.order = saved

    def bind_let(self, let: dict[str, Any], params: dict[str, Any], src: Source, ypath: tuple,
                 path: str | None) -> dict[str, Any]:
        """Add the `let:` values, each evaluated over the params and the values before it."""
        values = dict(params)
        for name, raw in let.items():
            if name in values:
                raise self.error("E305", f"`let` value '{name}' has the name of a param", src, ypath + (name,), key=True, path=path)
            values[name] = self.evaluate(raw, values, src, ypath + (name,), path)
        return values

    def bind_inputs(self, nd: NodeDef, block: BlockDef, inputs: list[Value], src: Source, ypath: tuple,
                    path: str | None) -> dict[str, Value]:
        names = block.inputs
        if isinstance(nd.from_, dict):
            unknown = [k for k in nd.from_ if k not in names]
            if unknown:
                raise self.error("E301", f"block '{nd.block}' has no input '{unknown[0]}'", src, ypath + ("from", unknown[0]),
                                 key=True, path=path, hint=did_you_mean(unknown[0], names) or f"its inputs: {', '.join(names)}")
            by_name = dict(zip(nd.from_, inputs))
            missing = [n for n in names if n not in by_name]
            if missing:
                raise self.error("E408", f"block '{nd.block}' input '{missing[0]}' is not given", src, ypath + ("from",), path=path)
            return {n: by_name[n] for n in names}
        if len(inputs) != len(names):
            raise self.error("E408", f"block '{nd.block}' takes {len(names)} input(s) ({', '.join(names)}), found {len(inputs)}",
                             src, ypath + (("from",) if nd.from_ is not None else ()), key=nd.from_ is None, path=path)
        return dict(zip(names, inputs))

    def expand_seq(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None) -> Result:
        src = ctx.source
        path = ctx.namer.peek(name)
        if nd.inline:
            inner = replace(ctx, namer=_numbered(ctx.namer))
        else:
            path = ctx.namer.name(name)
            self.add_scope(Scope(path, "seq", "seq", location=src.location(ypath, key=True), parent=_parent(ctx), inputs=list(inputs)))
            inner = replace(ctx, namer=Namer(path, True), scope=ctx.scope + (path,))
        result: Result | None = None
        if len(inputs) > 1:
            raise self.error("E408", f"a seq takes one input, found {len(inputs)}", src, ypath + ("from",), path=path)
        for i, raw in enumerate(nd.seq or []):
            if result is not None:  # only an item followed by another must have one output
                inputs = [_single(result, src, ipath, self)]
            ipath = ypath + ("seq", i)
            item = self.node_def(raw, src, ipath, inner.namer.peek(str(i)))
            if item is None:
                raise _Poisoned()
            if item.from_ is not None:
                raise self.error("E204", "a seq item takes the previous item's output; `from` is not allowed here", src,
                                 ipath + ("from",), key=True, path=inner.namer.peek(str(i)),
                                 hint="use a mapping of named nodes for branching")
            result = self.expand_node(str(i), item, inputs, inner, ipath, in_seq=True, index=index)
        if result is None:
            raise self.error("E204", "an empty seq", src, ypath + ("seq",), path=path)
        if not nd.inline:
            self.scopes[inner.namer.prefix].outputs = dict(result)
        return result

    # ---- references --------------------------------------------------------------------------
    def resolve_from(self, raw: Any, ctx: Ctx, ypath: tuple, path: str | None) -> list[Value]:
        if isinstance(raw, str):
            return [self.resolve(raw, ctx, ypath, path)]
        if isinstance(raw, list):
            return [self.resolve(r, ctx, ypath + (i,), path) for i, r in enumerate(raw)]
        return [self.resolve(r, ctx, ypath + (k,), path) for k, r in raw.items()]

    def resolve(self, ref: str, ctx: Ctx, ypath: tuple, path: str | None, *, implicit: bool = False,
                source: Source | None = None) -> Value:
        src = source or ctx.source
        head, _, port = ref.partition(".")
        if head not in ctx.names:
            raise self.error("E301", f"undefined reference '{ref}'", src, ypath, path=path,
                             hint=did_you_mean(head, ctx.names) or f"names in sight: {', '.join(list(ctx.names)[:12]) or 'none'}")
        result = ctx.names[head]
        if result is None:
            raise _Poisoned()
        if not port:
            if len(result) == 1:
                return next(iter(result.values()))
            raise self.error("E311", f"'{head}' has several outputs ({', '.join(result)}); name one, e.g. '{head}.{next(iter(result))}'",
                             src, ypath, key=implicit, path=path,
                             hint="an implicit input (the previous node) must have one output" if implicit else None)
        if port in result:
            return result[port]
        raise self.error("E311", f"'{head}' has no output '{port}'", src, ypath, path=path,
                         hint=did_you_mean(port, result) or f"its outputs: {', '.join(result)}")

    # ---- lint ----------------------------------------------------------------------------
    def lint(self, graph: Graph) -> list[Diagnostic]:
        warnings = []
        for name in graph.inputs:
            if self.g.out_degree(name) == 0:
                warnings.append(Diagnostic("W301", f"input '{name}' is not used", self.g.nodes[name]["node"].location,
                                           severity="warning"))
        live = set()
        for o in graph.outputs:
            live.add(o.value.node)
            live |= nx.ancestors(self.g, o.value.node)
        for path in self.g:
            node = self.g.nodes[path]["node"]
            if path not in live and node.op != "input":
                warnings.append(Diagnostic("W302", "node does not reach any output", node.location, path=path, severity="warning"))
        return warnings


DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")


def _ints(value: Any) -> Iterator[int]:
    """The integers in a param value (lists searched, booleans left out)."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v)


def _refs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [r for r in raw if isinstance(r, str)]
    if isinstance(raw, dict):
        return [r for r in raw.values() if isinstance(r, str)]
    return []


def _block_outputs(block: BlockDef, bpath: tuple) -> list[tuple[str, str, tuple]]:
    """(port, ref, yaml path) of each output a block exposes.

    One output is the port 'out'. Several are named by the mapping's keys, or by the last
    component of each ref (`trunk.layer4` -> port `layer4`).
    """
    outs = block.outputs
    if outs is None:
        last = list(block.nodes)[-1]
        return [("out", last, bpath + ("nodes", last))]
    if isinstance(outs, str):
        return [("out", outs, bpath + ("outputs",))]
    if isinstance(outs, dict):
        return [(k, v, bpath + ("outputs", k)) for k, v in outs.items()]
    if len(outs) == 1:
        return [("out", outs[0], bpath + ("outputs", 0))]
    return [(ref.rsplit(".", 1)[-1], ref, bpath + ("outputs", i)) for i, ref in enumerate(outs)]


def _numbered(namer: Namer) -> Namer:
    """The namer for seq items spliced into a scope: the seq's own, or numbers under the prefix."""
    return namer if namer.numbered else Namer(namer.prefix, True)


def _parent(ctx: Ctx) -> str | None:
    return ctx.scope[-1] if ctx.scope else None


def _single(result: Result, src: Source, ypath: tuple, ex: _Expander) -> Value:
    if len(result) != 1:
        raise ex.error("E311", f"this node has several outputs ({', '.join(result)}); the next item needs one", src, ypath,
                       key=True, path=next(iter(result.values())).node, hint="end the seq here and pick an output by name: `from: <node>.<port>`")
    return next(iter(result.values()))


_INPUT_LABEL = re.compile(r"^input (\d+) -> ")


def _relabel(detail: str, inputs: list[Value]) -> str:
    """Replace an op's "input i -> [shape]" by the producing node's name."""
    m = _INPUT_LABEL.match(detail)
    if m and int(m.group(1)) < len(inputs):
        return f"{inputs[int(m.group(1))].ref} -> " + detail[m.end():]
    return detail


def _offset_location(loc: Location, offset: int | None) -> Location:
    """Move a value's location to a character inside it (past an opening quote, if any)."""
    if offset is None or loc.source_line is None:
        return loc
    quote = 1 if loc.source_line[loc.col - 1:loc.col] in ("'", '"') else 0
    col = loc.col + quote + offset
    if col > len(loc.source_line.rstrip("\r\n")) + 1:  # a scalar folded over lines: stay on its start
        return loc
    return Location(loc.file, loc.line, col, loc.source_line)
