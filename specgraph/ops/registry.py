"""The op registry: op name -> op instance.

Built-in ops register themselves with ``@register_op`` when ``specgraph.ops`` is imported.
Users add ops the same way from their own code, or from an installed package through the
``specgraph.ops`` entry-point group (each entry point names an Op subclass), loaded on
first lookup.  Nothing in the compiler dispatches on op names.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import TypeVar

from .base import Op

_OPS: dict[str, Op] = {}
_entry_points_loaded = False
OP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

OpClass = TypeVar("OpClass", bound=type[Op])


def register_op(cls: OpClass) -> OpClass:
    """Class decorator: register ``cls`` under ``cls.name``. Re-registering a name replaces it."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not OP_NAME_RE.match(name):
        raise ValueError(f"op class {cls.__name__} needs a lower_snake_case `name`, found {name!r}")
    _OPS[name] = cls()
    return cls


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="specgraph.ops"):
        cls = ep.load()
        if getattr(cls, "name", None) not in _OPS:
            register_op(cls)


def get_op(name: str) -> Op | None:
    """The op called ``name``, or None."""
    if name not in _OPS:
        _load_entry_points()
    return _OPS.get(name)


def op_names() -> list[str]:
    _load_entry_points()
    return sorted(_OPS)


def all_ops() -> dict[str, Op]:
    _load_entry_points()
    return dict(_OPS)
