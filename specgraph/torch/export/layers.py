"""The layers of a class of the Python export: each module's constructor call with the spec's
expressions for its arguments, ``nn.Sequential`` for a seq (loops for its repeats, an ``if`` for
its switched items), parameters and buffers a node holds.  Functions of a
:class:`~.units.UnitWriter` ``w``; ``index`` binds the spec's ``index`` (an int, or LOOP inside
a loop over copies)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import torch
from torch import nn

from ...ir.graph import Node, Scope
from ...ir.written import Expr
from .exprs import Untranslatable, is_literal, literal, rewrite
from .fx_code import module_equivalent
from .module_source import constructor_parts, verify_constructor
from .source_file import indent
from .structure import Child
from .sizes import INPUT_SIZE_ARGS, _same, _size_rank
from .units import LOOP, UnitWriter

_TEMPLATE_PART = re.compile(r"\{([^{}]*)\}")


# ---- one module -------------------------------------------------------------------------------

def module_text(w: UnitWriter, node: Node, index: Any) -> str:
    """The constructor call of the module node ``node`` built (``nn.Conv2d(in_channels, width, ...)``)."""
    module = w.ex.module(node.path)
    special = w.ex.source.special_constructor(module, node.path)
    if special is not None:  # a scan's loop, a weight-normed layer: as the flat export writes them
        return special
    cls = type(module)
    named, kwargs, at_default = constructor_parts(module, node.path)
    verify_constructor(module, cls, [v for _, v in named], kwargs, node.path)
    callee = w.ex.source.class_name(cls, node.path)
    parts = [value_text(w, node, name, value, index) for name, value in named]
    for k, v in {**kwargs, **at_default}.items():
        text = value_text(w, node, k, v, index)
        if k in kwargs or not _is_number(text):  # at its default and written as a number: left out
            parts.append(f"{k}={text}")
    order = list(inspect.signature(cls.__init__).parameters)
    keyed = sorted(parts[len(named):], key=lambda p: order.index(p.split("=", 1)[0]) if p.split("=", 1)[0] in order
                   else len(order))
    return f"{callee}({', '.join(parts[:len(named)] + keyed)})"


def _is_number(text: str) -> bool:
    try:
        return is_literal(text)
    except SyntaxError:
        return False


def value_text(w: UnitWriter, node: Node, arg: str, value: Any, index: Any) -> str:
    """Constructor argument ``arg`` = ``value`` of ``node``'s module, in the class's names."""
    written = node.written
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        whole = _param_text(w, node, arg, value, index)
        if whole is not None:
            return whole
        parts = [_int_text(w, node, arg, v, index) for v in value]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")" if isinstance(value, tuple) \
            else "[" + ", ".join(parts) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_text(w, node, arg, value, index)
    if written is not None:
        text = _param_text(w, node, arg, value, index)
        if text is not None:
            return text
    return literal(value)


def _param_text(w: UnitWriter, node: Node, arg: str, value: Any, index: Any) -> str | None:
    """The node's own expression for ``value``: the param of the nearest name first."""
    written = node.written
    if written is None:
        return None
    matches = [(k, e) for k, e in written.params.items()
               if _same(_as_list(e.value), _as_list(value)) and _relation(arg, k) <= 1]  # a param of its name
    matches.sort(key=lambda ke: (_relation(arg, ke[0]), ke[1].is_literal))
    for _, e in matches:
        text = w.try_translate(e, written, written.copy if index is None else index)
        if text is not None:
            return text
    return None


def _int_text(w: UnitWriter, node: Node, arg: str, value: int, index: Any) -> str:
    sizes = lambda: _input_size_text(w, node, arg, value)  # noqa: E731
    params = lambda: _param_text(w, node, arg, value, index)  # noqa: E731
    for find in ((sizes, params) if arg in INPUT_SIZE_ARGS else (params, sizes)):
        text = find()
        if text is not None:
            return text
    return literal(value)


