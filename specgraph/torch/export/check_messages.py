"""The messages of the run-time checks in a class of the Python export, in words every instance
of the block shares.

A check an op emits (``slice_stop``, ``exact_quotient``) names the sizes it checks as the shapes
show them in the instance: ``'slice [0:⌊H/4⌋] of dim 1'``, ``⌊(H + 4)/8⌋`` in the next stage.
Written as is, each instance would need a class of its own; the export writes each size as the
spec wrote it (``x.shape[1]``) or as the dim of an input it is (``unshifted.shape[1]``).
"""

from __future__ import annotations

import re
from typing import Callable

from torch import fx

from .module_source import PythonExportError
from .sizes import elements


def calls_a_check(n: fx.Node) -> bool:
    """Whether ``n`` calls one of specgraph's run-time checks (ops/), whose string arguments are
    messages naming sizes (not an equation, not a mode)."""
    return n.op == "call_function" and getattr(n.target, "__module__", "").startswith("specgraph.")


def dim_texts(node, var: Callable) -> dict[str, str]:
    """The symbolic sizes of ``node`` as its checks' messages show them (``⌊H/4⌋``), each with the
    text the spec wrote for it (``x.shape[1]``) or, for a dim of an input, ``unshifted.shape[1]``
    (the input as the spec names it, else its variable, ``var(value)``)."""
    texts: dict[str, str] = {}
    written = node.written
    for e in written.params.values() if written is not None else ():
        for part in elements(e) or [e]:
            if not part.is_literal and part.value is not None \
                    and not isinstance(part.value, (int, float, str, bool, list, tuple)):
                texts.setdefault(str(part.value), part.text)
    reads = written.reads if written is not None else ()
    for j, v in enumerate(node.inputs):
        try:  # the name the spec reads it by is the same where a switched-off node passes another on
            name = reads[j] if j < len(reads) and reads[j] else var(v)
        except PythonExportError:
            continue
        for i, dim in enumerate(v.type.shape):
            if not isinstance(dim, int):
                texts.setdefault(str(dim), f"{name}.shape[{i}]")
    return texts


def reworded_message(text: str, texts: dict[str, str]) -> str:
    """``text`` with each key of ``texts`` replaced by its value, the longest keys first (⌊H/4⌋
    before H), each place replaced once."""
    keys = sorted(texts, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    return pattern.sub(lambda m: texts[m.group(0)], text)


__all__ = ["calls_a_check", "dim_texts", "reworded_message"]
