"""The sizes of tensors in a class's names, for the Python export: a layer's ``in_channels`` is
the size of the class's input (a constructor argument, :class:`Param`), a size a layer before it
was given (``width * 4``), a block's output size through that block's arguments.

:class:`Sizes` is the part of :class:`~.units.UnitWriter` that finds them.  The rules, in order,
for dim ``d`` of a tensor a node makes: the op's formula for it over its input's size and its
params as written (a strided conv's height, ``(in_height - 1) // stride + 1``: ``Op.out_size_text``);
the node's own expression for it (a param, or the entry for that dim of a shape it wrote); the
input dim its shape rule says it is (a transpose's dim 1 is its input's dim 2 even where the two
sizes are equal); the size of an input it keeps in the same place (of several, one that needs no
condition: an add's main branch, not its switched shortcut); the sum of its inputs' (a
concatenation); a size of an input it moved (a reshape).  Where
none applies, the number itself: correct for the instance, and it keeps the instance's class to
itself.  A node switched on by ``when`` gives ``its size if cond else its input's``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from ...ir.dims import Sym
from ...ir.graph import Node, Scope, Value
from ...ir.tensor_type import TensorType
from ...ir.written import Expr
from ...ops.base import value_text
from ..names import GENERATED_CODE_NAMES
from .exprs import Untranslatable, free_names, simplify_size

# torch constructor arguments that are sizes of the layer's input: written from the input's size first
INPUT_SIZE_ARGS = {"in_channels", "in_features", "in1_features", "in2_features", "num_features", "normalized_shape",
                   "input_size", "embed_dim", "num_channels", "kdim", "vdim", "d_model"}
# a node param explaining an output size, by how likely it is to be the one
SIZE_PARAMS = ("out", "features", "channels", "hidden", "size", "dim", "width", "embed", "num")
# a block param of one of these names that equals its output's size is taken to be that size
OUT_PARAMS = {"out", "cout", "out_channels", "out_features", "channels", "features", "hidden", "width", "dim"}
# the longest size text written as computed from an input's (a height after several strided convs);
# a longer one is the number itself: a formula no reader follows, and each level would nest the last
MAX_SIZE_TEXT = 100
RESERVED = GENERATED_CODE_NAMES | {"OrderedDict", "BLOCKS", "OP_MODULES", "make_divisible", "index", "super"}


@dataclass
class Param:
    """A constructor argument of a generated class."""

    name: str
    default: str | None  # its default's text; None: required
    value: Any  # this instance's value
    size_of: tuple[int, int] | None = None  # an input's size: (input, dim)


def var_name(name: str) -> str:
    ident = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    ident = ident if ident and not ident[0].isdigit() else "v" + ident
    return ident + "_" if ident in RESERVED or ident in ("True", "False", "None") else ident


class Sizes:
    """Finding sizes (see the module docstring); mixed into UnitWriter, whose translation it uses."""

    def input_index(self, value: Value) -> int | None:
        return next((i for i, (_, v) in enumerate(self.inputs) if v == value), None)

    def dimexpr(self, value: Value, d: int, *, read: bool = True) -> str | None:
        """The text of dim ``d`` of ``value`` (a tensor of this unit) in the class's names;
        ``read``: the size a layer reads as its input's (not a tensor an expression names)."""
        through = self.through.get((value.node, value.port)) if read else None
        if through is not None:  # it passes a switched-off seq item: written as where that item is on
            return self.switched(through, value, d)
        key = (value.node, value.port, d, self.loop_copy, self.after_loop)
        if key not in self.dims:
            self.dims[key] = None  # a cycle (never expected) gives up
            self.dims[key] = self._dimexpr(value, d)
        return self.dims[key]

    def _dimexpr(self, value: Value, d: int) -> str | None:
        shape = value.type.shape
        if not -len(shape) <= d < len(shape):
            return None
        size = shape[d]
        if not isinstance(size, int):
            return None
        i = self.input_index(value)
        if i is not None:
            if self.top:
                return repr(size)
            try:
                return self.hoist(i, d % len(shape), size)
            except Untranslatable:
                return None
        owner = self.owner(value.node)
        if owner is None:
            return None
        written = owner.written
        if written is not None and written.when is not None and not isinstance(owner, Scope):
            return self.gated_dim(owner, value, d, size)
        if isinstance(owner, Scope) and owner.frame.written is not None and owner.frame.written.seq is not None \
                and owner.frame.written.when is not None:
            return self.gated_dim(owner, value, d, size)
        return self.owned_dim(owner, value, d, size)

    def owned_dim(self, owner, value: Value, d: int, size: int) -> str | None:
        shape = value.type.shape
        if isinstance(owner, Scope):
            unit = self.ex.unit(owner.path)
            port = next((p for p, v in owner.outputs.items() if v == value), None)
            text = unit.out_dims.get((port, d % len(shape))) if port is not None else None
            if text is None:
                return None
            return self.substitute(owner, text, size)
        return self.node_dim(owner, value, d, size)

    def gated_dim(self, owner, value: Value, d: int, size: int) -> str | None:
        """A size out of a switched seq item: ``exp if exp != cin else in_channels`` — its own size
        where it is on, its input's where it passes that on — the same text where it is off."""
        written = owner.written if not isinstance(owner, Scope) else owner.frame.written
        out = self.owned_dim(owner, value, d, size)
        cond = self.try_translate(written.when, written, written.copy)
        first = owner.inputs[0] if owner.inputs else None
        inner = self.dimexpr(first, d) if first is not None and len(first.type.shape) == len(value.type.shape) else None
        if out is None or cond is None or inner is None or out == inner:
            return out
        return f"{out} if {cond} else {inner}"

    def switched(self, through, value: Value, d: int) -> str | None:
        """Dim ``d`` of ``value``, which reaches its reader through a seq item switched off here:
        written as :meth:`gated_dim` writes it where the item is on (its size there from another
        instance, ``template``)."""
        skipped, template, present = through
        saved, self.through = self.through, {}
        try:
            inner = self.dimexpr(value, d)
        finally:
            self.through = saved
        present_value = (next(iter(template.s.outputs(present.scope).values()), None) if present.scope is not None
                         else Value(present.node.path, next(iter(present.node.outputs)), None))
        if present_value is None:
            return inner
        owner = present.scope if present.scope is not None else present.node
        typed = _typed(present_value, template)
        size = typed.type.shape[d] if -len(typed.type.shape) <= d < len(typed.type.shape) else None
        out = template.owned_dim(owner, typed, d, size if isinstance(size, int) else None)
        cond = self.try_translate(skipped.when, skipped, skipped.copy)
        if out is None or cond is None or inner is None or out == inner:
            return inner
        self.adopt(template)
        return f"{out} if {cond} else {inner}"

    def node_dim(self, node: Node, value: Value, d: int, size: int) -> str | None:
        w = node.written
        at = self.previous_copy(w) or (w.copy if w is not None else None)
        computed = self.computed_dim(node, value, d, at)
        if computed is not None:  # 0. the op's own formula (a strided conv's height), over its params
            return computed
        ranked = sorted(w.params.items() if w else (), key=lambda kv: _size_rank(kv[0]))
        for key, e in ranked:  # 1. the node's own expression for it
            if _same(e.value, size) and not e.is_literal:
                text = self.try_translate(e, w, at)
                if text is not None:
                    return text
        for key, e in ranked:  # ... or the number it wrote as a size
            if _same(e.value, size) and e.is_literal and _size_rank(key) < len(SIZE_PARAMS):
                return e.text
        for key, e in ranked:  # ... or the entry for this dim of a shape it wrote
            parts = elements(e)
            if parts is not None and len(parts) == len(value.type.shape) and _same(parts[d].value, size):
                text = parts[d].text if parts[d].is_literal else self.try_translate(parts[d], w, at)
                if text is not None:
                    return text
        moved = _moved_from(node, value, d)
        if moved is not None and node.inputs[moved[0]].type.shape[moved[1]] == size:  # 2. the input dim it is
            text = self.dimexpr(node.inputs[moved[0]], moved[1])
            if text is not None:
                return text
        rank = len(value.type.shape)
        kept = [(v, dd) for v in node.inputs for dd in _dims_order(d, rank, len(v.type.shape))
                if v.type.shape[dd] == size]
        text = self.kept_size(kept, self.switched_inputs(node) if len(kept) > 1 else set())  # 3. an input's size it keeps
        if text is not None:
            return text
        ins = [v for v in node.inputs if len(v.type.shape) > d % rank]
        if len(ins) > 1 and sum(v.type.shape[d % rank] if isinstance(v.type.shape[d % rank], int) else 10**18
                                for v in ins) == size:  # a concatenation
            parts = [self.dimexpr(v, d % rank) for v in ins]
            if all(parts):
                return " + ".join(f"({p})" if " " in p else p for p in parts)
        for v in node.inputs:  # 4. a size it moved (a reshape)
            for dd in range(len(v.type.shape)):
                if v.type.shape[dd] == size and dd not in _dims_order(d, rank, len(v.type.shape)):
                    text = self.dimexpr(v, dd)
                    if text is not None:
                        return text
        return None

    def computed_dim(self, node: Node, value: Value, d: int, at: int | None) -> str | None:
        """Dim ``d`` of ``value`` as its op computes it from the same dim of its first input and
        its params (``Op.out_size_text``), the params written as the spec wrote them here (copy
        ``at`` of a repeat)."""
        if node.op is None or not node.inputs or list(node.outputs).index(value.port) != 0:
            return None
        rank = len(value.type.shape)
        first = node.inputs[0]
        if len(first.type.shape) != rank:
            return None
        w = node.written

        def param(name: str, i: int) -> str:
            e = w.params.get(name) if w is not None else None
            if e is None:  # not written: the value it took
                return value_text(node.params, name, i)
            parts = elements(e)
            if parts is not None:
                e = parts[i]
            elif isinstance(e.value, (list, tuple)):
                raise Untranslatable(f"{name} per dim")
            text = e.text if e.is_literal else self.try_translate(e, w, at)
            if text is None:
                raise Untranslatable(name)
            return text

        body, cached = self.new_sizes, dict(self.dims)
        self.new_sizes = False  # no new constructor argument for it: the caller's text, or nothing
        try:
            inner = self.dimexpr(first, d % rank)
        finally:
            self.new_sizes = body
        if body and inner is not None and any(input_size_of(n) for n in free_names(inner)):
            self.dims = cached  # an input size no layer of this class needs: the number is written
            return None
        if inner is None or len(inner) > MAX_SIZE_TEXT:
            return None
        try:
            text = node.op.out_size_text(node.params, d % rank, inner, param)
        except (Untranslatable, AttributeError):
            return None
        text = None if text is None else simplify_size(text)
        return text if text is not None and len(text) <= MAX_SIZE_TEXT else None

    def switched_inputs(self, node: Node) -> set[Value]:
        """The inputs of ``node`` made by a child switched by ``when`` (an add's `proj`), or passing
        one switched off here: a size read from them holds where the switch is as it is here."""
        w = node.written
        children = {c.local: c for c in self.s.children.get(self.path, [])}
        found = set()
        for k, v in enumerate(node.inputs):
            ref = w.reads[k] if w is not None and k < len(w.reads) else None
            child = children.get(ref) if ref is not None else None
            if child is None and v.node in self.ex.graph:
                child = children.get(self.local_of(v.node).split(".")[0])
            if child is not None and (child.skipped is not None or child.written is not None
                                      and child.written.when is not None):
                found.add(v)
        return found

    def kept_size(self, dims: list[tuple[Value, int]], switched: set[Value]) -> str | None:
        """The text of the first of ``dims`` (an input's dim an op keeps, all of one size) that a
        text is found for, those of inputs that no switch makes first: an add of a switched
        shortcut and the main branch has the main branch's size, in every instance."""
        ordered = [vd for vd in dims if vd[0] not in switched] + [vd for vd in dims if vd[0] in switched]
        return next((t for t in (self.dimexpr(v, dd) for v, dd in ordered) if t is not None), None)

    def hoist(self, i: int, d: int, size: int) -> str:
        """The constructor argument giving dim ``d`` of input ``i`` (``in_channels``)."""
        if (i, d) not in self.hoisted:
            name, t = self.inputs[i][0], self.inputs[i][1].type
            if not self.new_sizes:  # no argument only an output's size would read: the caller's text
                return input_size_name(i, d)
            base = "in" if len(self.inputs) == 1 else var_name(name)
            word = {t.rank - 2: "height", t.rank - 1: "width"}.get(d) if t.rank >= 4 else None
            what = ("channels" if d == 1 and t.rank >= 3 else word if word is not None and self.size_word == word
                    else "features" if d == t.rank - 1 else f"size{d}")
            arg = f"{base}_{what}"
            taken = set(self.declared()) | set(self.frame.lets) | {p.name for p in self.hoisted.values()}
            while arg in taken or arg in RESERVED:
                arg += "_"
            self.hoisted[(i, d)] = Param(arg, None, size, (i, d))
        return self.hoisted[(i, d)].name

    def owner(self, path: str) -> Node | Scope | None:
        """The node of this unit's own code that makes ``path``, or the block scope in it that holds it."""
        if path not in self.ex.graph:
            return None
        node = self.ex.graph.node(path)
        scopes = node.scope
        start = scopes.index(self.path) + 1 if self.path else 0
        if self.path and self.path not in scopes:
            return None
        for scope_path in scopes[start:]:
            scope = self.ex.graph.scopes[scope_path]
            if scope.kind == "block":
                return scope
        return node



