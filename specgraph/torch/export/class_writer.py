"""A class of the Python export as a whole: its ``__init__`` (the `let:` values it reads, each
child's construction, a switched one under its ``if``), its ``forward`` (forward.py), its
signature and the sizes of its outputs in its arguments' names, for the classes that make it.
A block that is one inline seq is an ``nn.Sequential`` subclass of its items."""

from __future__ import annotations

import ast
import re
import textwrap

from .copy_loops import copy_loops
from .exprs import Untranslatable, free_names, literal, parse, substitute
from .forward import forward_method
from .layers import chosen_op, held_lines, item_text, seq_items
from .source_file import class_text, indent
from ...ir.graph import Value
from .structure import Child
from .sizes import OUT_PARAMS, SIZE_PARAMS, Param, _same, _size_rank
from .units import UnitText, UnitWriter


def write_unit(self: UnitWriter) -> UnitText:
    """The class text of this unit (its name ``⟦name⟧``, its children's classes by their keys)."""
    children = self.s.children.get(self.path, [])
    seq = _sequential_body(self, children)
    methods: list[str] = []
    if seq is not None:
        base = "nn.Sequential"
        stmts, expr = seq_items(self, children, None, base="super().__init__", name="layers")
        body = stmts + [expr]
    else:
        base = "nn.Module"
        body = ["super().__init__()"]
        self.copy_loops = copy_loops(self, children)
        forward, flags = forward_method(self)
        for child in children:
            loop = self.copy_loops.get(id(child))
            if loop is None:
                self.through.update(_passed_here(self, children, child))
                try:
                    body += _child_init(self, child)
                finally:
                    self.through.clear()
            elif child is loop.run[0]:
                body += loop.init_lines()
        body += flags
        methods.append(forward)
    self.new_sizes = False  # an output's size reads an input size no layer needs as the caller's text
    cached = dict(self.dims)
    out_dims = _out_dims(self)  # may need an input's size: before the signature is read
    self.dims = cached  # those texts stand for the caller's sizes: not this class's (a template's)
    init = _prelude(self) + body if seq is not None else body[:1] + _prelude(self) + body[1:]
    params = _signature(self, "\n".join(init + methods))
    signature = ", ".join(p.name if p.default is None else f"{p.name}={p.default}" for p in params)
    doc = self.ex.top_doc if self.top else textwrap.fill(
        f"Block `{self.frame.block}`" + (f": {' '.join(self.frame.doc.split())}" if self.frame.doc else "."), 96)
    text = class_text("\u27e6name\u27e7", doc, init, methods, base=base, signature=signature)
    return UnitText(self.path, self.frame.block, base, params, text, out_dims)


def _passed_here(self: UnitWriter, children: list[Child], child: Child) -> dict:
    """The inputs of ``child`` that pass a sibling switched off here (``swapped`` where `grid` is
    false) which another instance has on: their sizes are written as where it is on (sizes.py's
    ``switched``), so that the instances' classes are the same."""
    written = child.written
    inputs = child.node.inputs if child.node is not None else child.scope.inputs if child.scope is not None else ()
    if written is None or child.skipped is not None:
        return {}
    off = {c.local: c for c in children if c.skipped is not None and c.written is not None
           and c.written.when is not None and c.written.frame is self.frame}
    passed = {}
    for ref, value in zip(written.reads, inputs):
        sibling = off.get(ref)
        found = self.ex.template(sibling, self) if sibling is not None else None
        if found is not None:
            passed[(value.node, value.port)] = (sibling.skipped, *found)
    return passed


def _child_init(self: UnitWriter, child: Child) -> list[str]:
    """``__init__`` lines making one child (nothing for a function op)."""

    written = child.written
    if child.node is not None and not self.ex.has_module(child.node.path):
        if self.ex.holds(child.node.path):
            return held_lines(self, child.node, child.local)
        chosen = chosen_op(self, child.node, written.copy if written is not None else None)
        return [f"self.{child.local} = {chosen}"] if chosen is not None and child.local.isidentifier() else []
    if child.skipped is not None and child.skipped.kind == "op" and not self.ex.template_has_module(child, self):
        return []
    cond = None
    if written is not None and written.when is not None:
        cond = self.try_translate(written.when, written, written.copy)
        if cond is None and child.skipped is not None:
            return []
    try:
        stmts, text = item_text(self, child, written.copy if written is not None else None)
    except LookupError:
        return []
    target = f"self.{child.local}" if child.local.isidentifier() else None
    assign = (lambda t: f"{target} = {t}") if target else (lambda t: f"self.add_module({child.local!r}, {t})")
    if cond is None:
        return stmts + [assign(text)]
    if not stmts and len(text) + len(cond) < 70 and "\n" not in text:
        return [assign(f"{text} if {cond} else None")]
    return [f"if {cond}:"] + indent(stmts + [assign(text)], "    ") + ["else:", f"    {assign('None')}"]


