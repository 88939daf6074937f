"""Blocks and seqs: finding a block (by name or expression), binding its params, `let` and
inputs, expanding its nodes in a scope of its own (or inline), a scan's cell on its own, and
a seq's numbered items.

A block sees its own params, `let` values and inputs, and — named in its `uses:` — the
caller's values of those names (a default inherited explicitly: an instance may still give
one).  A collaborator of the :class:`~specgraph.expand.expander.Expander`: it uses its
``error``, ``evaluate``, ``refs``, ``expand_mapping`` and ``expand_node``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..diagnostics import SpecError, did_you_mean
from ..ir.graph import Graph, GraphBuilder, OutputInfo, Scope, Value
from ..ir.tensor_type import TensorType
from ..lang.expr import is_expression
from ..lang.marked_yaml import Source
from ..lang.document import NODE_KEYS, BlockDef, NodeDef
from ..lang.params import ParamDecl, bind_params, parse_param_decls
from ..ops import get_op
from .node_defs import node_def
from .own_text import check_seq_items
from .reporting import Poisoned
from .requirements import check_requirements
from .scope import Ctx, Env, Namer, Result, numbered_namer, parent_scope
from .symbolic import concrete_size_fix

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


class Blocks:
    def __init__(self, ex: "Expander"):
        self.ex = ex
        self.decl_cache: dict[int, dict[str, ParamDecl]] = {}  # a block's parsed params, by id
        self.instantiated: set[str] = set()  # the blocks met, whose unused params lint reports

    def lookup_block(self, nd: NodeDef, ctx: Ctx, ypath: tuple, index: int | None, here: str,
                     key: str = "block") -> tuple[str, BlockDef, Source, tuple]:
        """The block a `block:` (or `scan:`) node names, its name evaluated if it is an expression."""
        src = ctx.source
        env = ctx.env({"index": index} if index is not None else None)
        ref = getattr(nd, key)
        if is_expression(ref):
            ref = self.ex.evaluate(ref, env, src, ypath + (key,), here)
            if not isinstance(ref, str):
                raise self.ex.error("E204", f"`{key}` must name a block, found {ref!r}", src, ypath + (key,), path=here)
        nd = nd.model_copy(update={"block": ref})
        entry = self.ex.spec.library.blocks.get(nd.block)
        if entry is None:
            blocks = self.ex.spec.library.blocks
            hint = did_you_mean(nd.block, blocks)
            if get_op(nd.block) is not None:
                hint = f"'{nd.block}' is an op: write `op: {nd.block}`"
            raise self.ex.error("E303", f"unknown block '{nd.block}'", src, ypath + (key,), path=here,
                             hint=hint or (f"blocks defined: {', '.join(blocks)}" if blocks else
                                           "define it under `blocks:` or include a file that does"))
        block, bsrc, bpath = entry
        if not block.nodes:  # it would have no output to give
            raise self.ex.error("E204", f"block '{nd.block}' has no nodes", bsrc, bpath + ("nodes",), path=here,
                             hint="a block needs at least one node")
        if block.outputs is not None and not block.outputs:  # `outputs: {}` or `[]`
            raise self.ex.error("E204", f"block '{nd.block}' has no outputs", bsrc, bpath + ("outputs",), path=here,
                             hint="name at least one node, or leave `outputs` out to output the last node")
        if len(ctx.blocks) >= self.ex.limits.max_block_depth:
            # A block may instantiate itself (U-Net's levels), as long as a `when:` ends it.
            if nd.block in ctx.blocks:
                # Name the first instance that recursed, not the 64th: that is where `when:` is missing.
                chain = [p for p in ctx.scope if p in self.ex.g.scopes and self.ex.g.scopes[p].kind == "block"
                         and self.ex.g.scopes[p].name == nd.block] or [here]
                self.ex.error("E604", f"block '{nd.block}' instantiates itself without end "
                              f"(more than {self.ex.limits.max_block_depth} levels)", src, ypath + (key,),
                              path=chain[1] if len(chain) > 1 else chain[0],
                              details=(f"{' -> '.join(chain[:3])} -> ... ({len(chain)} instances)",),
                              hint="end the recursion with a param-driven `when:` (e.g. when: \"${depth > 0}\")")
                # Stop here, as the node limit does: every sibling on the way down would recurse to
                # this depth again, and through a block used k times that is k^64 instances.
                raise SpecError(self.ex.diags.items)
            raise self.ex.error("E604", f"blocks nested deeper than {self.ex.limits.max_block_depth}", src, ypath + (key,),
                             path=here, hint="raise it with --limit max_block_depth=N")
        return nd.block, block, bsrc, bpath

    def block_params(self, nd: NodeDef, block: BlockDef, bsrc: Source, bpath: tuple, ctx: Ctx, ypath: tuple,
                     index: int | None, path: str, *, lenient: bool = False) -> dict[str, Any]:
        """The params of one block instance, from the node's extra keys and, for the names the
        block `uses:`, the caller's values.  ``lenient``: the node's input failed (own_text.py),
        so keys whose value reads a failed tensor are left unknown, and unchecked."""
        src = ctx.source
        env = ctx.env({"index": index} if index is not None else None)
        given: dict[str, Any] = {}
        unknown: set[str] = set()
        for key, raw in nd.extras.items():
            errors = len(self.ex.diags.items)
            try:
                given[key] = self.ex.evaluate(raw, env, src, ypath + (key,), path)
            except Poisoned:
                if not lenient or len(self.ex.diags.items) > errors:
                    raise
                unknown.add(key)
        decls = self.declarations(block, bsrc, bpath)
        given.update(self.used_values(nd, block, decls, ctx, ypath, path, given, unknown, bsrc, bpath))
        decls = {k: d for k, d in decls.items() if k not in unknown}
        values = bind_params(decls, {k: v for k, v in given.items() if k not in unknown}, owner=f"block '{nd.block}'",
                             limits=self.ex.limits, report=self.ex.diags.add, path=path,
                             where=lambda k: src.location(ypath + ((k,) if k else ()), key=True), keys=NODE_KEYS,
                             symbolic_hint=lambda dim: f"declare it `any` to pass a symbolic size through, or "
                                                       f"{concrete_size_fix(dim, self.ex.input_types)}")
        if values is None:
            raise Poisoned()
        self.instantiated.add(nd.block)
        return values

    def declarations(self, block: BlockDef, bsrc: Source, bpath: tuple) -> dict[str, ParamDecl]:
        """A block's params, and the names it `uses:` that it does not declare (any type, no default)."""
        decls = self.decl_cache.get(id(block))
        if decls is None:
            decls = parse_param_decls(block.params, bsrc, bpath + ("params",), self.ex.diags)
            for name in block.uses:
                decls.setdefault(name, ParamDecl(name, "any", required=True))
            self.decl_cache[id(block)] = decls
        return decls

    def used_values(self, nd: NodeDef, block: BlockDef, decls: dict[str, ParamDecl], ctx: Ctx, ypath: tuple,
                    path: str, given: dict[str, Any], unknown: set[str], bsrc: Source, bpath: tuple) -> dict[str, Any]:
        """The caller's values of the names the block `uses:` that the instance does not give; a
        used name the block also declares falls back to its default where the caller has none."""
        caller = f"block '{ctx.blocks[-1]}'" if ctx.blocks else "the spec"
        wanted = [n for n in block.uses if n not in given and n not in unknown]
        missing = [n for n in wanted if n not in ctx.params and decls[n].required]
        if missing:
            names = ", ".join(f"'{n}'" for n in missing)
            first = block.uses.index(missing[0])
            raise self.ex.error("E309", f"block '{nd.block}' uses {names} from its caller, but {caller} has no "
                                f"{names}", ctx.source, ypath, key=True, path=path,
                                details=(f"{bsrc.location(bpath + ('uses', first))}: `uses: [{', '.join(block.uses)}]`",),
                                hint=f"give {'it' if len(missing) == 1 else 'them'} here (`{missing[0]}: ...`), or "
                                     f"declare {names} in the params or `uses:` of {caller}")
        return {n: ctx.params[n] for n in wanted if n in ctx.params}

    def expand_block(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None) -> Result:
        src = ctx.source
        here = ctx.namer.peek(name)
        block_name, block, bsrc, bpath = self.lookup_block(nd, ctx, ypath, index, here)
        nd = nd.model_copy(update={"block": block_name})
        path = None if nd.inline else ctx.namer.name(name)
        values = self.block_params(nd, block, bsrc, bpath, ctx, ypath, index, path or here)
        bound = self.bind_inputs(nd, block, inputs, src, ypath, path or here)
        values = self.bind_let(block.let, values, bsrc, bpath + ("let",), path or here, inputs=bound)
        if block.require:
            check_requirements(self.ex, block.require, Env(values, _views(bound), {}), bsrc, bpath + ("require",),
                               path or here)
        location = src.location(ypath, key=True)
        if path is not None:
            self.ex.g.add_scope(Scope(path, "block", nd.block, values, location, inputs, parent=parent_scope(ctx)))
        inner = Ctx(bsrc, bpath + ("nodes",), values, _views(bound),
                    ctx.namer if path is None else Namer(path, False),
                    ctx.scope if path is None else ctx.scope + (path,), ctx.blocks + (nd.block,),
                    first_input=next(iter(bound.values()), None))
        self.ex.expand_mapping(block.nodes, inner)
        result: Result = {}
        for port, ref, opath in block_outputs(block, bpath):
            value = self.ex.refs.resolve(ref, inner, opath, path, source=bsrc)
            if port in result:
                raise self.ex.error("E305", f"block '{nd.block}' has two outputs named '{port}'", bsrc, opath,
                                 hint="name them: outputs: {a: x.out, b: y.out}")
            result[port] = value
        if path is not None:
            self.ex.g.finish_scope(path, result)
        return result

    def expand_cell(self, block: BlockDef, bsrc: Source, bpath: tuple, values: dict[str, Any],
                    input_types: dict[str, TensorType], path: str, block_name: str) -> Graph:
        """Expand ``block`` for one time step into a graph of its own (a scan's cell).

        Node paths inside are relative to the cell; diagnostics found there name the full path.
        """
        ex = self.ex
        saved = ex.g
        ex.g = GraphBuilder()
        first_diag = len(ex.diags.items)
        try:
            names: dict[str, Result | None] = {}
            for name, t in input_types.items():
                ex.g.add_input(name, t)
                names[name] = {"out": Value(name, "out", t)}
            first = next(iter(names.values()))["out"]
            inner = Ctx(bsrc, bpath + ("nodes",), values, names, Namer("", False), (), (block_name,), first_input=first)
            ex.expand_mapping(block.nodes, inner)
            outputs = [OutputInfo(port, ex.refs.resolve(ref, inner, opath, path, source=bsrc))
                       for port, ref, opath in block_outputs(block, bpath)]
            return ex.g.build(block_name, outputs, values)
        finally:
            for i in range(first_diag, len(ex.diags.items)):
                d = ex.diags.items[i]
                ex.diags.items[i] = replace(d, path=f"{path}.cell.{d.path}" if d.path else path)
            ex.g = saved

    def bind_let(self, let: dict[str, Any], params: dict[str, Any], src: Source, ypath: tuple,
                 path: str | None, inputs: dict[str, Value] | None = None) -> dict[str, Any]:
        """Add the `let:` values, each evaluated over the params, the block's ``inputs`` (shape
        views: ``${make_divisible(x.channels * ratio, 8)}``) and the values before it."""
        values = dict(params)
        env = Env(values, _views(inputs or {}), {})
        for name, raw in let.items():
            if name in values or name in (inputs or {}):
                what = "a param" if name in values else "an input"
                raise self.ex.error("E305", f"`let` value '{name}' has the name of {what}", src, ypath + (name,),
                                    key=True, path=path)
            values[name] = self.ex.evaluate(raw, env, src, ypath + (name,), path)
        return values

    def bind_inputs(self, nd: NodeDef, block: BlockDef, inputs: list[Value], src: Source, ypath: tuple,
                    path: str | None) -> dict[str, Value]:
        names = block.inputs
        if isinstance(nd.from_, dict):
            unknown = [k for k in nd.from_ if k not in names]
            if unknown:
                raise self.ex.error("E301", f"block '{nd.block}' has no input '{unknown[0]}'", src, ypath + ("from", unknown[0]),
                                 key=True, path=path, hint=did_you_mean(unknown[0], names) or f"its inputs: {', '.join(names)}")
            by_name = dict(zip(nd.from_, inputs))
            missing = [n for n in names if n not in by_name]
            if missing:
                raise self.ex.error("E408", f"block '{nd.block}' input '{missing[0]}' is not given", src, ypath + ("from",), path=path)
            return {n: by_name[n] for n in names}
        if len(inputs) != len(names):
            raise self.ex.error("E408", f"block '{nd.block}' takes {len(names)} input(s) ({', '.join(names)}), found {len(inputs)}",
                             src, ypath + (("from",) if nd.from_ is not None else ()), key=nd.from_ is None, path=path)
        return dict(zip(names, inputs))

    def expand_seq(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None) -> Result:
        src = ctx.source
        path = ctx.namer.peek(name)
        if nd.inline:
            inner = replace(ctx, namer=numbered_namer(ctx.namer))
        else:
            path = ctx.namer.name(name)
            self.ex.g.add_scope(Scope(path, "seq", "seq", location=src.location(ypath, key=True), parent=parent_scope(ctx),
                                      inputs=inputs))
            inner = replace(ctx, namer=Namer(path, True), scope=ctx.scope + (path,))
        result: Result | None = None
        if len(inputs) > 1:
            raise self.ex.error("E408", f"a seq takes one input, found {len(inputs)}", src, ypath + ("from",), path=path)
        ipath = ypath
        for i, raw in enumerate(nd.seq or []):
            if result is not None:  # only an item followed by another must have one output (shown at that item)
                inputs = [single_output(result, src, ipath, self.ex)]
            ipath = ypath + ("seq", i)
            try:
                item = node_def(self.ex, raw, src, ipath, inner.namer.peek(str(i)))
                if item is None:
                    raise Poisoned()
                if item.from_ is not None:
                    raise self.ex.error("E204", "a seq item takes the previous item's output; `from` is not allowed "
                                        "here", src, ipath + ("from",), key=True, path=inner.namer.peek(str(i)),
                                        hint="use a mapping of named nodes for branching")
                result = self.ex.expand_node(str(i), item, inputs, inner, ipath, in_seq=True, index=index)
            except Poisoned:  # the items after it read what failed: only their own text is checked
                check_seq_items(self.ex, nd, i + 1, ctx, ypath, Namer(path, False), index)
                raise
        if result is None:
            raise self.ex.error("E204", "an empty seq", src, ypath + ("seq",), path=path)
        if not nd.inline:
            self.ex.g.finish_scope(inner.namer.prefix, result)
        return result


def block_outputs(block: BlockDef, bpath: tuple) -> list[tuple[str, str, tuple]]:
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


def _views(bound: dict[str, Value]) -> dict[str, Result | None]:
    """A block's bound inputs as names in sight (None: an input that failed)."""
    return {k: ({"out": v} if v else None) for k, v in bound.items()}


def single_output(result: Result, src: Source, ypath: tuple, ex: "Expander") -> Value:
    if len(result) != 1:
        raise ex.error("E311", f"this node has several outputs ({', '.join(result)}); the next item needs one", src, ypath,
                       key=True, path=next(iter(result.values())).node, hint="end the seq here and pick an output by name: `from: <node>.<port>`")
    return next(iter(result.values()))
