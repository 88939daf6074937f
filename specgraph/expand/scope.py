"""Where nodes are expanded: their names, the scope they see, and how failures travel.

A node's path is its name under its parent (``layer1.0.conv1``); a :class:`Namer` hands them
out, by name or (in a seq) by running number.  A :class:`Ctx` is one scope being expanded: its
source text, the names in sight, the params.  An expression sees an :class:`Env`: params, then
the single-output tensors in sight as shape views.  How failures travel: reporting.py.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..lang.expr import ShapeView
from ..ir.graph import Value
from ..lang.marked_yaml import Source
from ..lang.names import COPY_NAME_RE, RESERVED_NAMES, TEMPLATE_PART_RE
from .reporting import Poisoned

Result = dict[str, Value]  # port -> value


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
    first_input: Value | None = None  # or POISONED

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
        if key in self._names and result is None:
            raise Poisoned()  # a tensor that failed: what reads it stays silent, like its `from`
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from self._params
        yield from (k for k, r in self._names.items() if r is not None and len(r) == 1)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def copy_names(ex, template: str, count: int, ctx: Ctx, extra, ypath: tuple, here: str) -> list[str]:
    """The names of a repeat's copies from ``template``: each ``{expr}`` evaluated with ``index``
    (0, 1, ...) and the params in sight — ``denselayer{index + 1}``: denselayer1, denselayer2, ..."""
    names: list[str] = []
    for i in range(count):
        env = ctx.env({**(extra or {}), "index": i})

        def part(m, env=env) -> str:
            value = ex.evaluate("${" + m.group(1) + "}", env, ctx.source, ypath + ("name",), here)
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ex.error("E204", f"a name template part must give an int or a string, found {value!r}",
                               ctx.source, ypath + ("name",), path=here)
            return str(value)

        made = TEMPLATE_PART_RE.sub(part, template)
        if not COPY_NAME_RE.match(made) or made in RESERVED_NAMES or keyword.iskeyword(made):
            raise ex.error("E204", f"the name template {template!r} makes {made!r} at index {i}, which is no "
                           "node name (letters, digits, _ and -; not a Python keyword or a torch Module "
                           "attribute)", ctx.source, ypath + ("name",), path=here)
        if made in names:
            raise ex.error("E305", f"the name template {template!r} makes {made!r} twice (index "
                           f"{names.index(made)} and {i})", ctx.source, ypath + ("name",), path=here,
                           hint="use {index} in the template")
        names.append(made)
    return names


def numbered_namer(namer: Namer) -> Namer:
    """The namer for seq items spliced into a scope: the seq's own, or numbers under the prefix."""
    return namer if namer.numbered else Namer(namer.prefix, True)


def parent_scope(ctx: Ctx) -> str | None:
    return ctx.scope[-1] if ctx.scope else None
