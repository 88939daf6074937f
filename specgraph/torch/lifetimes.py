"""The built forward lets go of each value when the block it was passed into returns
(ir/lifetimes.py says when, and why), not right after its last reader as fx's code does.

fx writes ``x = None`` after a value's last use, found by scanning each node's inputs.
:class:`HeldValues` is fx's code generator with the held values counted as inputs of the node
at the end of their block while it writes the code, so each ``x = None`` moves there; the
graph itself is not changed (no extra node: the passes, the exports and the memory walk see
the graph the builder made).  It is kept by ``copy.deepcopy`` of the module; an unpickled
module is re-traced from its code by torch and lets go of values at their last use.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from torch import fx

from ..ir.graph import Node
from ..ir.lifetimes import released_after


class HeldValues(fx.CodeGen):
    """fx's code generator, holding values to a later node: ``holds`` maps a node's name to the
    names of the values let go right after it (a name no longer in the graph is ignored)."""

    def __init__(self, holds: Mapping[str, Iterable[str]]):
        super().__init__()
        self.holds = {end: tuple(names) for end, names in holds.items()}

    def _gen_python_code(self, nodes, *args: Any, **kwargs: Any):
        by_name = {n.name: n for n in nodes}
        added = []
        for end_name, names in self.holds.items():
            end = by_name.get(end_name)
            for name in names:
                value = by_name.get(name)
                if end is not None and value is not None and value is not end and value not in end._input_nodes:
                    end._input_nodes[value] = None  # seen as read there: fx frees it after `end`
                    added.append((end, value))
        try:
            return super()._gen_python_code(nodes, *args, **kwargs)
        finally:
            for end, value in added:
                del end._input_nodes[value]


def hold_like_modules(g: fx.Graph, steps: list[Node], after: Mapping[str, fx.Node],
                      values: Mapping[tuple[str, str], fx.Node]) -> None:
    """Make ``g``'s code let go of each value when the block it entered returns.  ``steps``: the
    spec nodes emitted, in order; ``after[path]``: the last fx node once a step was emitted;
    ``values``: the fx node of each spec value."""
    holds: dict[str, list[str]] = {}
    for key, end in released_after(steps).items():
        value = values.get(key)
        if value is None or value.op == "placeholder":  # the caller holds the inputs anyway
            continue
        holds.setdefault(after[end].name, []).append(value.name)
    g.set_codegen(HeldValues(holds))


__all__ = ["HeldValues", "hold_like_modules"]
