"""Includes: the blocks of a spec's included files, depth first, each file loaded once, cycles
and files outside the include root refused."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Diagnostic, Diagnostics, SpecError, sorted_unique
from .document import BlockDef, SpecDoc, load_document
from .limits import Limits
from .marked_yaml import Source, load_yaml_file

@dataclass
class Library:
    """The blocks visible to a spec: its own and those of its includes, with their sources."""

    blocks: dict[str, tuple[BlockDef, Source, tuple]] = field(default_factory=dict)


def collect_blocks(doc: SpecDoc, source: Source, library: Library, stack: list[Path], root: Path,
                    limits: Limits, diags: Diagnostics, loaded: dict[Path, tuple[SpecDoc, Source]]) -> None:
    """Add the blocks of `doc`'s includes (depth first), then its own (which shadow them)."""
    base_dir = source.path.parent if source.path else Path.cwd()
    for i, rel in enumerate(doc.include):
        where = source.location(("include", i))
        if "\x00" in rel:  # no path holds one: the OS refuses it
            diags.add(Diagnostic("E306", f"include path {rel!r} holds a NUL character", where,
                                 hint="write the library's relative path"))
            continue
        path = (base_dir / rel).resolve()
        if path in stack:
            cycle = " -> ".join(p.name for p in stack[stack.index(path):] + [path])
            diags.add(Diagnostic("E307", f"include cycle: {cycle}", where, hint="remove one of these includes"))
            continue
        if not path.is_relative_to(root):
            diags.add(Diagnostic("E306", f"include '{rel}' lies outside the spec's folder tree ({root})", where,
                                 hint="move the library under the spec's folder, or pass --include-root"))
            continue
        if len(stack) >= limits.max_include_depth:
            diags.add(Diagnostic("E104", f"includes nested deeper than {limits.max_include_depth}", where,
                                 hint="raise it with --limit max_include_depth=N"))
            continue
        if path not in loaded:
            try:
                data, inc_source = load_yaml_file(path, limits, display_name=_display(path))
            except SpecError as e:
                diags.add(Diagnostic("E306", f"cannot include '{rel}'", where,
                                     details=tuple(d.format().splitlines()[0] for d in e.diagnostics)))
                continue
            inc_diags = Diagnostics()
            inc_doc = load_document(data, inc_source, inc_diags)
            if inc_doc is None:
                diags.add(Diagnostic("E306", f"'{rel}' is not a valid spec file", where,
                                     details=tuple(d.format().splitlines()[0] for d in sorted_unique(inc_diags.items))))
                continue
            loaded[path] = (inc_doc, inc_source)
        inc_doc, inc_source = loaded[path]
        collect_blocks(inc_doc, inc_source, library, stack + [path], root, limits, diags, loaded)
    for name, block in doc.blocks.items():
        library.blocks[name] = (block, source, ("blocks", name))


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


__all__ = ["Library", "collect_blocks"]
