"""The mistakes of a node's own text, told even when its input failed.

A node whose input failed cannot be expanded: its shape, and every error about it, depends on
that input.  But its own text can still be wrong independently — an unknown op or key, a
value of the wrong type, an expression that does not parse — and a compiler tells all of those
in one run.  So the three mistakes of

    conv: {op: conv2d, out: 8, kernal: 3}    # E201: kernal
    bn:   {op: batchnorm}                    # E302: no such op (reads conv, which failed)
    fc:   {op: linear, out: "10"}            # E203: a string (reads bn, which failed)

are three errors.  Only what reads a failed tensor (an expression over its shape) is left
unknown, and silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lang.document import NodeDef
from .node_defs import node_def
from .reporting import Poisoned
from .scope import Ctx, Namer

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


def check_own_text(ex: "Expander", name: str, nd: NodeDef, ctx: Ctx, ypath: tuple, index: int | None = None) -> None:
    """Report what is wrong in ``nd``'s own text without expanding it; adds nothing to the graph."""
    here = ctx.namer.peek(name)
    if nd.repeat is not None:
        index = 0  # what the copies' expressions see, the first copy's
    env = ctx.env({"index": index} if index is not None else None)
    for key in ("when", "repeat"):
        raw = getattr(nd, key)
        if raw is not None:
            try:
                ex.evaluate(raw, env, ctx.source, ypath + (key,), here)
            except Poisoned:
                pass
    try:
        if nd.op is not None:
            op = ex.op_nodes.lookup(nd, env, ctx.source, ypath, here)
            ex.op_nodes.params(op, nd, env, ctx.source, ypath, here, lenient=True)
        elif nd.block is not None or nd.scan is not None:
            key = "block" if nd.block is not None else "scan"
            block_name, block, bsrc, bpath = ex.blocks.lookup_block(nd, ctx, ypath, index, here, key=key)
            ex.blocks.block_params(nd.model_copy(update={"block": block_name}), block, bsrc, bpath, ctx, ypath, index,
                                   here, lenient=True)
        else:
            check_seq_items(ex, nd, 0, ctx, ypath, Namer(here, False), index)
    except Poisoned:
        pass


def check_seq_items(ex: "Expander", nd: NodeDef, start: int, ctx: Ctx, ypath: tuple, namer: Namer,
                    index: int | None) -> None:
    """:func:`check_own_text` of a seq's items from ``start`` on (those after one that failed)."""
    items = nd.seq or []
    inner = Ctx(ctx.source, ctx.base, ctx.params, ctx.names, namer, ctx.scope, ctx.blocks)
    for i in range(start, len(items)):
        ipath = ypath + ("seq", i)
        item = node_def(ex, items[i], ctx.source, ipath, namer.peek(str(i)))
        if item is not None:
            check_own_text(ex, str(i), item, inner, ipath, index)


__all__ = ["check_own_text", "check_seq_items"]
