"""`op:` nodes: the op looked up, its params evaluated and validated, its input count and
dtypes checked, its shape rule run, the output sizes held to the limits, and the node added
with the op object and the traits the op promises for these params.

A collaborator of the :class:`~specgraph.expand.expander.Expander`: it uses its ``error``,
``evaluate`` and ``add_node``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator

from pydantic import ValidationError

from ..diagnostics import Diagnostic, Location, did_you_mean
from ..ir.graph import Node, Value
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from ..ir.written import Written
from ..lang.expr import is_expression
from ..lang.document import NodeDef
from ..lang.validation import pydantic_diagnostics
from ..ops import REGISTRY, Op, ShapeError, get_op, op_names
from ..ops.base import param_meaning
from ..ops.runtime_sizes import reading_sizes_from, source_values
from ..ops.rules import InputDetail
from .hints import shape_error_hint
from .reporting import Poisoned
from .scope import Ctx, Result
from .symbolic import op_param_fix
from . import written as record

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


def reads_nothing(nd: NodeDef) -> bool:
    """An op node whose op takes no input at all (parameter, buffer)."""
    op = get_op(nd.op) if isinstance(nd.op, str) and not is_expression(nd.op) else None
    return op is not None and op.max_inputs == 0


# The structural keys an op node may carry (a scan's `init`, a block's `inline` are not among them).
OP_NODE_KEYS = ("op", "from", "when", "repeat", "name", "doc")


def op_keys(op: Op) -> tuple[str, ...]:
    """The keys an `op:` node of ``op`` takes, for "did you mean": its params, then the node keys
    that apply to an op (so a misspelt param is never answered with a scan's `init`)."""
    return tuple(op.Params.model_fields) + OP_NODE_KEYS


def size_sources(ex: "Expander", ctx: Ctx) -> list[tuple]:
    """The shapes a run reads sizes from besides an op's own inputs: its innermost block's inputs,
    then the spec's (ops/runtime_sizes.py); none inside a scan's cell, whose split graphs take
    other inputs."""
    if ex.g is not ex.top:
        return []
    spec_inputs = [Value(name, "out", t) for name, t in ex.input_types.items()]
    return [v.type.shape for v in source_values(ex.g.scopes, ctx.scope, spec_inputs)]


class OpNodes:
    def __init__(self, ex: "Expander"):
        self.ex = ex

    def expand_op(self, name: str, nd: NodeDef, inputs: list[Value], ctx: Ctx, ypath: tuple, index: int | None,
                  written: Written | None = None) -> Result:
        ex, src = self.ex, ctx.source
        written_op = nd.op
        env = ctx.env({"index": index} if index is not None else None)
        here = ctx.namer.peek(name)
        op = self.lookup(nd, env, src, ypath, here)
        if nd.inline:
            raise ex.error("E204", "`inline` applies to block and seq nodes, not ops", src, ypath + ("inline",), key=True,
                           path=here)
        path = ctx.namer.name(name)
        values, params = self.params(op, nd, env, src, ypath, path)
        location = src.location(ypath, key=True)
        least, most = op.input_range(params)
        if most == 0 and nd.from_ is None:  # a node that reads nothing (a parameter) takes no implicit input
            inputs = []
        n_in = len(inputs)
        if n_in < least or (most is not None and n_in > most):
            want = (f"{least}" if most == least else f"at least {least}" if most is None else f"{least} to {most}")
            raise ex.error("E408", f"{op.name} takes {want} input(s), found {n_in}", None, path=path, location=location,
                           hint="list its inputs with `from: [a, b]`" if n_in < least else None)
        in_types = [v.type for v in inputs]
        try:
            op.check_dtypes(in_types)
            with reading_sizes_from(lambda: size_sources(ex, ctx)):  # a size may be read from the spec's inputs
                out_types, requires = op.infer_with_requirements(params, in_types)
            ports = op.output_ports(params)
        except ShapeError as e:
            details = tuple(_relabel(d, inputs) for d in e.details) or tuple(f"{v.ref} -> {v.type}" for v in inputs)
            hint = e.hint or shape_error_hint(ex.g, op, inputs, e)
            raise ex.error(e.code, e.message, None, path=path, location=location, hint=hint, details=details)
        self.check_dims(out_types, path, location)
        for key, value in values.items():  # a weight's size (an embedding's `num`) is no output's dim
            big = next((v for v in _ints(value) if abs(v) > ex.limits.max_dim), None)
            if big is not None:
                raise ex.error("E602", f"param '{key}' = {big} exceeds the limit {ex.limits.max_dim}", src,
                               ypath + (key,), path=path, hint="raise it with --limit max_dim=N")
        # The weights too: torch cannot even allocate an lstm of hidden 10**12. Only the built-in
        # ops' counts are used, which are arithmetic (the default count builds the module).
        if type(op).num_params is not Op.num_params and type(op).__module__.startswith("specgraph."):
            weights = op.num_params(params, in_types)
            if isinstance(weights, int) and weights > ex.limits.max_numel:
                raise ex.error("E602", f"its weights have {weights} elements, over the limit {ex.limits.max_numel}",
                               None, path=path, location=location, hint="raise it with --limit max_numel=N")
        made = record.finish(written, ctx, ref=written_op, ref_value=op.name, raw=nd.extras, values=values)
        node = Node(path, op, params, tuple(inputs), dict(zip(ports, out_types)), location, ctx.scope,
                    op.node_traits(params, in_types), requires, written=made)
        ex.add_node(node)
        return {port: Value(path, port, t) for port, t in node.outputs.items()}

    def lookup(self, nd: NodeDef, env, src, ypath: tuple, here: str) -> Op:
        """The op an `op:` node names (its name evaluated if it is an expression)."""
        ex = self.ex
        name = nd.op
        if is_expression(name):
            name = ex.evaluate(name, env, src, ypath + ("op",), here)
            if not isinstance(name, str):
                raise ex.error("E204", f"`op` must name an op, found {name!r}", src, ypath + ("op",), path=here)
        op = get_op(name)
        if op is not None and Trait.COMPILER_MADE in op.traits:
            raise ex.error("E302", f"`op: {name}` is made by the compiler; write `scan: <cell block>`", src,
                           ypath + ("op",), hint="e.g. {scan: lstm_cell, hidden: 128} (docs/language.md, Recurrence)")
        if op is None:
            meant = REGISTRY.meaning(name)
            hint = f"did you mean '{meant}'? (what '{name}' is called here)" if meant else did_you_mean(name, op_names())
            if ex.spec.library.blocks.get(name) is not None:
                hint = f"'{name}' is a block: write `block: {name}`"
            raise ex.error("E302", f"unknown op '{name}'", src, ypath + ("op",), path=here,
                           hint=hint or "see `specgraph ops` for the list")
        return op

    def params(self, op: Op, nd: NodeDef, env, src, ypath: tuple, path: str, *,
               lenient: bool = False) -> tuple[dict[str, Any], Any]:
        """(the evaluated values, the op's validated Params) of an op node; raises Poisoned.

        ``lenient``: the node's input failed, so values that read a failed tensor are unknown and
        left out, and so are the errors about them (its own text is checked all the same)."""
        ex = self.ex
        values = {}
        failed = False
        unknown: set[str] = set()
        for key, raw in nd.extras.items():
            errors = len(ex.diags.items)
            try:
                values[key] = ex.evaluate(raw, env, src, ypath + (key,), path)
            except Poisoned:
                failed = failed or len(ex.diags.items) > errors
                unknown.add(key)
        if failed or unknown and not lenient:
            raise Poisoned()
        try:
            return values, op.Params.model_validate(values)
        except ValidationError as e:
            ex.diags.extend(replace(d, path=path) for d in self.param_diagnostics(e, op, values, src, ypath, unknown))
            raise Poisoned()

    def param_diagnostics(self, e: ValidationError, op: Op, values: dict, src, ypath: tuple,
                          unknown: set[str] = frozenset()) -> list[Diagnostic]:
        """An op's params refused: located, unknown keys answered among the op's own params."""
        def symbolic(loc: tuple, dim, location) -> Diagnostic:
            key = ".".join(map(str, loc))
            return Diagnostic("E406", f"op {op.name}: '{key}' needs a number, found the symbolic dim {dim}", location,
                              hint=op_param_fix(op, str(loc[0]), dim, self.ex.input_types))

        return pydantic_diagnostics(e, values, src, ypath, f"op {op.name}", allowed=op_keys(op),
                                    meaning=lambda key: param_meaning(key, op.Params.model_fields), symbolic=symbolic,
                                    unknown=unknown)

    def check_dims(self, types: list[TensorType], path: str, location: Location) -> None:
        ex = self.ex
        for t in types:
            numel = 1
            for d in t.shape:
                if isinstance(d, int):
                    if d <= 0:
                        raise ex.error("E404", f"output shape {t} has a non-positive dim", None, path=path, location=location)
                    if d > ex.limits.max_dim:
                        raise ex.error("E602", f"dim {d} exceeds the limit {ex.limits.max_dim}", None, path=path,
                                       location=location, hint="raise it with --limit max_dim=N")
                    numel *= d
            if numel > ex.limits.max_numel:
                raise ex.error("E602", f"output {t} has {numel} elements, over the limit {ex.limits.max_numel}", None,
                               path=path, location=location, hint="raise it with --limit max_numel=N")


def _ints(value: Any) -> Iterator[int]:
    """The integers in a param value (lists searched, booleans left out)."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v)


def _relabel(detail: InputDetail | str, inputs: list[Value]) -> str:
    """An op's detail about its input i, named by the node that produced that input."""
    if isinstance(detail, InputDetail):
        who = inputs[detail.index].ref if detail.index < len(inputs) else f"input {detail.index}"
        return f"{who} -> {detail.text}"
    return detail


__all__ = ["OpNodes"]