def _sequential_body(self: UnitWriter, children: list[Child]) -> bool | None:
    """Whether the block is a chain of seq items numbered 0, 1, ... (one inline seq, maybe of
    inline blocks that are seqs themselves): then it is an ``nn.Sequential`` of them."""
    if self.top or len(self.inputs) != 1 or not children or len(self.frame.outputs) > 1:
        return None
    if any(c.written is None or c.written.seq is None or not _inline_seq(c.written.seq) for c in children):
        return None
    present = [c for c in children if c.skipped is None]
    if [c.local for c in present] != [str(i) for i in range(len(present))]:
        return None
    value = self.inputs[0][1]
    for child in present:  # each reads the one before, and gives one value
        ins = child.node.inputs if child.node is not None else child.scope.inputs
        outs = (list(child.node.outputs) if child.node is not None else list(self.s.outputs(child.scope)))
        if len(ins) != 1 or ins[0] != value or len(outs) != 1:
            return None
        value = (Value(child.node.path, outs[0], child.node.outputs[outs[0]]) if child.node is not None
                 else self.s.outputs(child.scope)[outs[0]])
    outputs = list(self.s.outputs(self.scope).values())
    return True if outputs == [value] else None


def _inline_seq(seq) -> bool:
    return seq.inline and (seq.seq is None or _inline_seq(seq.seq))


def _prelude(self: UnitWriter) -> list[str]:
    """The `let:` values the class reads, and params whose default is an expression."""
    lines = []
    for d in self.frame.declared:
        if d.default is not None and not d.default.is_literal and not self.top:
            try:
                text = self.translate(d.default, self.frame, self.frame.tensors)
            except Untranslatable:
                text = literal(self.frame.values.get(d.name))
            lines.append(f"{d.name} = {text} if {d.name} is None else {d.name}")
    for name, e in self.frame.lets.items():
        if name in self.lets_used:
            lines.append(f"{name} = {self.translate(e, self.frame, self.frame.tensors)}")
    return lines + self.local_lines


def _signature(self: UnitWriter, body: str) -> list[Param]:
    """The constructor's arguments: the input sizes it needs, then the block's params (the spec's
    params for the graph, defaulting to the values it was checked with; those it does not read left
    out, as nodes switched off throughout are: no argument that does nothing)."""
    params = [self.hoisted[k] for k in sorted(self.hoisted)]
    for d in self.frame.declared:
        value = self.frame.values.get(d.name)
        if self.top:
            if not re.search(rf"\b{re.escape(d.name)}\b", body):
                continue
            default = literal(tuple(value) if isinstance(value, list) else value)
        elif d.default is None:
            default = None
        elif d.default.is_literal:
            v = d.default.value
            default = literal(tuple(v) if isinstance(v, list) else v)
        else:
            default = "None"
        params.append(Param(d.name, default, value))
    required = [p for p in params if p.default is None]  # Python wants them before those with defaults
    return required + [p for p in params if p.default is not None]


def _out_dims(self: UnitWriter) -> dict[tuple[str, int], str]:
    """The sizes of the outputs, in the constructor's arguments (a `let` written out) and, for an
    input size the class takes no argument for, ``input_size_name``'s stand-in, which the class
    making it replaces with its own text of that size (units.py's ``substitute``)."""
    lets = {}
    for name, e in self.frame.lets.items():
        try:
            lets[name] = self.translate(e, self.frame, self.frame.tensors)
        except (Untranslatable, SyntaxError):
            pass
    lets.update(self.local_texts)
    dims = {}
    outputs = self.s.outputs(self.scope).items() if self.scope is not None else ()
    sizes = [d.name for d in self.frame.declared if _size_rank(d.name) < len(SIZE_PARAMS) and d.name in OUT_PARAMS]
    for port, value in outputs:
        for d in range(len(value.type.shape)):
            size = value.type.shape[d]
            text = self.dimexpr(value, d)  # how the layers make it: a param of the same value is no evidence
            rank = len(value.type.shape)
            if (text is None or _conditional(text)) and len(outputs) == 1 and (d == 1 or rank <= 3 and d == rank - 1):
                # a width the branches make alike (`width` out of either side of a switched expansion):
                # the block's `out`-like param of that value, the width the block is asked for
                text = next((n for n in sizes if _same(self.frame.values.get(n), size)), text)
            for _ in range(len(lets) + 1):
                if text is None or not free_names(text) & set(lets):
                    break
                text = substitute(text, {k: f"({v})" for k, v in lets.items()})
            if text is not None and not free_names(text) & set(lets):
                dims[(port, d)] = text
    return dims


def _conditional(text: str) -> bool:
    return any(isinstance(n, ast.IfExp) for n in ast.walk(parse(text)))


__all__ = ["write_unit"]
