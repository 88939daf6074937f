"""The ``forward`` of a class of the Python export: one statement per node of the block, named
as the spec names it (``conv1 = self.conv1(x)``, ``add = bn3 + downsample``), a block or a seq
called as the submodule it is, a switched node as the ``if`` that switches it::

    downsample = x
    if self.downsample is not None:
        downsample = self.downsample(x)

Functions of a :class:`~.units.UnitWriter` ``w``.  The code of each node is the fx code the
builder generated for it (fx_code.py), its values renamed.
"""

from __future__ import annotations

import re
from typing import Any

from torch import fx

from ...ir.graph import Value
from .check_messages import calls_a_check, dim_texts, reworded_message
from .copy_loops import names_attribute
from .fx_code import Code, call_text
from .layers import chosen_op
from .module_source import PythonExportError
from .structure import Child
from .sizes import elements, var_name
from .units import UnitWriter, attr


class ForwardWriter:
    """The statements of ``w``'s forward, child by child."""

    def __init__(self, w: UnitWriter):
        self.w = w
        self.vars: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()
        self.args = []
        for name, value in w.inputs:
            v = self.fresh(name)
            self.args.append(v)
            self.vars.setdefault((value.node, value.port), v)
        self.children = w.s.children.get(w.path, [])
        self.gated = {c.local for c in self.children if c.written is not None and c.written.when is not None
                      and c.written.frame is w.frame and c.written.seq is None
                      and (c.skipped is None or w.ex.template(c, w) is not None)}
        self.flags: dict[str, str] = {}  # gated function node -> the attribute switching it
        self.stored: dict[str, str] = {}  # attribute -> the text __init__ sets it to

    def fresh(self, name: str) -> str:
        v = var_name(name)
        while v in self.taken:
            v += "_"
        self.taken.add(v)
        return v

    # ---- names ------------------------------------------------------------------------------
    def var(self, value: Value) -> str:
        found = self.vars.get((value.node, value.port))
        if found is None:
            raise PythonExportError(f"{self.w.path or 'the graph'}: the value {value.ref} is not computed here")
        return found

    def ref_var(self, ref: str | None, value: Value, frame) -> str:
        """The variable of an input written as ``ref``: a switched sibling's own (which holds its
        input where it is off), else the value's."""
        if ref is not None and frame is self.w.frame:
            head, _, port = ref.partition(".")
            if head in self.gated and not port:
                return var_name(head)
        return self.var(value)

    def input_vars(self, written, inputs: tuple[Value, ...]) -> list[str]:
        reads = written.reads if written is not None else ()
        frame = written.frame if written is not None else None
        return [self.ref_var(reads[j] if j < len(reads) else None, v, frame) for j, v in enumerate(inputs)]

    # ---- statements -------------------------------------------------------------------------
    def statements(self, child: Child) -> list[str]:
        loop = self.w.copy_loops.get(id(child))
        if loop is not None:
            return self.copy_loop(loop) if child is loop.run[0] else []
        if child.skipped is not None:
            return self.skipped(child)
        if child.scope is not None:
            return self.call_scope(child)
        return self.node(child)

    def call_scope(self, child: Child) -> list[str]:
        scope = child.scope
        if not any(self.w.s.fx_nodes.get(n.path) for n in self.w.ex.graph.op_nodes()
                   if scope.path in n.scope):
            return []  # nothing of it is computed: no output needs it
        written = child.written
        args = self.input_vars(written, scope.inputs)
        local = child.local
        outs = list(self.w.s.outputs(scope).items())
        names = [self.fresh(local if len(outs) == 1 else f"{local}_{p}") for p, _ in outs]
        call = f"{attr(local)}({', '.join(args)})"
        lines = [f"{', '.join(names)} = {call}"]
        if written is not None and written.when is not None:
            lines = [f"{names[0]} = {args[0]}", f"if {attr(local)} is not None:", f"    {lines[0]}"]
        for (port, value), name in zip(outs, names):
            self.vars[(value.node, value.port)] = name
        return lines

    def copy_loop(self, loop) -> list[str]:
        """The copies of a repeat as the loop __init__ made them (copy_loops.py): one variable, the chain's."""
        first = loop.run[0]
        source = self.input_vars(first.written, first.scope.inputs)[0]
        names = names_attribute(loop, {c.local for c in self.children} | set(self.flags.values()) | set(self.stored))
        self.stored[names] = loop.names_text()
        v, each = self.fresh(first.written.key), self.fresh("name")
        lines = [f"{v} = {source}", f"for {each} in self.{names}:", f"    {v} = getattr(self, {each})({v})"]
        for port, value in self.w.s.outputs(loop.run[-1].scope).items():
            self.vars[(value.node, value.port)] = v
        return lines

    def node(self, child: Child) -> list[str]:
        node = child.node
        fx_nodes = self.w.s.fx_nodes.get(node.path, [])
        if not fx_nodes:
            return []  # an identity (its input is its value) or a node no output needs
        written = node.written
        if child.local.isidentifier() and chosen_op(self.w, node, written.copy if written else None) is not None:
            source = self.ref_var(written.reads[0] if written.reads else None, node.inputs[0], written.frame)
            lines = [f"{self.fresh(child.local)} = self.{child.local}({source})"]
            self.vars[(node.path, next(iter(node.outputs)))] = var_name(child.local)
            if written.when is not None:
                lines = [f"{var_name(child.local)} = {source}", f"if {self.flag(child)}:", f"    {lines[0]}"]
            return lines
        override = {}
        for j, v in enumerate(node.inputs):
            fx_in = self.w.ex.fx_of(v)
            text = self.input_vars(written, (v,))[0] if written is not None and j < len(written.reads) else None
            if fx_in is not None and text is not None:
                override[fx_in] = self.ref_var(written.reads[j], v, written.frame)
        lines = self.render(node, fx_nodes, child.local, override)
        if written is not None and written.when is not None:
            first = override.get(self.w.ex.fx_of(node.inputs[0])) if node.inputs else None
            passthrough = first or (self.var(node.inputs[0]) if node.inputs else "None")
            flag = self.flag(child)
            lines = [f"{var_name(child.local)} = {passthrough}", f"if {flag}:"] + [f"    {line}" for line in lines]
        return lines

    def render(self, node, fx_nodes: list[fx.Node], local: str, override: dict) -> list[str]:
        mine: dict[fx.Node, str] = {}
        result = self.w.s.result(node.path)
        ports = list(node.outputs)
        for n in fx_nodes:
            if n is result or (n is fx_nodes[-1] and result is None):
                mine[n] = self.fresh(local)
            elif self.w.s.fx_value.get(n, (None,))[0] == node.path and len(ports) > 1:
                mine[n] = self.fresh(f"{local}_{self.w.s.fx_value[n][1]}")
            else:
                mine[n] = self.fresh(f"{local}_{re.sub(r'_[0-9]+$', '', n.name).lstrip('_')}")

        def name(a: fx.Node) -> str:
            if a in mine:
                return mine[a]
            if a in override:
                return override[a]
            path, port = self.w.s.fx_value.get(a, (None, None))
            if path is None:
                raise PythonExportError(f"{node.path}: reads an fx value of no spec node ({a.name})")
            return self.vars[(path, port)] if (path, port) in self.vars else self.var(Value(path, port, None))

        def module(a: fx.Node) -> str:
            return attr(self.w.local_of(a.target))

        lines = [f"{mine[n]} = {call_text(self.with_attributes(n, node), name, self.w.ex.source.callee, module)}"
                 for n in fx_nodes]
        for n, v in mine.items():
            spec = self.w.s.fx_value.get(n)
            if spec is not None and spec[0] == node.path:
                self.vars[spec] = v
        if len(ports) == 1 and result is not None:
            self.vars[(node.path, ports[0])] = mine[result]
        return lines

    def with_attributes(self, n: fx.Node, node) -> fx.Node | _Written:
        """``n``, its constant arguments that the spec wrote as expressions (a reshape to
        ``[-1, $windows, $tokens, ${x.features}]``) read from attributes ``__init__`` sets."""
        written = node.written
        if written is None or n.op not in ("call_function", "call_method"):
            return n
        changed = False

        def swap(a: Any) -> Any:
            nonlocal changed
            if isinstance(a, slice):  # x[start:stop] with bounds the spec wrote as expressions
                return slice(swap(a.start), swap(a.stop), swap(a.step))
            if isinstance(a, tuple) and any(isinstance(x, slice) for x in a):
                return tuple(swap(x) if isinstance(x, slice) else x for x in a)
            if isinstance(a, (list, tuple)) and not _number_like(a):
                entries = swap_entries(a)
                return a if entries is None else type(a)(entries)
            if isinstance(a, fx.Node) or not _number_like(a):
                return a
            for key, e in written.params.items():
                if e.is_literal or not _equal(e.value, a):
                    continue
                text = self.w.try_translate(e, written, written.copy)
                if text is None:
                    continue
                changed = True
                return Code(f"self.{self.store(key, node, text)}")
            return a

        def swap_entries(a: list | tuple) -> list | None:
            """The numbers of a list that also holds computed sizes (a reshape to [-1, rows, 7,
            ${x.features}]) that the spec wrote as expressions, each read from an attribute."""
            nonlocal changed
            for key, e in written.params.items():
                parts = elements(e)
                if parts is None or len(parts) != len(a):
                    continue
                out = list(a)
                for j, (entry, part) in enumerate(zip(a, parts)):
                    if isinstance(entry, fx.Node) or not _number_like(entry) or part.is_literal \
                            or not _equal(part.value, entry):
                        continue
                    text = self.w.try_translate(part, written, written.copy)
                    if text is not None:
                        out[j] = Code(f"self.{self.store(f'{key}_{j}', node, text)}")
                        changed = True
                return out
            return None

        texts = dim_texts(node, self.var) if calls_a_check(n) else {}

        def reworded(a: Any) -> Any:
            nonlocal changed
            if isinstance(a, str) and texts:
                new = reworded_message(a, texts)
                changed = changed or new != a
                return new
            if isinstance(a, tuple) and a and all(isinstance(x, str) for x in a):
                return tuple(reworded(x) for x in a)
            return swap(a)

        args = tuple(reworded(a) for a in n.args)
        kwargs = {k: swap(v) for k, v in n.kwargs.items()}
        return _Written(n, args, kwargs) if changed else n

    def store(self, key: str, node, text: str) -> str:
        """An attribute holding ``text`` (set in ``__init__``), named after the param it was written as."""
        name = var_name(text) if text.isidentifier() else var_name(key)
        while name in self.stored and self.stored[name] != text or name in {c.local for c in self.children}:
            name = var_name(f"{node.name}_{key}") if not name.startswith(node.name) else name + "_"
        self.stored[name] = text
        return name

    def flag(self, child: Child) -> str:
        """What says whether a switched child runs: its module (None when off) or a stored flag."""
        if child.local in self.flags:
            return f"self.{self.flags[child.local]}"
        return f"{attr(child.local)} is not None"

    def skipped(self, child: Child) -> list[str]:
        """A node switched off here, written as where it is on (the same `if`), if another
        instance of the block has it on."""
        found = self.w.ex.template(child, self.w)
        if found is None or child.local not in self.gated:  # off everywhere, or not written in this
            return []                                       # class's names: its readers read its input
        writer, present = found
        wr = child.skipped
        frame = wr.frame
        reads = list(wr.reads)
        ins = [self._ref_text(r, frame) for r in reads] or [self.args[0]]
        local = child.local
        self.vars[("~skipped", local)] = var_name(local)
        if present.scope is not None or self.w.ex.has_module(present.node.path):
            return [f"{self.fresh(local)} = {ins[0]}", f"if {attr(local)} is not None:",
                    f"    {var_name(local)} = {attr(local)}({', '.join(ins)})"]
        node = present.node
        template_fx = writer.s.fx_nodes.get(node.path, [])
        override = {writer.ex.fx_of(v): text for v, text in zip(node.inputs, ins) if writer.ex.fx_of(v) is not None}
        sub = ForwardWriter(writer)
        sub.taken, sub.stored = self.taken, self.stored
        lines = sub.render(node, template_fx, local, override)
        self.w.adopt(writer)
        flag = self.flag(child)
        return [f"{var_name(local)} = {ins[0]}", f"if {flag}:"] + [f"    {line}" for line in lines]

    def _ref_text(self, ref: str | None, frame) -> str:
        if ref is None:
            return self.args[0]
        head, _, port = ref.partition(".")
        if head in self.gated:
            return var_name(head)
        for name, value in self.w.inputs:
            if name == head:
                return self.var(value)
        sibling = next((c for c in self.children if c.local == head), None)
        if sibling is not None and sibling.skipped is not None:  # off everywhere: it passes its input on
            return self._ref_text(sibling.skipped.reads[0] if sibling.skipped.reads else None, frame)
        if sibling is not None and sibling.node is not None:
            p = port or next(iter(sibling.node.outputs))
            return self.var(Value(sibling.node.path, p, None))
        if sibling is not None and sibling.scope is not None:
            outs = self.w.s.outputs(sibling.scope)
            v = outs[port or next(iter(outs))]
            return self.var(v)
        raise PythonExportError(f"{self.w.path}: cannot read {ref!r} here")


