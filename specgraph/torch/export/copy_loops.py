"""The copies of a repeated block in a mapping of nodes, written as one loop.

An inline repeat named by a template (``blocks: {block: res_bottleneck, repeat: ${cfg[2]},
inline: true, name: "block{number}-{index}"}``) puts its copies beside their siblings, each a
module of its own name.  A class writes them as the spec does, once, whatever the count::

    for index in range(cfg[2]):
        self.add_module(f'block{number}-{index}', ResBottleneck(...))

and its forward as the chain they are::

    blocks = x
    for index in range(cfg[2]):
        blocks = getattr(self, f'block{number}-{index}')(blocks)

A run of copies is written so when it is every copy of the repeat, each reads the one before it
and nothing else reads a copy but the next, and the copies' texts are the same (or all but the
first's, which is then written before the loop), or the parts that differ step by the same
amount from copy to copy (a dense block's input widths, ``DenseLayer(in_channels + index *
growth_rate, ...)``: affine.py).  Otherwise each copy is written as the child it is
(class_writer.py, forward.py).  The last copy's arguments are then the loop's at ``count - 1``,
so the sizes after the loop follow the count (units.py's ``looped_args``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Value
from .affine import loop_text
from .layers import _copy_name, _runs, item_text
from .structure import Child
from .units import LOOP, UnitWriter


@dataclass(frozen=True)
class CopyLoop:
    """Copies ``run`` as a loop: ``name``/``text`` the name and constructor of copy ``index`` for
    ``index`` in ``range(start, count)``; ``first`` (name, text) of copy 0 when it is written apart."""

    run: tuple[Child, ...]
    count: str
    name: str
    text: str
    first: tuple[str, str] | None
    args: dict[str, str] | None = None  # a block copy's arguments by name, in `index` (units.looped_args)

    def init_lines(self) -> list[str]:
        """``__init__``'s lines making the copies."""
        lines = [] if self.first is None else [f"self.add_module({self.first[0]}, {self.first[1]})"]
        start = "" if self.first is None else "1, "
        return lines + [f"for index in range({start}{self.count}):", f"    self.add_module({self.name}, {self.text})"]

    def names_text(self) -> str:
        """The list of the copies' names, which the forward runs through."""
        return f"[{self.name} for index in range({self.count})]"


def copy_loops(w: UnitWriter, children: list[Child]) -> dict[int, CopyLoop]:
    """The runs of ``children`` written as loops, by the ``id`` of each child they hold."""
    found: dict[int, CopyLoop] = {}
    for run in _runs(children):
        loop = _loop(w, run)
        if loop is not None:
            found.update({id(c): loop for c in run})
    return found


def _output(child: Child, w: UnitWriter) -> Value | None:
    outs = list(w.s.outputs(child.scope).values())
    return outs[0] if len(outs) == 1 else None


def _loop(w: UnitWriter, run: list[Child]) -> CopyLoop | None:
    wr = run[0].written
    if (wr is None or wr.count is None or wr.seq is not None or wr.frame is not w.frame
            or wr.when is not None or len(run) != wr.count.value
            or [c.written.copy for c in run] != list(range(len(run)))
            or not all(c.is_block and c.skipped is None and len(c.scope.inputs) == 1 for c in run)):
        return None
    outs = [_output(c, w) for c in run]
    if any(o is None for o in outs) or any(c.scope.inputs[0] != o for c, o in zip(run[1:], outs)):
        return None  # not a chain
    if not _read_only_by_the_next(w, run, outs):
        return None
    count = w.try_translate(wr.count, wr, None)
    if count is None:
        return None
    names, texts, args = [], [], []
    for c in run:
        w.loop_copy = (c.written.identity, c.written.copy)
        try:
            before, text = item_text(w, c, LOOP)
            args.append(w.args(c.scope, LOOP))
        except LookupError:
            return None
        finally:
            w.loop_copy = None
        if before:
            return None
        names.append(_copy_name(w, c, LOOP))
        texts.append(text)
    if not names[0].startswith("f") or len(set(names)) != 1:
        return None  # no template in the class's names
    if len(run) == 1:  # one copy here: written as an instance with more copies writes them, if one does
        other = w.ex.longer_run(run[0], w)
        theirs = _loop(other[0], other[1]) if other is not None else None
        if theirs is not None and theirs.first is not None:
            before, text = item_text(w, run[0], 0)
            if not before and text == theirs.first[1] and names[0] == theirs.name:
                w.adopt(other[0])
                return CopyLoop(tuple(run), count, names[0], theirs.text, (_copy_name(w, run[0], LOOP, copy="0"), text))
    if len(set(texts)) == 1:
        return CopyLoop(tuple(run), count, names[0], texts[0], None, _fitted_args(args, 0))
    fitted = loop_text(texts, 0)  # the copies' arguments affine in the index (a dense block's widths)
    if fitted is not None:
        return CopyLoop(tuple(run), count, names[0], fitted, None, _fitted_args(args, 0))
    rest = texts[1] if len(set(texts[1:])) == 1 else loop_text(texts[1:], 1) if len(texts) > 2 else None
    if rest is not None:
        before, text = item_text(w, run[0], 0)
        if not before:
            return CopyLoop(tuple(run), count, names[0], rest, (_copy_name(w, run[0], LOOP, copy="0"), text),
                            _fitted_args(args[1:], 1))
    return None


def _fitted_args(args: list[dict[str, str]], start: int) -> dict[str, str] | None:
    """Each argument of copies ``start, ...`` as one text in ``index``, or None where one has none."""
    if not args or any(a.keys() != args[0].keys() for a in args):
        return None
    out = {}
    for name in args[0]:
        texts = [a[name] for a in args]
        out[name] = texts[0] if len(set(texts)) == 1 else loop_text(texts, start) if len(texts) > 1 else None
        if out[name] is None:
            return None
    return out


def _read_only_by_the_next(w: UnitWriter, run: list[Child], outs: list[Value]) -> bool:
    """Whether each copy's output but the last is read by the next copy alone (the loop keeps no other)."""
    inner = {(o.node, o.port): run[k + 1].scope.path for k, o in enumerate(outs[:-1])}
    graph = w.ex.graph
    for node in graph.op_nodes():
        for v in node.inputs:
            if (v.node, v.port) in inner and inner[(v.node, v.port)] not in node.scope:
                return False
    ends = [o.value for o in graph.outputs] + (list(w.s.outputs(w.scope).values()) if w.scope is not None else [])
    return not any((v.node, v.port) in inner for v in ends)


def names_attribute(loop: CopyLoop, taken: set[str]) -> str:
    """The attribute listing the copies' names (``blocks_names``), named after the repeat."""
    name = f"{loop.run[0].written.key}_names"
    while name in taken:
        name += "_"
    return name


__all__ = ["CopyLoop", "copy_loops", "names_attribute"]
