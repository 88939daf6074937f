"""One class of the Python export: a block instance (or the spec's graph) written as the
``nn.Module`` a person would write for it.

A :class:`UnitWriter` writes one *unit* — the graph, or one block instance — in the names of its
block: the block's params (and, first, the sizes of its inputs that its layers need:
``in_channels``) are the constructor's arguments, its ``let:`` values locals of ``__init__``,
each value a layer is built with the spec's own expression for it (``width * 4``, not ``256``).
Instances of a block whose texts come out equal are one class (:mod:`.python` groups them), so
the choices made here depend on what was written, not on the instance: a value is written as

1. the spec's expression for it (a param of the node, translated into the class's names; a
   tensor's size ``x.channels`` is the size of the class's input or of a layer before it);
2. else the size of an input of the layer, as the class knows it (its own input sizes, a
   layer's ``out``, a block's output size through that block's arguments);
3. else the number itself.

Every text is correct for the instance it is written from (each number it stands for is the
instance's), so a class is correct for every instance whose text it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...ir.graph import Scope
from ...ir.written import Expr, Frame, Written
from .exprs import Untranslatable, fold, free_names, literal, rewrite, simplify_size
from .sizes import MAX_SIZE_TEXT, RESERVED, Param, Sizes, input_size_of, var_name

if TYPE_CHECKING:  # pragma: no cover
    from .python import Exporter

LOOP = "index"  # an index binding: `index` stays the loop's variable (a text binds `index` to that text)


@dataclass
class UnitText:
    """What a unit's class is: its text (its own name ``⟦name⟧``, the classes it makes by their keys
    ``⟦block#digest⟧``, named once every class is known) and how to call it (its params)."""

    path: str
    block: str | None
    base: str
    params: list[Param]
    text: str
    out_dims: dict[tuple[str, int], str] = field(default_factory=dict)  # in the class's argument names
    key: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.text.encode()).hexdigest()[:10]
        self.key = f"\u27e6{self.block or 'top'}#{digest}\u27e7"


def attr(local: str) -> str:
    """How a method reaches submodule ``local`` of ``self``."""
    return f"self.{local}" if local.isidentifier() else f"getattr(self, {local!r})"


