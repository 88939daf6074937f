"""Where a drawn element came from in the spec text: its lines, and the ``doc`` written there.

A node's :class:`~specgraph.diagnostics.Location` points at its key (``conv1:``); the lines it
spans are that line and the more indented ones under it (a block-style mapping), so the
viewer's panel shows the node as written, in its own file (an included library's, for a
block's node).  Docs are read from the loaded documents (spec, blocks, nodes), located by the
key marks the loader kept: no text is parsed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..diagnostics import Location
from ..lang.marked_yaml import Source
from ..lang.spec import Spec

MAX_LINES = 14  # of one node's text in the panel; longer ones end with "…"


class SourceTable:
    """Interned snippets: ``ref(location)`` -> an index into :attr:`rows` (one per file and line).

    Files are named relative to the spec's folder when inside it (``lib/resnet.yaml:15``), so a
    page shows the same names wherever the spec lies."""

    def __init__(self, spec: Spec | None, base: Path | None = None):
        self.rows: list[dict[str, Any]] = []
        self._index: dict[tuple[str, int], int] = {}
        self._texts: dict[str, list[str]] = {}
        self.base = base if base is not None else \
            spec.source.path.resolve().parent if spec is not None and spec.source.path else None
        if spec is not None:
            for source in _sources(spec):
                self._texts.setdefault(source.name, source.lines)

    def display(self, file: str) -> str:
        """``file`` relative to the spec's folder, when it lies inside it."""
        if self.base is None or file.startswith("<"):
            return file
        try:
            return Path(file).resolve().relative_to(self.base).as_posix()
        except (ValueError, OSError):
            return file

    def ref(self, location: Location | None) -> int | None:
        if location is None:
            return None
        key = (location.file, location.line)
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append({"file": self.display(location.file), "line": location.line,
                              "lines": self._snippet(location)})
        return self._index[key]

    def _snippet(self, location: Location) -> list[str]:
        lines = self._texts.get(location.file)
        if lines is None or not 0 < location.line <= len(lines):  # YAML text given inline: its one line
            return [location.source_line.rstrip("\n")] if location.source_line is not None else []
        first = lines[location.line - 1].rstrip("\n")
        indent = len(first) - len(first.lstrip())
        taken = [first]
        for raw in lines[location.line:]:
            text = raw.rstrip("\n")
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            taken.append(text)
        while taken and not taken[-1].strip():
            taken.pop()
        return taken if len(taken) <= MAX_LINES else taken[:MAX_LINES - 1] + ["  …"]


def _sources(spec: Spec) -> list[Source]:
    found = {id(spec.source): spec.source}
    for _block, source, _path in spec.library.blocks.values():
        found.setdefault(id(source), source)
    return list(found.values())


class Docs:
    """The ``doc`` strings written on nodes, blocks and the spec, by where they were written."""

    def __init__(self, spec: Spec | None):
        self.spec_doc = spec.doc.doc if spec is not None else None
        self.blocks: dict[str, tuple[str | None, Location]] = {}
        self._nodes: dict[tuple[str, int], str] = {}
        if spec is None:
            return
        self._collect(spec.source, spec.doc, ())
        for name, (block, source, bpath) in spec.library.blocks.items():
            self.blocks[name] = (block.doc, source.location(bpath, key=True))
            self._collect(source, block, bpath)

    def _collect(self, source: Source, root: Any, prefix: tuple) -> None:
        """Every `doc:` under ``root`` (the object at YAML path ``prefix``) in a node mapping."""
        for path, (line, _col) in list(source.key_marks.items()):
            if len(path) < len(prefix) + 2 or path[:len(prefix)] != prefix or path[-1] != "doc":
                continue
            if not any(part in ("graph", "nodes", "seq") for part in path[len(prefix):-1]):
                continue  # the spec's or a block's own doc, not a node's
            value = _walk(root, path[len(prefix):])
            owner = source.key_marks.get(path[:-1]) or source.value_marks.get(path[:-1])
            if isinstance(value, str) and owner is not None:
                self._nodes[(source.name, owner[0])] = value

    def node(self, location: Location | None) -> str | None:
        return self._nodes.get((location.file, location.line)) if location is not None else None


def _walk(value: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        elif hasattr(value, "model_fields") and isinstance(part, str):
            value = getattr(value, part, None)
        else:
            return None
    return value