def forward_method(w: UnitWriter) -> tuple[str, list[str]]:
    """The forward's text, and ``__init__`` lines storing the flags its switched functions read."""
    f = ForwardWriter(w)
    init: list[str] = []
    for child in f.children:
        wr = child.written
        if child.local in f.gated and (child.node is not None and not w.ex.has_module(child.node.path)
                                       or child.skipped is not None and child.skipped.kind == "op"
                                       and not w.ex.template_has_module(child, w)):
            cond = w.try_translate(wr.when, wr, wr.copy)
            name = var_name(cond) if cond is not None and cond.isidentifier() else f"use_{var_name(child.local)}"
            if name in {c.local for c in f.children}:
                name = f"use_{var_name(child.local)}"
            f.flags[child.local] = name
            line = f"self.{name} = {cond if cond is not None else repr(bool(wr.when.value))}"
            if line not in init:  # two nodes switched by one param (`grid`) read one flag
                init.append(line)
    train_only = w.ex.train_only if w.top else set()
    body: list[str] = []
    training: list[str] = []
    for child in f.children:
        lines = f.statements(child)
        paths = _paths(w, child)
        (training if paths and paths <= train_only else body).extend(lines)
    body += _returns(w, f, training)
    text = f"def forward(self, {', '.join(f.args)}):\n" + "\n".join(f"    {line}" for line in body)
    return text, init + [f"self.{k} = {v}" for k, v in f.stored.items()]