class UnitWriter(Sizes):
    """Writes one unit (see the module docstring); ``ex`` is the file being written."""

    def __init__(self, ex: "Exporter", path: str):
        self.ex, self.path = ex, path
        self.s = ex.structure
        scope = self.s.scope(path)
        self.scope: Scope | None = scope
        self.frame: Frame = scope.frame if scope is not None else ex.graph.frame
        self.inputs = self.s.inputs(path)
        self.hoisted: dict[tuple[int, int], Param] = {}
        self.lets_used: set[str] = set()
        self.dims: dict[tuple[str, str, int], str | None] = {}
        self.calls: dict[tuple[str, Any], str] = {}
        self.temps: set[str] = set()
        self.temp_of: dict[Any, str] = {}  # the local a seq's layers were gathered in (see temp)
        self.locals: dict[tuple[int, str], str] = {}  # an inline block's `let` value -> its local here
        self.local_lines: list[str] = []
        self.local_texts: dict[str, str] = {}
        self.new_sizes = True  # whether a size may become a new constructor argument
        self.size_word: str | None = None  # how the spec is reading the size being written (`height`)
        self.through: dict[tuple[str, str], tuple] = {}  # a value that passes a switched-off seq item
        self.loop_copy: tuple | None = None  # writing copy i of a repeat as a loop: (identity, i)
        self.after_loop: tuple | None = None  # just after a loop: (identity, last copy, count text)
        self.copy_loops: dict = {}  # the children written as loops, by id (copy_loops.py)

    # ---- names and expressions ------------------------------------------------------------
    @property
    def top(self) -> bool:
        return not self.path

    def declared(self) -> list[str]:
        return [d.name for d in self.frame.declared]

    def in_unit(self, frame: Frame | None) -> bool:
        """Whether ``frame``'s names can be written here: the unit's own, or an inline one in it."""
        while frame is not None:
            if frame is self.frame:
                return True
            if frame.scope is not None:
                return False
            frame = frame.parent
        return False

    def translate(self, e: Expr | None, frame: Frame | None, tensors, index: Any = None) -> str:
        """``e``, written in ``frame``, in this class's names; raises Untranslatable."""
        if e is None or frame is None or not self.in_unit(frame):
            raise Untranslatable("not written here")

        def name(n: str) -> str | None:
            if n == "index":
                if isinstance(index, str):  # in a loop: `index`, or `index - 1` for the copy before
                    return index
                if index is None:
                    raise Untranslatable("index")
                return repr(index)
            if frame is self.frame:
                if n in self.frame.lets:
                    self.use_let(n)
                    return n
                if n in self.declared():
                    return n
                raise Untranslatable(n)
            if n in frame.given:
                w = frame.written
                return self.translate(frame.given[n], frame.parent, w.tensors if w else {},
                                      w.copy if w is not None else None)
            if n in frame.lets:
                return self.inline_let(frame, n)
            default = next((d.default for d in frame.declared if d.name == n), None)
            if default is not None:
                return self.translate(default, frame, frame.tensors, None)
            raise Untranslatable(n)

        def dim(t: str, d: int, word: str | None) -> str | None:
            value = tensors.get(t)
            if value is None:
                return None
            saved, self.size_word = self.size_word, word
            try:
                return self.dimexpr(value, d, read=False)
            finally:
                self.size_word = saved

        return fold(rewrite(e.text, name, dim), e.value)

    def inline_let(self, frame: Frame, n: str) -> str:
        """A `let` value of an inline block, as a local of ``__init__`` (computed once, named as written)."""
        key = (id(frame), n)
        if key not in self.locals:
            text = self.translate(frame.lets[n], frame, frame.tensors, None)
            if not any(ch.isalpha() for ch in text.replace("True", "").replace("False", "")):
                return text  # a number: no local needed
            local = n
            taken = set(self.declared()) | set(self.frame.lets) | set(self.locals.values()) | self.temps
            while local in taken or local in RESERVED:
                local += "_"
            self.locals[key] = local
            self.local_texts[local] = text
            self.local_lines.append(f"{local} = {text}")
        return self.locals[key]

    def use_let(self, n: str) -> None:
        if n in self.lets_used:
            return
        self.lets_used.add(n)
        self.translate(self.frame.lets[n], self.frame, self.frame.tensors)  # the lets it reads are used too

    def try_translate(self, e: Expr | None, written: Written | None, index: Any = None) -> str | None:
        if e is None or written is None:
            return None
        try:
            return self.translate(e, written.frame, written.tensors, index)
        except (Untranslatable, SyntaxError):
            return None

    def local_of(self, path: str) -> str:
        return path[len(self.path) + 1:] if self.path else path

    def temp(self, name: str, owner: Any = None) -> str:
        """A fresh local of ``__init__``; the same one for the same ``owner`` asking again (a seq
        written once more, as a template for another instance: the same text)."""
        if owner is not None and owner in self.temp_of:
            return self.temp_of[owner]
        taken = set(self.declared()) | set(self.frame.lets) | self.temps | {p.name for p in self.hoisted.values()}
        candidate = var_name(name)
        while candidate in taken:
            candidate += "_"
        self.temps.add(candidate)
        if owner is not None:
            self.temp_of[owner] = candidate
        return candidate

    def adopt(self, other: UnitWriter) -> None:
        """Take the input sizes and `let` values a template's text (from ``other``) reads."""
        for key, p in other.hoisted.items():
            if key not in self.hoisted and key[0] < len(self.inputs):
                i, d = key
                size = self.inputs[i][1].type.shape[d]
                self.hoisted[key] = Param(p.name, None, size, key)
        for n in other.lets_used:
            if n in self.frame.lets:
                self.use_let(n)

    # ---- child blocks -----------------------------------------------------------------------
    def call(self, scope: Scope, index: Any = None) -> str:
        """The constructor call of child block ``scope`` (``⟦key⟧(in_channels, width, stride=2)``)."""
        key = (scope.path, index)
        if key not in self.calls:
            self.calls[key] = self._call(scope, index)
        return self.calls[key]

    def args(self, scope: Scope, index: Any) -> dict[str, str]:
        """Child block ``scope``'s constructor arguments as texts here, by parameter name."""
        unit = self.ex.unit(scope.path)
        w = scope.frame.written
        looped = self.looped_args(scope, index)
        if looped is not None:
            return looped
        texts: dict[str, str] = {}
        for p in unit.params:
            if p.size_of is not None:
                i, d = p.size_of
                saved, self.size_word = self.size_word, p.name.rpartition("_")[2]  # the child's `in_height`
                try:
                    text = self.dimexpr(scope.inputs[i], d)
                finally:
                    self.size_word = saved
                texts[p.name] = text if text is not None else literal(p.value)
                continue
            given = scope.frame.given.get(p.name)
            text = None
            if given is not None:
                try:
                    text = self.translate(given, scope.frame.parent, w.tensors if w else {},
                                          w.copy if index is None and w is not None else index)
                except (Untranslatable, SyntaxError):
                    text = None
            texts[p.name] = text if text is not None else literal(p.value)
        return texts

    def looped_args(self, scope: Scope, index: Any) -> dict[str, str] | None:
        """A copy's arguments from the loop that makes it (copy_loops.py), at ``index`` (the
        last copy's ``count - 1`` read after the loop): its output's sizes then follow the count."""
        from .exprs import substitute as sub

        loop = next((lp for lp in self.copy_loops.values() if any(c.scope is scope for c in lp.run)), None)
        if loop is None or loop.args is None or self.loop_copy is not None:
            return None
        copy = scope.frame.written.copy
        if loop.first is not None and copy == 0:
            return None  # written apart: its arguments are not the loop's
        if index is None or isinstance(index, int):
            index = f"{loop.count} - 1" if copy == len(loop.run) - 1 else str(copy)
        at = f"({index})" if " " in index else index
        return {name: fold(sub(text, {LOOP: at}), None) for name, text in loop.args.items()}

    def _call(self, scope: Scope, index: Any) -> str:
        unit = self.ex.unit(scope.path)
        texts = self.args(scope, index)
        parts = []
        for p in unit.params:
            text = texts[p.name]
            if p.default is not None and text == p.default:
                continue
            parts.append(text if p.default is None else f"{p.name}={text}")
        return f"{self.block_class(scope, unit, index)}({', '.join(parts)})"

    def block_class(self, scope: Scope, unit: UnitText, index: Any) -> str:
        if self.ex.self_reference is not None and scope.name == self.ex.self_reference == self.frame.block:
            return f"\u27e6{scope.name}#self\u27e7"
        w = scope.frame.written
        if w is not None and w.ref is not None and not w.ref.is_literal:
            text = self.try_translate(w.ref, w, index if index is not None else w.copy)
            if text is not None and self.ex.register_block(unit.block, unit.key):
                return f"BLOCKS[{text}]"
        return unit.key  # the class's name once classes are named (python.py)

    def previous_copy(self, written: Written | None) -> str | None:
        """``index - 1`` when ``written`` is the copy before the one being written as a loop."""
        if written is None or written.copy is None:
            return None
        if self.after_loop is not None:  # the last copy of the loop just written
            identity, last, count = self.after_loop
            if written.identity == identity and written.copy == last:
                return f"{count} - 1" if " " not in count else f"({count}) - 1"
        if self.loop_copy is None:
            return None
        identity, i = self.loop_copy
        return "index - 1" if written.identity == identity and written.copy == i - 1 else None

    def substitute(self, scope: Scope, text: str, size: int) -> str | None:
        """``text`` (in child ``scope``'s argument names) in this class's names.  A loop's copy reads
        the one before as ``index - 1`` (``settings[index - 1][3]``), or, where that text is decided
        by a condition on the index (the height after ``stride=2 if index == 0 else 1``), at its own
        number: the copies after a strided first one then all read the same height."""
        at = self.previous_copy(scope.frame.written)
        text_at = self._substitute(scope, text, size, at)
        if self.loop_copy is not None and at is not None and text_at is not None and _decided_by_index(text_at):
            return self._substitute(scope, text, size, None)
        return text_at

    def _substitute(self, scope: Scope, text: str, size: int, at: str | None) -> str | None:
        from .exprs import substitute as sub

        args = self.args(scope, at)
        try:
            for name in free_names(text):  # an input size the child takes no argument for: ours
                where = input_size_of(name)
                if where is not None:
                    inner = self.dimexpr(scope.inputs[where[0]], where[1]) if where[0] < len(scope.inputs) else None
                    if inner is None or len(inner) > MAX_SIZE_TEXT:
                        return None
                    args[name] = inner
            return fold(simplify_size(sub(text, {k: f"({v})" if " " in v else v for k, v in args.items()})), size)
        except (Untranslatable, SyntaxError):
            return None


def _decided_by_index(text: str) -> bool:
    """Whether ``text`` has a condition reading the loop's ``index``."""
    import ast

    return any(isinstance(n, ast.IfExp) and any(isinstance(m, ast.Name) and m.id == LOOP for m in ast.walk(n.test))
               for n in ast.walk(ast.parse(text, mode="eval")))


__all__ = ["LOOP", "UnitText", "UnitWriter", "attr"]