def input_size_name(i: int, d: int) -> str:
    """The name standing, in an output size's text (``UnitText.out_dims``), for dim ``d`` of input
    ``i`` where the class takes no argument for it: the class making it writes its own text there."""
    return f"_input{i}_dim{d}_"


def input_size_of(name: str) -> tuple[int, int] | None:
    """(input, dim) of a name :func:`input_size_name` made, or None."""
    if not (name.startswith("_input") and name.endswith("_") and "_dim" in name):
        return None
    i, _, d = name[len("_input"):-1].partition("_dim")
    return (int(i), int(d)) if i.isdigit() and d.isdigit() else None


def _moved_from(node: Node, value: Value, d: int) -> tuple[int, int] | None:
    """(input, dim) that dim ``d`` of ``value`` is, whatever the sizes, as the node's shape rule
    says when given a symbol for each input dim (a transpose's dim 1 is its input's dim 2, even
    where the two are the same size); None where it is no one input dim, or the rule says nothing."""
    if node.op is None or not node.inputs:
        return None
    probes = [TensorType(tuple(Sym(terms=((f"_probe_{j}_{i}", 1),)) for i in range(len(v.type.shape))),
                         v.type.dtype) for j, v in enumerate(node.inputs)]
    try:
        outs = node.op.infer(node.params, probes)
        out = outs[list(node.outputs).index(value.port)].shape
    except Exception:  # noqa: BLE001 - a rule that needs sizes, not symbols: no answer
        return None
    if len(out) != len(value.type.shape):
        return None
    dim = out[d]
    if isinstance(dim, Sym) and dim.opaque is None and (dim.const, dim.div) == (0, 1) and len(dim.terms) == 1 \
            and dim.terms[0][1] == 1 and isinstance(dim.terms[0][0], str) and dim.terms[0][0].startswith("_probe_"):
        j, i = dim.terms[0][0].removeprefix("_probe_").split("_")
        return int(j), int(i)
    return None


