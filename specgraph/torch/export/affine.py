"""The copies' constructor texts of a loop as one text in the loop's ``index``, where the parts
that differ from copy to copy are affine in it.

A dense block's layers each read everything before them, so copy ``k``'s input width is the
block's plus ``k`` growths: its texts are ``DenseLayer(in_channels, ...)``, ``DenseLayer(in_channels
+ growth_rate, ...)``, ... and the loop writes ``DenseLayer(in_channels + index * growth_rate, ...)``.

Each differing part is read as a linear form: integer coefficients over *atoms*, the parts that
are not a sum, a difference, a negation or a product by an integer (a name, ``cfg[0]``, ``(a + b)
// 2``, each keyed by its text).  The parts fit when copy ``k``'s form is copy ``start``'s plus ``k
- start`` times one step, for every copy: the same forms, so the loop's text computes each copy's
value whatever the class's arguments are.  Three copies at least: two fit any step, and doubling
widths (``c``, ``c * 2``) would read as ``c + index * c``.  Otherwise there is no text (the copies
are written one by one).
"""

from __future__ import annotations

import ast
import re

from .units import LOOP

_PLACEHOLDER = re.compile("\u27e6[^\u27e7]*\u27e7")
Form = dict[str, int]  # atom text -> coefficient; "" is the constant


def loop_text(texts: list[str], start: int) -> str | None:
    """One text for copies ``start, start + 1, ...`` whose texts are ``texts``, or None."""
    marks: dict[str, str] = {}  # the class placeholders (``⟦key⟧``, named later) as names

    def mark(m: re.Match) -> str:
        return marks.setdefault(m.group(0), f"_placeholder_{len(marks)}_")

    try:
        nodes = [ast.parse(_PLACEHOLDER.sub(mark, t), mode="eval").body for t in texts]
    except SyntaxError:
        return None
    merged = _merge(nodes, start)
    if merged is None:
        return None
    text = ast.unparse(ast.fix_missing_locations(merged))
    for placeholder, name in marks.items():
        text = text.replace(name, placeholder)
    return text


def _merge(nodes: list[ast.expr], start: int) -> ast.expr | None:
    first = ast.dump(nodes[0])
    if all(ast.dump(n) == first for n in nodes[1:]):
        return nodes[0]
    if all(isinstance(n, ast.Call) for n in nodes):  # a constructor: argument by argument
        head = nodes[0]
        kws = [k.arg for k in head.keywords]
        if any(ast.dump(n.func) != ast.dump(head.func) or len(n.args) != len(head.args)
               or [k.arg for k in n.keywords] != kws for n in nodes):
            return None
        args = [_merge([n.args[i] for n in nodes], start) for i in range(len(head.args))]
        values = [_merge([n.keywords[i].value for n in nodes], start) for i in range(len(kws))]
        if any(a is None for a in args + values):
            return None
        return ast.Call(head.func, args, [ast.keyword(k, v) for k, v in zip(kws, values)])
    if all(isinstance(n, (ast.List, ast.Tuple)) and type(n) is type(nodes[0]) and len(n.elts) == len(nodes[0].elts)
           for n in nodes):
        elts = [_merge([n.elts[i] for n in nodes], start) for i in range(len(nodes[0].elts))]
        return None if any(e is None for e in elts) else type(nodes[0])(elts, ast.Load())
    return _affine(nodes, start)


def _affine(nodes: list[ast.expr], start: int) -> ast.expr | None:
    """``base + index * step`` equal to each node's form at its copy's index, or None."""
    forms = [linear(n) for n in nodes]
    if any(f is None for f in forms) or len(forms) < 3 or any(LOOP in f for f in forms):
        return None  # two copies fit any step: a third is the evidence (4, 8 is no `4 + index * 4` of 4, 8, 16)
    step = _add(forms[1], forms[0], -1)
    for k, f in enumerate(forms):
        if _add(_add(forms[0], step, k), f, -1):
            return None  # not copy `start`'s form plus k steps
    base = _add(forms[0], step, -start)
    steps = ast.BinOp(ast.Name(LOOP, ast.Load()), ast.Mult(), _render(step)) if step != {"": 1} else ast.Name(LOOP, ast.Load())
    return steps if not base else ast.BinOp(_render(base), ast.Add(), steps)


def linear(node: ast.expr) -> Form | None:
    """``node`` as a linear form over its atoms (None: a float or other constant)."""
    if isinstance(node, ast.Constant):
        return {"": node.value} if type(node.value) is int else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = linear(node.operand)
        return None if inner is None else _add({}, inner, -1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = linear(node.left), linear(node.right)
        if left is None or right is None:
            return None
        return _add(left, right, 1 if isinstance(node.op, ast.Add) else -1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        left, right = linear(node.left), linear(node.right)
        if left is not None and right is not None:
            for factor, other in ((left, right), (right, left)):
                if set(factor) <= {""}:  # a number times a form
                    return _add({}, other, factor.get("", 0))
    return {ast.unparse(node): 1}


def _add(a: Form, b: Form, times: int) -> Form:
    """``a + times * b``, without zero terms."""
    out = dict(a)
    for atom, c in b.items():
        out[atom] = out.get(atom, 0) + times * c
    return {atom: c for atom, c in out.items() if c != 0}


def _render(form: Form) -> ast.expr:
    terms: list[tuple[int, ast.expr]] = []
    for atom, c in form.items():
        if atom == "":
            terms.append((c, ast.Constant(abs(c))))
        else:
            node = ast.parse(atom, mode="eval").body
            terms.append((c, node if abs(c) == 1 else ast.BinOp(ast.Constant(abs(c)), ast.Mult(), node)))
    if not terms:
        return ast.Constant(0)
    c, first = terms[0]
    out = first if c > 0 else ast.UnaryOp(ast.USub(), first)
    for c, node in terms[1:]:
        out = ast.BinOp(out, ast.Add() if c > 0 else ast.Sub(), node)
    return out


__all__ = ["linear", "loop_text"]
