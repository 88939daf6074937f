"""Where nodes are expanded: their names, the scope they see, and how failures travel.

A node's path is its name under its parent (``layer1.0.conv1``); a :class:`Namer` hands them
out, by name or (in a seq) by running number.  A :class:`Ctx` is one scope being expanded: its
source text, the names in sight, the params.  An expression sees an :class:`Env`: params, then
the single-output tensors in sight as shape views.  A node that fails raises
:class:`Poisoned` after recording its diagnostic, so dependents stay silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

from ..diagnostics import Diagnostic, Diagnostics
from ..lang.expr import ShapeView
from ..ir.graph import Value
from ..lang.marked_yaml import Source

# Names may be numbers too ("0", quoted in YAML): hand-written models number parallel branches.
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
# Node names become submodule names, which cannot be attributes of torch's Module or fx's
# GraphModule (`train`, `to`, `graph`, ...): add_module refuses them. Listed here so that
# checking never imports torch (from torch 2.x's dir(torch.fx.GraphModule)).
RESERVED_NAMES = frozenset("""
    T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu cuda
    delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta modules mtia named_buffers
    named_children named_modules named_parameters parameters print_readable recompile register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty to_folder train training type xpu zero_grad
""".split())
Result = dict[str, Value]  # port -> value


class Poisoned(Exception):
    """A node failed (its diagnostic is already recorded); dependents stay silent."""


POISONED: Any = object()  # a scope's first input when that input failed


class InstanceDiagnostics(Diagnostics):
    """The diagnostics of one expansion, where a mistake in a block's text is met once per instance.

    It is reported once, at the block's text, naming the first instance and listing the others
    ("also in: u2, u3"), even where the message differs between instances (their shapes do).
    """

    def __init__(self) -> None:
        super().__init__()
        self._first: dict[tuple, int] = {}  # (code, location[, message]) -> index in items
        self._seen: dict[int, tuple[Diagnostic, list[str]]] = {}  # index -> (as first reported, other paths)

    def add(self, d: Diagnostic) -> None:
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


class Namer:
    """Gives node paths in a scope: by name under a prefix, or by running number in a seq."""

    def __init__(self, prefix: str, numbered: bool):
        self.prefix = prefix
        self.numbered = numbered
        self.next = 0

    def peek(self, local: str) -> str:
        """The path :meth:`name` would give now, without taking it (for error messages)."""
        part = str(self.next) if self.numbered else local
        return f"{self.prefix}.{part}" if self.prefix else part

    def name(self, local: str) -> str:
        path = self.peek(local)
        self.next += self.numbered
        return path


@dataclass
class Ctx:
    """Where nodes are being expanded: their source text, names in sight and params."""

    source: Source
    base: tuple  # YAML path of the mapping that holds the nodes
    params: dict[str, Any]
    names: dict[str, Result | None]  # scope inputs and siblings expanded so far
    namer: Namer
    scope: tuple[str, ...] = ()  # enclosing scope paths
    blocks: tuple[str, ...] = ()  # block names being instantiated (recursion guard)
    first_input: Value | None = None  # or POISONED

    def env(self, extra: dict[str, Any] | None = None) -> "Env":
        return Env(self.params, self.names, extra or {})


class Env(Mapping):
    """What an expression sees: params, then tensors in sight as shape views (built lazily)."""

    def __init__(self, params: dict[str, Any], names: dict[str, Result | None], extra: dict[str, Any]):
        self._params, self._names, self._extra = params, names, extra

    def __getitem__(self, key: str) -> Any:
        if key in self._extra:
            return self._extra[key]
        if key in self._params:
            return self._params[key]
        result = self._names.get(key)
        if result is not None and len(result) == 1:
            return ShapeView(next(iter(result.values())).type)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from self._params
        yield from (k for k, r in self._names.items() if r is not None and len(r) == 1)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def numbered_namer(namer: Namer) -> Namer:
    """The namer for seq items spliced into a scope: the seq's own, or numbers under the prefix."""
    return namer if namer.numbered else Namer(namer.prefix, True)


def parent_scope(ctx: Ctx) -> str | None:
    return ctx.scope[-1] if ctx.scope else None