def _typed(value: Value, writer) -> Value:
    """``value`` with its type (a Value made from a path and port has none)."""
    node = writer.ex.graph.node(value.node)
    return Value(value.node, value.port, node.outputs[value.port])


def elements(e: Expr) -> list[Expr] | None:
    """The entries of a list written as a list (``[-1, $windows, ${x.features}]``), each with its value."""
    if not isinstance(e.value, (list, tuple)):
        return None
    try:
        tree = ast.parse(e.text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(tree, (ast.List, ast.Tuple)) or len(tree.elts) != len(e.value):
        return None
    return [Expr(ast.unparse(elt), v) for elt, v in zip(tree.elts, e.value)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and isinstance(a, float) == isinstance(b, float)
    return type(a) is type(b) and a == b


def _size_rank(name: str) -> int:
    return next((i for i, s in enumerate(SIZE_PARAMS) if name.startswith(s) or name.endswith(s)), len(SIZE_PARAMS))


def _dims_order(d: int, rank: int, other: int) -> list[int]:
    """Which dims of an input of rank ``other`` to try for dim ``d`` of an output of ``rank``:
    the same dim first (counted from the end where the ranks differ)."""
    if rank == other:
        return [d % rank]
    same = (d - rank) % other if -other <= d - rank else None
    return [same] if same is not None and 0 <= same < other else []


__all__ = ["MAX_SIZE_TEXT", "input_size_name", "input_size_of", "INPUT_SIZE_ARGS", "SIZE_PARAMS", "OUT_PARAMS", "RESERVED", "Param", "Sizes", "var_name", "elements"]
