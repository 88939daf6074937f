"""A node's structural keys validated: a mapping, exactly one of `op`/`block`/`seq`/`scan`,
the scan-only keys on scans only, nothing but nodes in a seq.

Its op's or block's params are checked later, by the op (op_nodes.py) or the block
(blocks.py), since which keys are valid depends on what the node names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..diagnostics import did_you_mean
from ..lang.document import NODE_KEYS, NodeDef
from ..lang.expr import is_expression
from ..lang.marked_yaml import Source
from ..lang.validation import pydantic_diagnostics
from ..ops import get_op
from ..ops.base import param_meaning

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander

KINDS = ("op", "block", "seq", "scan")
SCAN_ONLY = ("init", "context", "reverse")


def node_def(ex: "Expander", raw: Any, source: Source, ypath: tuple, path: str | None = None) -> NodeDef | None:
    """``raw`` validated as a node, or None (its diagnostics reported)."""
    if not isinstance(raw, dict):
        ex.error("E203", f"a node is a mapping like {{op: relu}}, found {type(raw).__name__} {raw!r}"[:200], source,
                 ypath, path=path)
        return None
    scan_only = [k for k in SCAN_ONLY if k in raw]
    if scan_only and "scan" not in raw:  # before its type is checked: `init: 0.1` meant for an op is no scan's
        key = scan_only[0]
        op = get_op(raw["op"]) if isinstance(raw.get("op"), str) and not is_expression(raw["op"]) else None
        meant = param_meaning(key, op.Params.model_fields) if op is not None else None
        ex.error("E204", f"`{key}` applies to `scan:` nodes only", source, ypath + (key,), key=True, path=path,
                 hint=meant[1] if meant else None)
        return None
    try:
        nd = NodeDef.model_validate(raw)
    except ValidationError as e:
        ex.diags.extend(replace(d, path=path) for d in pydantic_diagnostics(e, raw, source, ypath, "node",
                                                                            allowed=NODE_KEYS))
        return None
    kinds = [k for k in KINDS if getattr(nd, k) is not None]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none of them"
        hint = None
        if not kinds:
            guess = next((did_you_mean(k, KINDS) for k in nd.extras if did_you_mean(k, KINDS)), None)
            hint = guess and f"{guess} (a node is `op:`, `block:` or `seq:`)"
        ex.error("E202", f"a node needs exactly one of `op`, `block`, `seq`, `scan`; found {found}", source, ypath,
                 key=True, hint=hint, path=path)
        return None
    if nd.seq is not None and nd.extras:
        key = next(iter(nd.extras))
        ex.error("E201", f"unknown key '{key}' in a seq node", source, ypath + (key,), key=True, path=path,
                 hint=did_you_mean(key, NODE_KEYS) or f"a seq node takes: {', '.join(NODE_KEYS)}")
        return None
    return nd


__all__ = ["node_def"]
