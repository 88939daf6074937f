"""The graph of a spec that fails checking, up to its failures, for drawing.

Expansion already goes on past a failing node (it is *poisoned*; independent nodes are still
expanded) and only raises at the end.  This module watches the same expander through its
public hook (:class:`~specgraph.expand.observer.ExpansionObserver`) and records what a
diagram needs and the compiler does not keep: which node failed, with which inputs, in which
scope, and which outputs resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Diagnostic, SpecError
from ..ir.graph import Graph, OutputInfo, Value
from ..lang.spec import Spec
from .expander import Expander
from .observer import Attempt, ExpansionObserver
from .reporting import Poisoned


@dataclass
class Failure:
    """A node that could not be expanded: where it would sit, what fed it, and why."""

    path: str
    what: str  # "conv2d", "block inception", "scan lstm_cell", "seq"
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


class _Recorder(ExpansionObserver):
    def __init__(self) -> None:
        self.failures: list[Failure] = []
        # Every diagnostic as reported, before the collector merges repeats of one mistake
        # in several block instances: each instance's failing node is drawn.
        self.reported: list[Diagnostic] = []
        self.claimed: set[int] = set()  # indices into `reported` already tied to a failure
        self.started: list[tuple[Attempt, int]] = []  # each open attempt, and len(reported) then
        self.outputs: list[OutputInfo] = []

    def diagnostic_reported(self, d: Diagnostic) -> None:
        self.reported.append(d)

    def node_begun(self, attempt: Attempt) -> None:
        self.started.append((attempt, len(self.reported)))

    def node_ended(self, attempt: Attempt, failed: bool) -> None:
        _, before = self.started.pop()
        if not failed or any(a.kind == "scan" for a, _ in self.started):
            return  # inside a scan's cell (a graph of its own): the scan node is what is drawn
        fresh = [i for i in range(before, len(self.reported))
                 if i not in self.claimed and self.reported[i].severity == "error"]
        if fresh:  # this node's own failure; a nested node's was claimed when it ended
            self.claimed.update(fresh)
            diags = [self.reported[i] for i in fresh]
            path = attempt.path if attempt.kind == "scan" else next((d.path for d in diags if d.path), attempt.path)
            self.failures.append(Failure(path, attempt.what, list(attempt.inputs), attempt.scope, diags))

    def outputs_resolved(self, outputs: list[OutputInfo]) -> None:
        self.outputs = list(outputs)


def expand_partial(spec: Spec) -> PartialGraph:
    """Expand ``spec`` as far as it goes; never raises SpecError for expansion errors."""
    recorder = _Recorder()
    ex = Expander(spec, observer=recorder)
    try:
        graph = ex.run()
        return PartialGraph(graph, [], list(graph.warnings))
    except (SpecError, Poisoned):
        pass
    graph = ex.g.build(spec.name, recorder.outputs, {})
    diagnostics = SpecError(ex.diags.items).diagnostics  # sorted and merged as `check` reports them
    return PartialGraph(graph, recorder.failures, diagnostics)