class _Written:
    """An fx node's call with some arguments replaced by code (duck-typed for call_text)."""

    def __init__(self, n: fx.Node, args: tuple, kwargs: dict):
        self.op, self.target, self.args, self.kwargs, self.name = n.op, n.target, args, kwargs, n.name


def _number_like(a: Any) -> bool:
    if isinstance(a, bool):
        return False
    if isinstance(a, (int, float)):
        return True
    return isinstance(a, (list, tuple)) and bool(a) and all(_number_like(x) for x in a)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return not isinstance(a, bool) and not isinstance(b, bool) and isinstance(a, (int, float)) \
        and isinstance(b, (int, float)) and a == b and type(a) is type(b)


def _paths(w: UnitWriter, child: Child) -> set[str]:
    if child.node is not None:
        return {child.node.path}
    if child.scope is not None:
        return {n.path for n in w.ex.graph.op_nodes() if child.scope.path in n.scope}
    return set()


def _returns(w: UnitWriter, f: ForwardWriter, training: list[str]) -> list[str]:
    if w.top:
        outs = w.ex.graph.outputs
        every = [f.var(o.value) if o.value.node not in w.ex.train_only else None for o in outs]
        evals = [f.var(o.value) for o in outs if not o.train_only]
        if not training and not any(o.train_only for o in outs):
            return [f"return {', '.join(evals)}"]
        lines = ["if self.training:  # the training-only outputs too"] + [f"    {line}" for line in training]
        lines.append(f"    return {', '.join(f.var(o.value) for o in outs)}")
        del every
        return lines + [f"return {', '.join(evals)}"]
    scope = w.scope
    refs = dict(w.frame.outputs)
    if not refs:  # the last node written is the output
        last = [c for c in f.children if c.written is not None and c.written.frame is w.frame and c.written.seq is None]
        if last:
            refs = {"out": last[-1].local}
    outs = []
    locals_ = {c.local for c in f.children}
    for port, value in w.s.outputs(scope).items():
        ref = refs.get(port)
        if ref is not None and ref.partition(".")[0] in locals_:
            try:
                outs.append(f._ref_text(ref, w.frame))
                continue
            except PythonExportError:
                pass
        outs.append(f.var(value))
    return [f"return {', '.join(outs)}"]


__all__ = ["forward_method", "ForwardWriter"]
