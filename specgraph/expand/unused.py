"""Warnings for names declared and never read: params and `uses:` (W303), `let` values (W304).

A param nothing reads is usually a mistake twice over: the value the user sets changes
nothing, and the place that should read it hard-codes something else.  What reads a name is
found in the text: every expression (``$name``, ``${...}``), the `{...}` parts of a repeat's
name template, a requirement's condition, and — since a block's `uses:` reads its caller's
value of that name — the `uses:` of every block the scope instantiates (of every block, when
one is chosen by an expression).  The spec is checked, and each block it instantiated, once.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..diagnostics import Diagnostic
from ..lang.expr import is_expression, referenced_names
from ..lang.marked_yaml import Source
from ..lang.names import TEMPLATE_PART_RE
from ..lang.spec import Spec


def unused_names(spec: Spec, instantiated: Iterable[str]) -> list[Diagnostic]:
    """W303/W304 of the spec and of the blocks in ``instantiated``, by declaration order."""
    doc, library = spec.doc, spec.library.blocks
    found = _unread(spec, (doc.graph, doc.inputs, doc.outputs, list(doc.let.values()), list(doc.params.values())),
                    doc.require, doc.params, (), doc.let, spec.source, (), "")
    for name in sorted(set(instantiated)):
        if name not in library:
            continue
        block, src, bpath = library[name]
        texts = (block.nodes, list(block.let.values()), list(block.params.values()), list(block.states.values()))
        found += _unread(spec, texts, block.require, block.params, block.uses, block.let, src, bpath,
                         f" of block '{name}'")
    return found


def _unread(spec: Spec, texts: tuple, require: dict, params: dict, uses: list, let: dict, src: Source, base: tuple,
            owner: str) -> list[Diagnostic]:
    read: set[str] = set()
    called: set[str] = set()
    for text in texts:
        _read(text, read, called)
    for condition in require:
        read |= referenced_names(condition)
    library = spec.library.blocks
    every = any(is_expression(c) for c in called)  # `block: $unit`: any block may be the one
    for block_name in (library if every else called):
        if block_name in library:
            read |= set(library[block_name][0].uses)
    out = []
    for name in params:
        if name not in read:
            out.append(_warning("W303", f"param '{name}'{owner} is never read", src, base + ("params", name),
                                f"remove it, or read it where it belongs (`${name}`)"))
    for i, name in enumerate(uses):
        if name not in read:
            out.append(_warning("W303", f"'{name}' is in `uses:`{owner} but never read", src, base + ("uses", i),
                                "remove it from `uses:`"))
    for name in let:
        if name not in read:
            out.append(_warning("W304", f"`let` value '{name}'{owner} is never read", src, base + ("let", name),
                                "remove it, or read it where it belongs"))
    return out


def _read(value: Any, read: set[str], called: set[str]) -> None:
    """Add the names ``value`` reads (nested nodes walked) and the blocks it instantiates."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("block", "scan") and isinstance(item, str):
                called.add(item)
            if key == "name" and isinstance(item, str) and not is_expression(item):  # a repeat's name template
                for part in TEMPLATE_PART_RE.finditer(item):
                    read |= referenced_names("${" + part.group(1) + "}")
            _read(item, read, called)
    elif isinstance(value, list):
        for item in value:
            _read(item, read, called)
    elif isinstance(value, str):
        read |= referenced_names(value)


def _warning(code: str, message: str, src: Source, ypath: tuple, hint: str) -> Diagnostic:
    return Diagnostic(code, message, src.location(ypath, key=True), hint=hint, severity="warning")


__all__ = ["unused_names"]
