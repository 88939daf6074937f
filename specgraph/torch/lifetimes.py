"""The built forward lets go of each value when the block it was passed into returns
(ir/lifetimes.py says when, and why), not right after its last reader as fx's code does.

fx writes ``x = None`` after a value's last use, found by scanning each node's inputs.
:class:`HeldValues` is fx's code generator with the held values counted as inputs of the node
at the end of their block while it writes the code, so each ``x = None`` moves there; the
graph itself is not changed (no extra node: the passes, the exports and the memory walk see
the graph the builder made).

It is kept by ``copy.deepcopy`` and by pickling.  torch pickles a GraphModule as its code and,
when it is loaded, traces that code again into a new graph whose nodes it names its own way;
:class:`LoadTracer` is the tracer torch then uses (the graph's ``_tracer_cls``): it gives the
new nodes the names of the statements they came from, in the order the code ran them, and
installs the same :class:`HeldValues`.  Where the re-trace does not reproduce the graph's
statements (maxvit_t: its tensor constants come back as constants, not attribute reads), the
loaded module lets go of values at their last use, as fx's own code does: the same
computation, with a lower peak.
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
        self.statements: list[tuple[str, str, str | None]] = []  # of the code last written

    def _gen_python_code(self, nodes, *args: Any, **kwargs: Any):
        self.statements = [_statement(n) for n in nodes if n.op not in ("placeholder", "output")]
        first = next(iter(nodes), None)
        if first is not None:  # the tracer a loader re-traces this code with: here, not only at
            # the build, since copies of a graph (deepcopy) and of its module do not carry it
            for holder in (first.graph, first.graph.owning_module):
                if holder is not None:
                    holder._tracer_cls, holder._tracer_extras = LoadTracer, {"lifetimes": self}
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


def free_at_last_use(gm: fx.GraphModule) -> None:
    """Make ``gm``'s code let go of each value right after its last reader (fx's own code), now
    and after pickling."""
    gm.graph.set_codegen(fx.CodeGen())
    set_load_tracer(gm)


def set_load_tracer(gm: fx.GraphModule) -> None:
    """Have torch re-trace ``gm``'s code with :class:`LoadTracer` when a pickle of it is loaded
    (fx reads the class from ``_tracer_cls``, on the module and on the graph it copies)."""
    gm.graph._tracer_cls = gm._tracer_cls = LoadTracer
    gm.graph._tracer_extras = gm._tracer_extras = {}


def _statement(node: fx.Node) -> tuple[str, str, str | None]:
    """A node as the re-traced graph is checked against it: name, op and, where it is a name,
    the target."""
    return node.name, node.op, node.target if isinstance(node.target, str) else None


class LoadTracer(fx.Tracer):
    """The tracer torch re-traces a loaded GraphModule's code with (the graph's ``_tracer_cls``).

    specgraph's own functions in the code (the gather-dot kernel, the layout and shape helpers)
    are recorded as the calls the build made, not traced into: traced into, a fused kernel came
    back as its plain ops, and a function that reads its input's shape could not be traced at
    all (vit_b_16, swin_t and char_transformer did not load).  With ``lifetimes`` (the code
    generator of the code pickled), the new graph's nodes take the names of the statements they
    came from, and the graph the held values' code generator."""

    def trace(self, root: Any, concrete_args: Any = None, lifetimes: HeldValues | None = None) -> fx.Graph:
        code_globals = getattr(getattr(root, "forward", None), "__globals__", {})
        self._autowrap_function_ids |= {id(f) for f in code_globals.values()
                                        if callable(f) and getattr(f, "__module__", "").startswith("specgraph.")}
        graph = super().trace(root, concrete_args)
        names = self._statement_names(graph, lifetimes) if lifetimes is not None else None
        if names is None:
            return graph
        # the same nodes in a new graph, created under the statements' names (renaming them in
        # place would not do: the old names stay taken in the graph's namespace)
        named = fx.Graph(tracer_cls=graph._tracer_cls)
        copies: dict[fx.Node, fx.Node] = {}
        for n in graph.nodes:
            if n.op in ("placeholder", "output"):
                copies[n] = named.node_copy(n, copies.__getitem__)
            else:
                copies[n] = named.create_node(n.op, n.target, fx.map_arg(n.args, copies.__getitem__),
                                              fx.map_arg(n.kwargs, copies.__getitem__), names[n], n.type)
                # without the tracer's "is_wrapped" mark, which writes a torch.fx.wrap line per
                # function at the code's head: the code is then the code that was pickled
                copies[n].meta = {k: v for k, v in n.meta.items() if k != "is_wrapped"}
        if any(copies[n].name != name for n, name in names.items()):
            return graph
        named.set_codegen(lifetimes)
        return named

    @staticmethod
    def _statement_names(graph: fx.Graph, lifetimes: HeldValues) -> dict[fx.Node, str] | None:
        """Each re-traced node's statement name, or None where the re-trace does not match the
        statements.  Calls match in order; an attribute read matches the statement reading the
        same attribute (the tracer reads attributes when they are first used, and a tensor that
        is not a parameter or buffer as a constant, not as a read)."""
        nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
        calls = [s for s in lifetimes.statements if s[1] != "get_attr"]
        reads = {target: name for name, op, target in lifetimes.statements if op == "get_attr"}
        traced_calls = [n for n in nodes if n.op != "get_attr"]
        if len(traced_calls) != len(calls) or any(_statement(n)[1:] != s[1:] for n, s in zip(traced_calls, calls)):
            return None
        names = {n: name for n, (name, _, _) in zip(traced_calls, calls)}
        names.update((n, reads.get(n.target, n.name)) for n in nodes if n.op == "get_attr")
        return names


__all__ = ["HeldValues", "LoadTracer", "free_at_last_use", "hold_like_modules", "set_load_tracer"]
