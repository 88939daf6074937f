"""References: what `from:` names, resolved to values of the scope.

A reference is a name in sight (an input of the scope or a sibling node), optionally with a
port (``lstm.h``).  `from:` may also be an expression over the params that gives a name or a
list of names (``from: "${'skip' if use_skip else 'x'}"``): it is evaluated before the scope's
order is decided, since what a node reads decides where it goes, and what it gives is checked
like any written reference, at the same place in the text.

A collaborator of the :class:`~specgraph.expand.expander.Expander`: it uses its ``error`` and
``evaluate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..diagnostics import did_you_mean
from ..ir.graph import Value
from ..lang.expr import is_expression
from ..lang.marked_yaml import Source
from .reporting import Poisoned
from .scope import Ctx

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


class References:
    def __init__(self, ex: "Expander"):
        self.ex = ex

    def evaluate_from(self, raw: Any, ctx: Ctx, ypath: tuple, path: str | None) -> Any:
        """`from:` with its expressions evaluated over the params: a name, a list or a mapping of names."""
        if not _has_expression(raw):
            return raw
        for r in refs(raw):
            if is_expression(r) and r[1:] in ctx.names and r[1:] not in ctx.params:
                raise self.ex.error("E204", f"`from: {r}` reads the tensor '{r[1:]}' as a value; `from` names it",
                                    ctx.source, ypath, path=path, hint=f"write `from: {r[1:]}`")
        value = self.ex.evaluate(raw, ctx.params, ctx.source, ypath, path)
        if isinstance(raw, str) and isinstance(value, list):  # a whole `from: ${...}` may choose several
            raw = value
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            found = next(v for v in items if not isinstance(v, str))
            raise self.ex.error("E203", f"`from` names nodes: its expression gives {found!r}, not a name", ctx.source,
                                ypath, path=path, hint="an expression in `from` gives a node name or a list of names "
                                                       "(\"${'a' if p else 'b'}\")")
        return value

    def resolve_from(self, raw: Any, ctx: Ctx, ypath: tuple, path: str | None, *, at_once: bool = False) -> list[Value]:
        """The values a `from:` names; ``at_once``: it was one expression, where every name is located."""
        if isinstance(raw, str):
            return [self.resolve(raw, ctx, ypath, path)]
        if isinstance(raw, list):
            return [self.resolve(r, ctx, ypath if at_once else ypath + (i,), path) for i, r in enumerate(raw)]
        return [self.resolve(r, ctx, ypath if at_once else ypath + (k,), path) for k, r in raw.items()]

    def resolve(self, ref: str, ctx: Ctx, ypath: tuple, path: str | None, *, implicit: bool = False,
                source: Source | None = None) -> Value:
        src = source or ctx.source
        head, _, port = ref.partition(".")
        if head not in ctx.names:
            raise self.ex.error("E301", f"undefined reference '{ref}'", src, ypath, path=path,
                                hint=did_you_mean(head, ctx.names) or
                                f"names in sight: {', '.join(list(ctx.names)[:12]) or 'none'}")
        result = ctx.names[head]
        if result is None:
            raise Poisoned()
        if not port:
            if len(result) == 1:
                return next(iter(result.values()))
            raise self.ex.error("E311", f"'{head}' has several outputs ({', '.join(result)}); name one, e.g. "
                                f"'{head}.{next(iter(result))}'", src, ypath, key=implicit, path=path,
                                hint="an implicit input (the previous node) must have one output" if implicit else None)
        if port in result:
            return result[port]
        raise self.ex.error("E311", f"'{head}' has no output '{port}'", src, ypath, path=path,
                            hint=did_you_mean(port, result) or f"its outputs: {', '.join(result)}")


def _has_expression(raw: Any) -> bool:
    if isinstance(raw, str):
        return is_expression(raw)
    items = raw.values() if isinstance(raw, dict) else raw if isinstance(raw, list) else ()
    return any(is_expression(r) for r in items)


def refs(raw: Any) -> list[str]:
    """The names a (written or evaluated) `from:` reads, ports left on."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [r for r in raw if isinstance(r, str)]
    if isinstance(raw, dict):
        return [r for r in raw.values() if isinstance(r, str)]
    return []


__all__ = ["References", "refs"]
