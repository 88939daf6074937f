"""Diagnostics: the one error type of specgraph and its compiler-style rendering.

Every problem found in a spec becomes a :class:`Diagnostic` (stable code, node path,
expected/found, source location, hint).  Passes collect diagnostics into a
:class:`Diagnostics` list so that one run reports every independent error; the list is
raised as a :class:`SpecError` when a stage cannot go on.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Location:
    """A point in a spec file: 1-based line and column."""

    file: str
    line: int
    col: int
    source_line: str | None = None  # the text of that line, for the caret display

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning, located in the spec text where possible."""

    code: str  # stable, e.g. "E402"; documented in docs/errors.md
    message: str
    location: Location | None = None
    path: str | None = None  # the node path, e.g. "inception3a.out"
    hint: str | None = None
    details: tuple[str, ...] = ()  # extra lines shown under the message
    severity: str = "error"  # "error" | "warning"

    def sort_key(self) -> tuple:
        loc = self.location
        return (loc.file if loc else "~", loc.line if loc else 0, loc.col if loc else 0, self.code)

    def format(self) -> str:
        """Compiler-style text: location, code, message, details, source line with a caret, hint."""
        where = f"{self.location}: " if self.location else ""
        head = f"{where}{self.severity}[{self.code}]"
        if self.path:
            head += f" node '{self.path}'"
        lines = [f"{head}: {self.message}"]
        lines += [f"  {d}" for d in self.details]
        loc = self.location
        if loc and loc.source_line is not None:
            gutter = f"{loc.line:>5} | "
            lines.append(gutter + loc.source_line.rstrip("\n"))
            lines.append(" " * (len(gutter) - 2) + "| " + " " * (loc.col - 1) + "^")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity,
            "path": self.path,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "message": self.message,
            "details": list(self.details),
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return self.format()


class SpecError(Exception):
    """Raised when a spec cannot be compiled; carries every diagnostic found so far."""

    def __init__(self, diagnostics: Sequence[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted_unique(diagnostics)
        super().__init__(self.format())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)

    def __repr__(self) -> str:
        shown = ", ".join(f"{d.code} at {d.location}" if d.location else d.code for d in self.diagnostics[:3])
        more = f", +{len(self.diagnostics) - 3} more" if len(self.diagnostics) > 3 else ""
        n = len(self.errors)
        return f"SpecError({n} error{'s' if n != 1 else ''}: {shown}{more})"

    def _repr_html_(self) -> str:
        """The diagnostics in a notebook, as the command line prints them."""
        import html

        return f"<pre>{html.escape(self.format())}</pre>"


class InputError(SpecError, ValueError):
    """A built model was called with inputs its spec does not take: found by the model's input
    check before any op runs, located at the input's declaration or at the node whose shape rule
    needs the size (see specgraph/torch/input_check.py)."""


class BackendError(SpecError, RuntimeError):
    """An inference backend refused a model or a call: onnxruntime not installed, a model the
    ONNX export refuses, a call in training mode, with gradients or on another device
    (specgraph/torch/passes/ort_backend.py; codes E801-E803); a compiled module
    (``compile=True``, passes/compiled.py) without a C++ compiler or after its weights changed."""


def sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Deduplicate (same code, location and message) and sort by location."""
    seen: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        # The same mistake inside a block reached from many instances is reported once,
        # at the block's text, naming the first instance.
        key = (d.code, d.location, d.message) if d.location else (d.code, d.path, d.message)
        seen.setdefault(key, d)
    return sorted(seen.values(), key=Diagnostic.sort_key)


@dataclass
class Diagnostics:
    """A collector that passes append to; `raise_if_errors` ends a stage that found errors."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.items.extend(diagnostics)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise SpecError(self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    matches = difflib.get_close_matches(str(name), sorted(set(map(str, candidates))), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
