"""The Spec: a loaded, validated spec document with the blocks it can use, and loading one
from a path or from YAML text (document.py: the models; includes.py: the included files)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..diagnostics import Diagnostics
from .document import SpecDoc, load_document
from .includes import Library, collect_blocks
from .limits import DEFAULT_LIMITS, Limits
from .marked_yaml import Source, load_yaml_file, load_yaml_text


@dataclass
class Spec:
    """A loaded, schema-validated spec: the document, its source and the blocks it can use."""

    doc: SpecDoc
    source: Source
    library: Library
    overrides: dict[str, Any] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS

    @property
    def name(self) -> str:
        if self.doc.name:
            return self.doc.name
        return Path(self.source.name).stem if self.source.path else "spec"

    def with_params(self, **overrides: Any) -> "Spec":
        return Spec(self.doc, self.source, self.library, {**self.overrides, **overrides}, self.limits)


class YamlText(str):
    """A str that is YAML text, whatever it looks like (``specgraph check --text``, stdin):
    :func:`is_path` never takes it for a file name.  ``name`` is what its diagnostics call it."""

    name: str

    def __new__(cls, text: str, name: str = "<string>") -> "YamlText":
        made = super().__new__(cls, text)
        made.name = name
        return made


def is_path(target: object) -> bool:
    """Whether a spec argument names a file — a PathLike, or one line of text ending in .yaml
    or .yml — rather than being the YAML text itself (the one rule, for every entry point).
    :class:`YamlText` is text."""
    if isinstance(target, YamlText):
        return False
    return isinstance(target, os.PathLike) or (isinstance(target, str) and "\n" not in target
                                               and target.strip().endswith((".yaml", ".yml")))


def load_spec(target: Union[str, os.PathLike], *, limits: Limits = DEFAULT_LIMITS,
              include_root: Union[str, os.PathLike, None] = None) -> Spec:
    """Load a spec from a path or from YAML text, with its includes. Raises SpecError."""
    diags = Diagnostics()
    if is_path(target):
        data, source = load_yaml_file(target, limits)
    else:
        name = target.name if isinstance(target, YamlText) else "<string>"
        data, source = load_yaml_text(target, name, limits=limits)
    doc = load_document(data, source, diags)
    diags.raise_if_errors()
    assert doc is not None
    root = Path(include_root) if include_root else (source.path.parent if source.path else Path.cwd())
    library = Library()
    stack = [source.path.resolve()] if source.path else []
    collect_blocks(doc, source, library, stack, root.resolve(), limits, diags, {})
    diags.raise_if_errors()
    return Spec(doc, source, library, {}, limits)


__all__ = ["Spec", "Library", "YamlText", "is_path", "load_spec"]
