"""How failures travel during expansion: a node that fails records its diagnostic and raises
:class:`Poisoned`, so the nodes that depend on it stay silent and every independent mistake is
reported once.  :class:`InstanceDiagnostics` merges one mistake met in several block instances.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..diagnostics import Diagnostic, Diagnostics


class Poisoned(Exception):
    """A node failed (its diagnostic is already recorded); dependents stay silent."""


POISONED: Any = object()  # a scope's first input when that input failed


class InstanceDiagnostics(Diagnostics):
    """The diagnostics of one expansion, where a mistake in a block's text is met once per instance.

    It is reported once, at the block's text, naming the first instance and listing the others
    ("also in: u2, u3"), even where the message differs between instances (their shapes do).
    """

    def __init__(self, on_report: Callable[[Diagnostic], None] | None = None) -> None:
        super().__init__()
        self.on_report = on_report  # sees every diagnostic as reported, before any merging
        self._first: dict[tuple, int] = {}  # (code, location[, message]) -> index in items
        self._seen: dict[int, tuple[Diagnostic, list[str]]] = {}  # index -> (as first reported, other paths)

    def add(self, d: Diagnostic) -> None:
        if self.on_report is not None:
            self.on_report(d)
        exact = (d.code, d.location, d.message)
        i = self._first.get(exact) if d.location else None
        if i is None and d.location and d.path:
            j = self._first.get((d.code, d.location))
            if j is not None and self.items[j].path not in (None, d.path):
                i = j
        if i is None:
            self.items.append(d)
            if d.location:
                self._first.setdefault(exact, len(self.items) - 1)
                self._first.setdefault((d.code, d.location), len(self.items) - 1)
            return
        first, others = self._seen.setdefault(i, (self.items[i], []))
        if not d.path or d.path == first.path or d.path in others:
            return
        others.append(d.path)
        shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        self.items[i] = replace(first, details=first.details + (f"also in: {shown}",))

    def extend(self, diagnostics) -> None:
        for d in diagnostics:
            self.add(d)