def _input_size_text(w: UnitWriter, node: Node, arg: str, value: int) -> str | None:
    if arg not in INPUT_SIZE_ARGS:
        return None
    for v in node.inputs:
        rank = len(v.type.shape)
        order = [d for d in (1, rank - 1) if 0 <= d < rank] + list(range(rank))
        if arg in ("in_features", "normalized_shape", "embed_dim", "d_model", "input_size"):
            order = [rank - 1] + order
        for d in dict.fromkeys(order):
            if v.type.shape[d] == value:
                text = w.dimexpr(v, d)
                if text is not None:
                    return text
    return None


def _relation(arg: str, param: str) -> int:
    """How likely constructor argument ``arg`` is the node param ``param`` (0: surely)."""
    if arg == param:
        return 0
    if arg.startswith(param) or arg.endswith(param) or param.startswith(arg) or param.endswith(arg):
        return 1
    return 2 + (_size_rank(param) < _size_rank("~"))


def _as_list(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def held_lines(w: UnitWriter, node: Node, local: str) -> list[str]:
    """Registering the parameter or buffer a node holds at its own path."""
    parent, _, leaf = node.path.rpartition(".")
    owner = w.ex.model.get_submodule(parent) if parent else w.ex.model
    tensor = owner._parameters.get(leaf)
    is_param = tensor is not None
    if tensor is None:
        tensor = owner._buffers[leaf]
    shape = value_text(w, node, "shape", list(tensor.shape), None) if tensor.dim() else "[]"
    dtype = "" if tensor.dtype == torch.float32 else f", dtype={tensor.dtype}"
    made = f"torch.zeros({shape}{dtype})"
    if is_param:
        return [f"self.{local} = nn.Parameter({made})" if local.isidentifier()
                else f"self.register_parameter({local!r}, nn.Parameter({made}))"]
    return [f"self.register_buffer({local!r}, {made})"]


# ---- layers of a seq ----------------------------------------------------------------------------

def item_text(w: UnitWriter, child: Child, index: Any) -> tuple[list[str], str]:
    """(statements first, expression) constructing one child as a module, or raises LookupError
    when it is no module (a function op) and has no module equivalent."""
    if child.skipped is not None:
        found = w.ex.template(child, w)
        if found is None:
            raise LookupError(f"no instance makes {child.local!r}")
        writer, present = found
        stmts, text = item_text(writer, present, index)
        w.adopt(writer)
        return stmts, text
    if child.scope is not None:
        if child.is_block:
            return [], w.call(child.scope, index)
        return sequential(w, child.scope, index)
    node = child.node
    if w.ex.has_module(node.path):
        return [], module_text(w, node, index)
    fx_nodes = w.s.fx_nodes.get(node.path, [])
    if not fx_nodes:
        return [], "nn.Identity()"
    chosen = chosen_op(w, node, index)
    if chosen is not None:
        return [], chosen
    if len(fx_nodes) == 1 and node.inputs:
        first = w.ex.fx_of(node.inputs[0])
        equal = module_equivalent(fx_nodes[0], first) if first is not None else None
        if equal is not None:
            return [], equal
    return [], w.ex.layer_class(w, node)


def chosen_op(w: UnitWriter, node: Node, index: Any) -> str | None:
    """``OP_MODULES[act]()`` for a function op chosen by a param (``op: $act``) whose torch
    module takes no argument: the class then takes the op by name, as the spec does."""
    written = node.written
    if written is None or written.ref is None or written.ref.is_literal or w.ex.has_module(node.path):
        return None
    fx_nodes = w.s.fx_nodes.get(node.path, [])
    first = w.ex.fx_of(node.inputs[0]) if node.inputs else None
    if len(fx_nodes) != 1 or first is None:
        return None
    equal = module_equivalent(fx_nodes[0], first)
    if equal is None or not equal.endswith("()"):
        return None
    choice = w.try_translate(written.ref, written, written.copy if index is None else index)
    if choice is None:
        return None
    w.ex.register_op(node.op.name, equal[:-2])
    return f"OP_MODULES[{choice}]()"


def _runs(items: list[Child]) -> list[list[Child]]:
    """Consecutive copies of one repeated definition grouped; everything else alone."""
    runs: list[list[Child]] = []
    for child in items:
        wr = child.written
        last = runs[-1][-1].written if runs else None
        if (wr is not None and last is not None and wr.copy is not None and last.copy == wr.copy - 1
                and wr.identity == last.identity and wr.frame is last.frame):
            runs[-1].append(child)
        else:
            runs.append([child])
    return runs


def sequential(w: UnitWriter, scope: Scope, index: Any, *, base: str = "nn.Sequential") -> tuple[list[str], str]:
    """(statements, expression) building the seq ``scope`` as an ``nn.Sequential``."""
    return seq_items(w, w.s.children.get(scope.path, []), index, base=base, name=scope.path.rpartition(".")[2])


def seq_items(w: UnitWriter, items: list[Child], index: Any, *, base: str, name: str) -> tuple[list[str], str]:
    numbered = [c.local for c in items if c.skipped is None] == [str(i) for i in range(sum(c.skipped is None
                                                                                            for c in items))]
    stmts: list[str] = []
    entries: list[tuple[str, str | None, str]] = []  # (kind, condition, text): one | many (a * list)
    passed = None  # a switched-off item just before, written where it is on (for the sizes after it)
    after = None
    outer = dict(w.through)  # what the seq's own input passes (a switched-off sibling of the seq)
    for run in _runs(items):
        first = run[0]
        w.after_loop, after = after, None
        if passed is not None and first.skipped is None:
            read = _first_input(first)
            if read is not None:
                w.through[(read.node, read.port)] = passed
        passed = None
        if first.skipped is not None and first.written is not None and first.written.when is not None:
            found = w.ex.template(first, w)
            passed = (first.skipped, *found) if found is not None else None
        try:
            entry = _entry(w, run, index, numbered, stmts)
        finally:
            w.through.clear()
            w.through.update(outer)
            w.after_loop = None
        if entry:
            entries += entry
        if any(kind == "many" for kind, _, _ in entry) and first.written is not None:
            count = w.try_translate(first.written.count, first.written, None)
            after = (first.written.identity, run[-1].written.copy, count) if count else None
    return _assemble(w, entries, stmts, numbered, base, name, tuple(id(c) for c in items))


def _first_input(child: Child):
    if child.node is not None:
        return child.node.inputs[0] if child.node.inputs else None
    return child.scope.inputs[0] if child.scope is not None and child.scope.inputs else None


def _entry(w: UnitWriter, run: list[Child], index: Any, numbered: bool, stmts: list[str]) -> list:
    """The entries of one run of items: one, a loop, or none (switched off and written nowhere)."""
    first = run[0]
    wr = first.written
    cond = None
    if wr is not None and wr.when is not None:
        cond = w.try_translate(wr.when, wr, wr.copy if index is None else index)
        if cond in ("True", "False"):  # decided by what the class was given: no `if`
            if cond == "False" and first.skipped is not None:
                return []
            cond = None
    if first.skipped is not None and wr is not None and wr.count is not None and wr.count.value == 0:
        return _no_copies(w, first, numbered, cond)
    if first.skipped is not None and cond is None:
        return []
    if wr is not None and wr.copy is not None and (len(run) > 1 or wr.count is not None):
        return _loop(w, run, numbered, stmts, cond)
    try:
        before, text = item_text(w, first, index if index is not None else (wr.copy if wr else None))
    except LookupError:
        return []
    stmts += before
    return [("one", cond, text if numbered else f"({_name_text(first.local)}, {text})")]


def _no_copies(w: UnitWriter, child: Child, numbered: bool, cond: str | None) -> list:
    """A `repeat:` that made no copy here, written as the loop another instance has (over zero
    copies here), or nothing when no instance has one."""
    found = w.ex.template(child, w)
    if found is None:
        return []
    writer, present = found
    run = next(([c for c in kids if c.written is not None and c.written.identity == present.written.identity
                 and c.written.frame is present.written.frame]
                for kids in writer.s.children.values() if present in kids), [])
    stmts: list[str] = []
    entries = _loop(writer, run, numbered, stmts, cond) if run else []
    if stmts or not entries or any(kind != "many" for kind, _, _ in entries):
        return []  # the loop needs a first copy of its own: not a loop over nothing
    w.adopt(writer)
    return entries


def _loop(w: UnitWriter, run: list[Child], numbered: bool, stmts: list[str], cond: str | None):
    wr = run[0].written
    looped = []
    for c in run:
        w.loop_copy = (c.written.identity, c.written.copy)
        try:
            before, text = item_text(w, c, LOOP)
        finally:
            w.loop_copy = None
        if before:
            looped = None
            break
        looped.append(text if numbered else f"({_copy_name(w, c, LOOP)}, {text})")
    count = w.try_translate(wr.count, wr, None) if wr.count is not None else None
    entries = []
    if looped and count is not None and len(run) == 1:
        other = w.ex.longer_run(run[0], w)  # written as an instance with more copies writes it
        if other is not None:
            writer, longer = other
            theirs = _loop(writer, longer, numbered, [], cond)
            mine = item_text(w, run[0], 0)
            if len(theirs) == 2 and theirs[1][0] == "many" and not mine[0] and theirs[0][2] == (
                    mine[1] if numbered else f"({_copy_name(w, run[0], 0)}, {mine[1]})"):
                w.adopt(writer)
                return [("one", cond, theirs[0][2]), theirs[1]]
    if looped and count is not None and len(set(looped)) == 1 and len(run) == wr.count.value:
        return [("many", cond, f"[{looped[0]} for index in range({count})]")]
    if looped and count is not None and len(run) >= 2 and len(set(looped[1:])) == 1 and len(run) == wr.count.value:
        before, text = item_text(w, run[0], 0)
        stmts += before
        entries.append(("one", cond, text if numbered else f"({_copy_name(w, run[0], 0)}, {text})"))
        return entries + [("many", cond, f"[{looped[1]} for index in range(1, {count})]")]
    for c in run:
        before, text = item_text(w, c, c.written.copy)
        stmts += before
        entries.append(("one", cond, text if numbered else f"({_copy_name(w, c, c.written.copy)}, {text})"))
    return entries


def _copy_name(w: UnitWriter, child: Child, index: Any, *, copy: str = "index") -> str:
    """The name of a copy of a repeat: written in a loop (``index`` LOOP), the f-string of its
    name template in the class's names, ``copy`` the copy's index there (``f'block{number}-{index}'``);
    else the name itself."""
    written = child.written
    template = written.name_template if written is not None else None
    if template is None or index != LOOP:
        return _name_text(child.local)

    def part(m: re.Match) -> str:  # `index` is the copy's; every other name is the class's
        text = w.translate(Expr(m.group(1), _ANY), written.frame, written.tensors, copy)
        return text if text.isdigit() else "{" + text + "}"

    try:
        body = _TEMPLATE_PART.sub(part, template)
    except (Untranslatable, SyntaxError):
        return _name_text(child.local)
    return "f" + repr(body) if "{" in body else repr(body)


_ANY = object()  # a value no text folds into a literal


def _name_text(local: str) -> str:
    return repr(local)


def call_args(parts: list[str], open_: str = "(", close: str = ")") -> str:
    """``(a, b, c)``, or one part a line when they are long."""
    one_line = f"{open_}{', '.join(parts)}{close}"
    if len(one_line) <= 90 and "\n" not in one_line:
        return one_line
    inner = ",\n".join("    " + p.replace("\n", "\n    ") for p in parts)
    return f"{open_}\n{inner},\n{close}"


def _assemble(w: UnitWriter, entries, stmts: list[str], numbered: bool, base: str, name: str, items: tuple):
    if not numbered:
        w.ex.source.need("from collections import OrderedDict")
    gated = any(cond for _, cond, _ in entries)
    if not gated:
        parts = [text if kind == "one" else f"*{text}" for kind, _, text in entries]
        if not numbered:
            return stmts, f"{base}(OrderedDict({call_args(parts, '[', ']')}))"
        return stmts, f"{base}{call_args(parts)}"
    temp = w.temp(f"{name}_layers" if name.isidentifier() else "layers", items)
    stmts.append(f"{temp} = []")
    for kind, cond, text in entries:
        line = f"{temp}.append({text})" if kind == "one" else f"{temp}.extend({text})"
        stmts += [f"if {cond}:"] + indent([line], "    ") if cond else [line]
    if not numbered:
        return stmts, f"{base}(OrderedDict({temp}))"
    return stmts, f"{base}(*{temp})"


__all__ = ["module_text", "value_text", "held_lines", "item_text", "sequential", "seq_items"]
