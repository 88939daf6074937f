"""The public hook into expansion: an :class:`ExpansionObserver` is told what the compiler
does not keep — every diagnostic as reported, each node expansion that failed, the outputs
that resolved — so that a reader (the partial render, expand/partial.py) can draw a spec that
fails without re-implementing or patching the expander.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import Diagnostic
from ..ir.graph import OutputInfo, Value


@dataclass(frozen=True)
class Attempt:
    """One node definition being expanded: its path (as it would be named), its kind (op, block,
    scan or seq), what it is (``conv2d``, ``block inception``, ``scan lstm_cell``, ``seq``), its
    inputs and its scope.  A scan's cell is expanded as a graph of its own: the attempts inside
    it have paths relative to the cell."""

    path: str
    kind: str
    what: str
    inputs: tuple[Value, ...]
    scope: tuple[str, ...]


class ExpansionObserver:
    """Does nothing; subclasses override what they need.  Calls nest as the definitions do: a
    block's ``node_begun`` comes before those of its nodes, its ``node_failed`` after theirs."""

    def diagnostic_reported(self, d: Diagnostic) -> None:
        """Every diagnostic, in order, before one mistake met in several instances is merged."""

    def node_begun(self, attempt: Attempt) -> None:
        """A node definition (op, block, scan or seq) starts expanding."""

    def node_ended(self, attempt: Attempt, failed: bool) -> None:
        """It finished; ``failed``: it was poisoned (its diagnostics were reported since begun)."""

    def outputs_resolved(self, outputs: list[OutputInfo]) -> None:
        """The spec's outputs that resolved (some may be missing when nodes failed)."""


__all__ = ["Attempt", "ExpansionObserver"]
