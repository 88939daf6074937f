"""How the spec wrote what the Graph holds: for readers that reproduce the spec's structure.

Expansion evaluates every expression, instantiates every block and unrolls every repeat; the
Graph keeps the results.  A reader that writes the network back as code a person would write
(the Python export: one class per block, its params as constructor arguments, loops for
repeats) also needs what was *written*: which block definition an instance came from and the
expressions its params were given as, which node definition (and which copy of a repeat) a
node came from, the `when:` that switched a node on or off.  These records say it, as frozen
data next to the nodes and scopes:

* :class:`Expr` — one value as written, as a Python expression (``width * 4``; a literal is its
  ``repr``), with the value it gave in this instance;
* :class:`Frame` — one block instance (or the spec's graph): its params as the caller wrote
  them, its ``let:`` values, its inputs and outputs, the frame it sits in;
* :class:`Written` — one node definition as it was instantiated here: its frame, its name
  (or seq position), its copy of a repeat, its params, its ``when:``, the names it reads.

A node or scope that ``when: false`` (or ``repeat: 0``) switched off leaves no node; its
Written is kept in :attr:`Graph.skipped <specgraph.ir.graph.Graph.skipped>`, so that a reader
sees the choice that was made.

Expression texts name what the spec names: params, ``let`` values, ``index`` (the copy of a
repeat) and tensors in sight, read through the shape attributes (``x.channels``,
``x.shape[1]``); :attr:`Written.tensors` binds those tensor names to the Values they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Value


class _Shared:
    """Immutable records are shared, never copied (a deepcopy of a built module must not copy them)."""

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


@dataclass(frozen=True)
class Expr:
    """A value as written: ``text`` a Python expression (``width * 4``, ``'relu'``, ``[3, 4, 6, 3]``),
    ``value`` what it evaluated to in this instance."""

    text: str
    value: Any

    @property
    def is_literal(self) -> bool:
        """Whether the text names nothing (a number, a string, a list of them)."""
        import ast

        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError:
            return False
        return not any(isinstance(n, ast.Name) for n in ast.walk(tree))


@dataclass(frozen=True)
class Declared:
    """A param a block (or the spec) declares: its name and its default (None: required)."""

    name: str
    default: Expr | None = None


@dataclass(frozen=True, eq=False)
class Frame(_Shared):
    """One instance of a block, or the spec's graph (``block`` None): what its nodes' expressions see.

    ``given``: the params as the caller wrote them, expressions in ``parent``; for the graph, the
    spec's params as literals of the values in force.  ``values``: every param and ``let`` value
    of this instance.  ``scope``: the path of the scope the instance made; None for the graph and
    for an ``inline`` instance, whose nodes sit in the parent's scope.  ``tensors``: its inputs by
    name, the Values its ``let:`` expressions read the shapes of (``x.channels``).
    """

    block: str | None
    declared: tuple[Declared, ...] = ()
    given: Mapping[str, Expr] = field(default_factory=dict)
    lets: Mapping[str, Expr] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()  # (port, ref as written); () : the last node
    parent: "Frame | None" = None
    scope: str | None = None
    written: "Written | None" = None  # the node that instantiated it
    doc: str | None = None  # the block's (or the spec's) `doc:`
    tensors: Mapping[str, "Value"] = field(default_factory=dict)  # its inputs, which `let:` may read

    def __post_init__(self) -> None:
        for name in ("given", "lets", "values", "tensors"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


@dataclass(frozen=True, eq=False)
class Written(_Shared):
    """One node definition as instantiated here.

    ``frame``: the block instance (or graph) whose ``nodes:`` hold it.  ``key``: its name there;
    a seq item's is its position in the seq, and ``seq`` is the Written of the seq node.
    ``copy``/``count``: which copy of a ``repeat:`` it is, and the count as written.  ``kind``:
    op | block | seq | scan.  ``ref``: the op or block name as written (``'conv2d'``, or
    ``unit`` when written ``$unit``).  ``reads``: the names its inputs were written as — a
    sibling, an input of the frame, ``name.port`` — or None for the scope's first input.
    """

    frame: Frame | None  # None inside a scan's cell, which is expanded as a graph of its own
    key: str
    kind: str
    ref: Expr | None = None
    params: Mapping[str, Expr] = field(default_factory=dict)
    when: Expr | None = None
    count: Expr | None = None
    copy: int | None = None
    name_template: str | None = None
    seq: "Written | None" = None
    inline: bool = False
    reads: tuple[str | None, ...] = ()
    tensors: Mapping[str, "Value"] = field(default_factory=dict)
    position: int | None = None  # switched off: how many nodes had been made before it

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))
        object.__setattr__(self, "reads", tuple(self.reads))

    @property
    def identity(self) -> tuple:
        """What stays the same across the instances of its block: where it is written, not which copy."""
        outer = self.seq.identity if self.seq is not None else ()
        return outer + (self.key,)


__all__ = ["Expr", "Declared", "Frame", "Written"]
