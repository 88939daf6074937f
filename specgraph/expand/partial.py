"""The graph of a spec that fails checking, up to its failures, for drawing.

Expansion already goes on past a failing node (it is *poisoned*; independent nodes are still
expanded) and only raises at the end.  This module runs the same expander with two hooks
that record what a diagram needs and the compiler does not keep: which node failed, with
which inputs, in which scope, and which outputs resolved.  No change to expand.py is needed;
the hooks use its ``_Expander`` methods ``expand_single`` and ``outputs``, which
tests/test_render.py exercises so that a change there is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import expander as _expand
from ..diagnostics import Diagnostic, SpecError
from ..ir.graph import Graph, Value
from ..lang.spec import Spec


@dataclass
class Failure:
    """A node that could not be expanded: where it would sit, what fed it, and why."""

    path: str
    what: str  # "conv2d", "block inception", "seq"
    inputs: list[Value]
    scope: tuple[str, ...]
    diagnostics: list[Diagnostic]


@dataclass
class PartialGraph:
    """A Graph (complete when ``diagnostics`` has no error) plus the failures to draw."""

    graph: Graph
    failures: list[Failure] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # every error, sorted

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def unplaced(self) -> list[Diagnostic]:
        """Errors not attached to a drawn failure (a bad reference, a bad param of the spec)."""
        placed = {_key(d) for f in self.failures for d in f.diagnostics}
        return [d for d in self.diagnostics if d.severity == "error" and _key(d) not in placed]


def _key(d: Diagnostic) -> tuple:
    # The compiler merges one mistake met in several block instances into one diagnostic
    # (same code and place, "also in: ..."), so match by those, not by identity.
    return (d.code, d.location, None if d.location else d.message)


class _RecordingExpander(_expand._Expander):
    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.failures: list[Failure] = []
        self.claimed: set[int] = set()  # indices into `reported` already tied to a failure
        self.resolved_outputs: list = []
        # Every diagnostic as reported, before the collector merges repeats of one mistake
        # in several block instances: each instance's failing node is drawn.
        self.reported: list[Diagnostic] = []
        collect = self.diags.add

        def add(d: Diagnostic) -> None:
            self.reported.append(d)
            collect(d)

        self.diags.add = add  # type: ignore[method-assign]

    def expand_single(self, name: str, nd: Any, inputs: list[Value], ctx: Any, *args: Any, **kwargs: Any):
        before = len(self.reported)
        try:
            return super().expand_single(name, nd, inputs, ctx, *args, **kwargs)
        except _expand._Poisoned:
            fresh = [i for i in range(before, len(self.reported))
                     if i not in self.claimed and self.reported[i].severity == "error"]
            if fresh:  # this node's own failure; a nested node's was claimed by its own call
                self.claimed.update(fresh)
                diags = [self.reported[i] for i in fresh]
                path = next((d.path for d in diags if d.path), None) or _path_in(ctx, name)
                what = nd.op if nd.op is not None else f"block {nd.block}" if nd.block is not None else "seq"
                self.failures.append(Failure(path, str(what), list(inputs), tuple(ctx.scope), diags))
            raise

    def outputs(self, ctx: Any):
        self.resolved_outputs = super().outputs(ctx)
        return self.resolved_outputs


def _path_in(ctx: Any, name: str) -> str:
    prefix = getattr(ctx.namer, "prefix", "")
    return f"{prefix}.{name}" if prefix else name


def expand_partial(spec: Spec) -> PartialGraph:
    """Expand ``spec`` as far as it goes; never raises SpecError for expansion errors."""
    ex = _RecordingExpander(spec)
    try:
        graph = ex.run()
        return PartialGraph(graph, [], list(graph.warnings))
    except (SpecError, _expand._Poisoned):
        pass
    inputs = {p: d["node"].out for p, d in ex.g.nodes(data=True) if d["node"].op == "input"}
    graph = Graph(spec.name, ex.g, inputs, ex.resolved_outputs, ex.scopes, {})
    diagnostics = SpecError(ex.diags.items).diagnostics  # sorted and merged as `check` reports them
    return PartialGraph(graph, ex.failures, diagnostics)
