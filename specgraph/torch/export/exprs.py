"""Expression texts for the Python export: the spec's expressions (ir/written.py) rewritten
into the names of the generated class, as Python source.

An expression is parsed with :mod:`ast` (never evaluated), its names replaced by the texts they
stand for, and unparsed; ``ast.unparse`` puts the parentheses that precedence needs.  Tensors
read through their shape (``x.channels``, ``x.shape[1]``) become the text of that dim, given by
the caller.  The spec's functions that Python lacks are provided: ``ceil``/``floor`` from math,
``make_divisible`` as a helper function of the file (:data:`MAKE_DIVISIBLE`, the spec's rule).
"""

from __future__ import annotations

import ast
from typing import Callable, Mapping

# The spec's shape attributes: name -> the dim they read (None: not a dim, see _STATIC)
_DIM_ATTRS = {"channels": 1, "height": -2, "width": -1, "features": -1, "batch": 0}

MAKE_DIVISIBLE = '''def make_divisible(value, divisor=8, min_value=None):
    """The multiple of `divisor` nearest `value`, at least `min_value` (default `divisor`) and
    never 10% below `value`: MobileNet's channel rounding, as the spec's make_divisible()."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new'''

# spec function -> the module Python has it in (the same function for every value the spec takes)
FUNCTION_IMPORTS = {"ceil": "math", "floor": "math", "log": "math", "exp": "math", "sqrt": "math"}
_COMPREHENSIONS = (ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)


def _own_names(tree: ast.AST) -> set[str]:
    """The names comprehensions bind (``c`` of ``[c * 2 for c in stages]``): theirs, read nowhere else."""
    return {n.id for comp in ast.walk(tree) if isinstance(comp, _COMPREHENSIONS)
            for loop in comp.generators for n in ast.walk(loop.target) if isinstance(n, ast.Name)}


class Untranslatable(Exception):
    """An expression that cannot be written in the class's names (a tensor read another way)."""


def parse(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def free_names(text: str) -> set[str]:
    """The names ``text`` reads (functions it calls are not names it reads)."""
    tree = parse(text)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called} - _own_names(tree)


def is_literal(text: str) -> bool:
    return not any(isinstance(n, ast.Name) for n in ast.walk(parse(text)))


