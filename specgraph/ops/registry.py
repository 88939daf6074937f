"""The op registry: op name -> op instance.

Built-in ops register themselves with ``@register_op`` when ``specgraph.ops`` is imported.
Users add ops the same way from their own code, or from an installed package through the
``specgraph.ops`` entry-point group (each entry point names an Op subclass), loaded on
first lookup.  A checked Graph holds the op instances it was checked with, so registering
another op under a name later changes the graphs checked afterwards only.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import TypeVar

from ..ir.traits import Trait
from .base import Op

OP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# The keys a node takes besides its op's params (specgraph.lang.document.NODE_KEYS, which ops may
# not import; a test keeps the two equal): a param named so could never be written on a node.
NODE_KEYS = ("op", "block", "seq", "scan", "from", "when", "repeat", "name", "inline", "init", "context", "reverse",
             "doc")
OpClass = TypeVar("OpClass", bound=type[Op])


class Registry:
    """Ops by name; ``entry_point_group`` names the plugins loaded on the first lookup."""

    def __init__(self, entry_point_group: str | None = "specgraph.ops"):
        self._ops: dict[str, Op] = {}
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None

    def register(self, cls: OpClass) -> OpClass:
        """Class decorator: register ``cls`` under ``cls.name``. Re-registering a name replaces it."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not OP_NAME_RE.match(name):
            raise ValueError(f"op class {cls.__name__} needs a lower_snake_case `name`, found {name!r}")
        params = getattr(getattr(cls, "Params", None), "model_fields", {})
        taken = [p for p in params if p in NODE_KEYS or (params[p].alias or "") in NODE_KEYS]
        if taken and Trait.COMPILER_MADE not in getattr(cls, "traits", ()):  # the scan op is never written
            raise ValueError(f"op '{name}' ({cls.__name__}): param '{taken[0]}' has the name of a node key, so "
                             f"`{taken[0]}:` on a node would never reach the op; rename it (e.g. '{taken[0]}_value'). "
                             f"Node keys: {', '.join(NODE_KEYS)}")
        self._ops[name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Remove the op called ``name`` (tests of user ops clean up after themselves)."""
        self._ops.pop(name, None)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self._group):
            cls = ep.load()
            if getattr(cls, "name", None) not in self._ops:
                self.register(cls)

    def get(self, name: str) -> Op | None:
        """The op called ``name``, or None."""
        if name not in self._ops:
            self._load_plugins()
        return self._ops.get(name)

    def meaning(self, name: str) -> str | None:
        """The op another library's ``name`` means (``dense`` -> ``linear``), or None."""
        key = name.lower().replace("-", "_")
        for op_name, op in self.all().items():
            if key in op.aliases:
                return op_name
        return None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._ops)

    def all(self) -> dict[str, Op]:
        self._load_plugins()
        return dict(self._ops)


REGISTRY = Registry()
register_op = REGISTRY.register
get_op = REGISTRY.get


def op_names() -> list[str]:
    return REGISTRY.names()


def all_ops() -> dict[str, Op]:
    return REGISTRY.all()


def builtin_ops() -> dict[str, Op]:
    """The ops specgraph itself defines (not those registered by user code or plugins)."""
    return {n: op for n, op in all_ops().items() if type(op).__module__.split(".")[0] == "specgraph"}


__all__ = ["Registry", "REGISTRY", "register_op", "get_op", "op_names", "all_ops", "builtin_ops", "OP_NAME_RE"]
