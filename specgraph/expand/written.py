"""Recording how the spec wrote what expansion makes (the records of ir/written.py).

The expander calls these as it goes: :func:`start` when a node definition is instantiated (its
name, `when`, copy of a `repeat`, the names it reads), :func:`finish` once its params are
evaluated, :func:`block_frame` for a block instance and :func:`graph_frame` for the graph.
Nothing here decides anything: a failure to record (never expected: every expression was
evaluated before it is recorded) would only lose the record, so texts are made by the same
parser that evaluated them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..ir.graph import Value
from ..ir.written import Declared, Expr, Frame, Written
from ..lang.expr import ExprError, expression_text, is_expression, referenced_names
from ..lang.params import ParamDecl


def expr(raw: Any, value: Any) -> Expr:
    """``raw`` as written, with the value it gave."""
    return Expr(expression_text(raw), value)


def tensors_read(raws: Iterable[Any], ctx) -> dict[str, Value]:
    """The tensors in sight that the expressions ``raws`` read, by the names they read them by
    (params hide tensors of the same name, as in :class:`~specgraph.expand.scope.Env`)."""
    found = {}
    for raw in raws:
        if not isinstance(raw, str):  # lists and mappings of expressions: rare
            read = referenced_names(raw)
        elif is_expression(raw):
            read = referenced_names(raw)
        else:
            continue
        for name in read:
            result = ctx.names.get(name) if name not in ctx.params and name != "index" else None
            if result is not None and len(result) == 1:
                found[name] = next(iter(result.values()))
    return dict(sorted(found.items()))


def start(nd, ctx, key: str, *, when: Any = None, count: Any = None, copy: int | None = None,
          reads: tuple[str | None, ...] = ()) -> Written:
    """The record of node definition ``nd`` (named ``key`` in its frame) as instantiated now;
    ``when``/``count``: the values its `when:`/`repeat:` gave, when it has them."""
    kind = next(k for k in ("op", "block", "scan", "seq") if getattr(nd, k) is not None)
    raws = [r for r in (nd.when, nd.repeat) if r is not None]
    return Written(frame=ctx.frame, key=key, kind=kind,
                   when=expr(nd.when, when) if nd.when is not None else None,
                   count=expr(nd.repeat, count) if nd.repeat is not None else None,
                   copy=copy, name_template=nd.name, seq=ctx.seq, inline=bool(nd.inline), reads=reads,
                   tensors=tensors_read(raws, ctx))


def finish(written: Written | None, ctx, *, ref: Any = None, ref_value: Any = None,
           raw: Mapping[str, Any] | None = None, values: Mapping[str, Any] | None = None) -> Written | None:
    """``written`` completed with what the node's expansion evaluated: its op or block name
    (``ref``, as written) and its params (``raw`` as written, ``values`` evaluated)."""
    if written is None:
        return None
    raw = dict(raw or {})
    params = {k: expr(v, (values or {}).get(k)) for k, v in raw.items()}
    tensors = {**written.tensors, **tensors_read(raw.values(), ctx)}
    if ref is not None:
        tensors.update(tensors_read([ref], ctx))
    # completed in place: the record is the node's alone until the node is made (no copy: a
    # hostile spec makes hundreds of thousands of them)
    object.__setattr__(written, "ref", expr(ref, ref_value) if ref is not None else None)
    object.__setattr__(written, "params", MappingProxyType(params))
    object.__setattr__(written, "tensors", MappingProxyType(tensors))
    return written


def _declared(decls: Mapping[str, ParamDecl]) -> tuple[Declared, ...]:
    return tuple(Declared(name, None if d.required else Expr(_default_text(d.default),
                                                              None if is_expression(d.default) else d.default))
                 for name, d in decls.items())


def _default_text(default: Any) -> str:
    """The default as an expression; one that does not parse is kept as written (its error was
    reported where it is declared, and a record must not fail the check that reports it)."""
    try:
        return expression_text(default)
    except ExprError:
        return str(default)


def block_frame(written: Written | None, name: str, block, decls: Mapping[str, ParamDecl], values: Mapping[str, Any],
                given: Mapping[str, Any], ctx, scope: str | None, outputs: list[tuple[str, str]],
                inputs: Mapping[str, Any]) -> Frame:
    """The frame of one instance of block ``name``: ``values`` its params and `let` values,
    ``given`` the params as the node wrote them, ``scope`` its path (None when inline),
    ``inputs`` its input Values by name (None: one that failed)."""
    lets = {k: expr(v, values.get(k)) for k, v in block.let.items()}
    return Frame(block=name, declared=_declared(decls), given={k: expr(v, values.get(k)) for k, v in given.items()},
                 lets=lets, values=values, inputs=tuple(block.inputs), outputs=tuple(outputs),
                 parent=ctx.frame, scope=scope, written=written, doc=block.doc,
                 tensors={k: v for k, v in inputs.items() if v is not None})


def graph_frame(decls: Mapping[str, ParamDecl], params: Mapping[str, Any], let: Mapping[str, Any],
                values: Mapping[str, Any], inputs: Iterable[str], doc: str | None = None) -> Frame:
    """The spec's graph as a frame: its params given as the values in force."""
    return Frame(block=None, declared=_declared(decls), given={k: Expr(repr(v), v) for k, v in params.items()},
                 lets={k: expr(v, values.get(k)) for k, v in let.items()}, values=values, inputs=tuple(inputs),
                 doc=doc)


__all__ = ["expr", "tensors_read", "start", "finish", "block_frame", "graph_frame"]