def called(text: str) -> set[str]:
    """The spec functions ``text`` calls (so the file can provide them)."""
    return {n.func.id for n in ast.walk(parse(text)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def rewrite(text: str, name: Callable[[str], str | None], dim: Callable[[str, int, str | None], str | None]) -> str:
    """``text`` with each free name replaced by ``name(n)`` (None: kept) and each tensor dim
    ``t.channels`` / ``t.shape[k]`` by ``dim(t, k, word)`` (``word`` the attribute read, ``height``,
    or None for ``shape[k]``); raises Untranslatable where ``dim`` gives None or a tensor is read
    another way."""

    class Rewriter(ast.NodeTransformer):
        def visit_Attribute(self, node: ast.Attribute):
            if isinstance(node.value, ast.Name) and node.attr in _DIM_ATTRS:
                return _dim_node(node.value.id, _DIM_ATTRS[node.attr], node.attr)
            if isinstance(node.value, ast.Name) and node.attr in ("rank", "dtype", "shape"):
                raise Untranslatable(f"{node.value.id}.{node.attr}")
            return self.generic_visit(node)

        def visit_Subscript(self, node: ast.Subscript):
            inner = node.value
            if (isinstance(inner, ast.Attribute) and inner.attr == "shape" and isinstance(inner.value, ast.Name)
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
                return _dim_node(inner.value.id, node.slice.value)
            return self.generic_visit(node)

        def visit_Call(self, node: ast.Call):
            node.args = [self.visit(a) for a in node.args]
            node.keywords = [self.visit(k) for k in node.keywords]
            if isinstance(node.func, ast.Name) and node.func.id in FUNCTION_IMPORTS:
                node.func = ast.Attribute(ast.Name(FUNCTION_IMPORTS[node.func.id], ast.Load()), node.func.id, ast.Load())
            return node

        def visit_Name(self, node: ast.Name):
            if node.id in own:  # a comprehension's variable
                return node
            replaced = name(node.id)
            return node if replaced is None else _paren(parse(replaced))

    def _dim_node(tensor: str, d: int, word: str | None = None) -> ast.expr:
        text = dim(tensor, d, word)
        if text is None:
            raise Untranslatable(f"{tensor} dim {d}")
        return _paren(parse(text))

    tree = parse(text)
    own = _own_names(tree)
    tree = Rewriter().visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def _paren(node: ast.expr) -> ast.expr:
    return node  # ast.unparse adds the parentheses precedence needs


def substitute(text: str, names: Mapping[str, str]) -> str:
    """``text`` with the names of ``names`` replaced by their texts (others kept)."""
    if not names:
        return text
    return rewrite(text, names.get, lambda t, d, word: None if t not in names else f"{names[t]}.shape[{d}]")


_CONSTANT_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp, ast.List, ast.Tuple,
                   ast.Subscript, ast.Slice, ast.Load, ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context)


def simplify(text: str) -> str:
    """``text`` with the parts that name nothing computed: ``cfg[3] if 0 == 0 else 1`` -> ``cfg[3]``."""
    class Folder(ast.NodeTransformer):
        def generic_visit(self, node):
            node = super().generic_visit(node)
            if isinstance(node, ast.expr) and not isinstance(node, ast.Constant) and _constant(node):
                try:
                    value = eval(compile(ast.Expression(node), "<constant>", "eval"), {"__builtins__": {}})  # noqa: S307
                except Exception:  # noqa: BLE001 - left as written
                    return node
                if isinstance(value, (int, float, bool, str)) and len(repr(value)) <= 12:
                    return ast.Constant(value)
            if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Constant):
                return node.body if node.test.value else node.orelse
            return node

    tree = Folder().visit(parse(text))
    return ast.unparse(ast.fix_missing_locations(tree))


def simplify_size(text: str) -> str:
    """A size's text (an integer) in its simplest form: :func:`simplify`, then sums read as terms
    and a constant (``(h + 2 - 2 - 1) // 1 + 1`` -> ``h``): a term and its negation cancel, the
    constants add up, ``e // 1`` and ``1 * e`` are ``e``, ``a if c else a`` is ``a``.  Only for integer texts: ``e // 1`` is
    ``floor(e)`` for a float."""

    class Sizes(ast.NodeTransformer):
        def visit_BinOp(self, node: ast.BinOp):
            node = self.generic_visit(node)
            one = lambda n: isinstance(n, ast.Constant) and n.value == 1 and type(n.value) is int  # noqa: E731
            if isinstance(node.op, (ast.FloorDiv, ast.Mult)) and one(node.right):
                return node.left
            if isinstance(node.op, ast.Mult) and one(node.left):
                return node.right
            if isinstance(node.op, (ast.Add, ast.Sub)):
                return _sum(node)
            return node

        def visit_IfExp(self, node: ast.IfExp):
            node = self.generic_visit(node)
            return node.body if ast.dump(node.body) == ast.dump(node.orelse) else node  # the same either way

    tree = Sizes().visit(parse(simplify(text)))
    return simplify(ast.unparse(ast.fix_missing_locations(tree)))


def _terms(node: ast.expr, sign: int, out: list[tuple[int, ast.expr | int]]) -> None:
    """Append the terms of sum ``node`` (times ``sign``) to ``out`` in order, an integer constant as an int."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _terms(node.left, sign, out)
        _terms(node.right, sign if isinstance(node.op, ast.Add) else -sign, out)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append((1, sign * node.value))
    else:
        out.append((sign, node))


def _sum(node: ast.BinOp) -> ast.expr:
    """The sum with a term and its negation cancelled and constants side by side added, in the
    order written otherwise (``4 + (depth - 1) * 8 + 8`` stays: the loop's input, its steps, the last)."""
    terms: list[tuple[int, ast.expr | int]] = []
    _terms(node, 1, terms)
    kept: list[tuple[int, ast.expr | int]] = []
    for sign, term in terms:
        if isinstance(term, int):
            if kept and isinstance(kept[-1][1], int):
                term += kept.pop()[1]
            kept.append((1, term))
            continue
        match = next((k for k, (s, t) in enumerate(kept) if not isinstance(t, int) and s == -sign
                      and ast.dump(t) == ast.dump(term)), None)
        if match is None:
            kept.append((sign, term))
        else:
            del kept[match]
    kept = [(s, t) for s, t in kept if t != 0 or not isinstance(t, int)]
    if not kept:
        return ast.Constant(0)
    out = None
    for sign, term in kept:
        negative = term < 0 if isinstance(term, int) else sign < 0
        part = ast.Constant(abs(term)) if isinstance(term, int) else term
        if out is None:
            out = ast.UnaryOp(ast.USub(), part) if negative else part
        else:
            out = ast.BinOp(out, ast.Sub() if negative else ast.Add(), part)
    return out


def _constant(node: ast.AST) -> bool:
    """Only literals and operators (no names, no calls, no powers): safe and quick to compute."""
    return all(isinstance(n, _CONSTANT_NODES) and not isinstance(n, ast.Pow) for n in ast.walk(node))


def fold(text: str, value: object) -> str:
    """``text``, or the literal of its ``value`` when it names nothing (``[3, 4, 6, 3][0]`` -> ``3``)."""
    try:
        text = simplify(text)
        literal = is_literal(text)
    except SyntaxError:
        return text
    if literal and isinstance(value, (int, float, str, bool, type(None), list, tuple)):
        shown = repr(value)
        return text if len(shown) > len(text) and not isinstance(value, (list, tuple)) else shown
    return text


def literal(value: object) -> str:
    """Python text of a constant: ``float('inf')`` for infinities, lists and tuples element-wise."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"float({repr(value)!r})"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(literal, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(literal, value)) + "]"
    return repr(value)


__all__ = ["MAKE_DIVISIBLE", "FUNCTION_IMPORTS", "Untranslatable", "parse", "free_names", "is_literal", "called",
           "rewrite", "substitute", "fold", "simplify_size", "literal"]
