"""Iteration in expressions: the list comprehension, and the functions that make or walk
sequences (``range zip enumerate all any``).

``[f(c) for c in stages if c[1] > 1]`` maps a list in one line where a table would otherwise be
copied by hand: one ``for`` (a name or a tuple of names), any ``if``s, a list as the result.  A
generator expression is accepted as a call's argument (``all(d > 0 for d in depths)``) and is
evaluated the same way, into a list: there are no lazy values.

Nothing here is unbounded.  ``range`` refuses a length past ``max_sequence_len`` before making
anything; each step of a comprehension costs :data:`~specgraph.lang.expr.budget.NODE_WORK` a
name it binds besides the nodes it evaluates, and its list is weighed as it grows, so
``[[0] * 99999 for i in range(99999)]`` stops at its second item, not at its end.
"""

from __future__ import annotations

import ast
from collections import ChainMap
from typing import TYPE_CHECKING, Any

from .budget import NODE_WORK
from .values import ExprError, ShapeView
from .values import type_name as _kind

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import _Evaluator

_ITERABLE = (list, tuple, str)
_PLAIN = {int, float, bool, str}
_TARGET_NODES = (ast.Name, ast.Tuple, ast.List, ast.expr_context)


def comprehension_problem(node: ast.ListComp | ast.GeneratorExp) -> tuple[str, str | None, ast.AST] | None:
    """Why a comprehension may not be evaluated (message, hint, culprit), or None."""
    if len(node.generators) > 1:
        return ("a second 'for' in a comprehension is not allowed", "nest comprehensions: [[f(a, b) for b in bs] for a in as_]",
                node.generators[1].target)
    loop = node.generators[0]
    if loop.is_async:
        return "'async for' is not allowed in expressions", None, loop.target
    if not all(isinstance(n, _TARGET_NODES) for n in ast.walk(loop.target)):
        return "a comprehension's variable is a name or a tuple of names (for a, b in ...)", None, loop.target
    return None


def evaluate_comprehension(ev: _Evaluator, node: ast.ListComp | ast.GeneratorExp) -> list:
    """The list ``[node.elt for target in iter if ifs]``, its variables in a scope of their own
    over the expression's names (they shadow a param of the same name, as in Python)."""
    loop = node.generators[0]
    items = ev.eval(loop.iter)
    if not isinstance(items, _ITERABLE):
        hint = "iterate over its shape: x.shape" if isinstance(items, ShapeView) else None
        raise ExprError("E504", f"a comprehension iterates over a list, tuple or str, found {_kind(items)}",
                        hint=hint, offset=ev.offset(loop.iter))
    # a step binds its names (a tuple target unpacks in Python, name by name) and keeps its value
    step = NODE_WORK * sum(1 for n in ast.walk(loop.target) if isinstance(n, (ast.Name, ast.Tuple, ast.List)))
    outer, scope = ev.env, {}
    ev.env = ChainMap(scope, outer)
    result: list = []
    weight, limit = 0, ev.limits.max_sequence_len
    try:
        for i, item in enumerate(items):
            ev.budget.spend(step)
            _bind(ev, loop.target, item, scope, i)
            if loop.ifs and not _kept(ev, loop.ifs):
                continue
            value = ev.eval(node.elt)
            weight += max(1, ev.weight(value))
            if weight > limit:  # before the next step builds more
                raise ExprError("E505", f"the comprehension's list grows past {limit} items",
                                offset=ev.offset(node))
            result.append(value)
    finally:
        ev.env = outer
    return result


def _kept(ev: _Evaluator, tests: list[ast.expr]) -> bool:
    """Whether every ``if`` of a step holds (a comparison's bool is taken as is: the common case)."""
    for test in tests:
        value = ev.eval(test)
        if not (value if type(value) is bool else ev.truth_of(test, value)):
            return False
    return True


def _bind(ev: _Evaluator, target: ast.AST, value: Any, scope: dict, item: int) -> None:
    """Bind ``value``, item ``item`` of the list iterated over, to the names of ``target``."""
    if isinstance(target, ast.Name):
        scope[target.id] = value
        return
    names = target.elts  # type: ignore[attr-defined]  # a Tuple or List: comprehension_problem() saw to it
    if not isinstance(value, _ITERABLE) or len(value) != len(names):
        found = f"a {_kind(value)} of {len(value)}" if isinstance(value, _ITERABLE) else f"the {_kind(value)} {value!r}"
        raise ExprError("E504", f"item {item} is {found}, which does not unpack into {ast.unparse(target)}",
                        offset=ev.offset(target))
    for name, part in zip(names, value):
        _bind(ev, name, part, scope, item)


# ------------------------------------------------------------------ functions over sequences

def _integer(fn: str, v: object) -> int:
    if type(v) is not int:
        raise ExprError("E504", f"{fn}() takes integers, found {_kind(v)}")
    return v


def _range(ev: _Evaluator, *args: Any) -> list[int]:
    if not 1 <= len(args) <= 3:
        raise ExprError("E504", f"range() takes 1 to 3 integers (stop; start, stop; start, stop, step), "
                        f"found {len(args)}")
    bounds = [_integer("range", a) for a in args]
    if len(bounds) == 3 and bounds[2] == 0:
        raise ExprError("E504", "range() step cannot be zero")
    steps = range(*bounds)
    if len(steps) > ev.limits.max_sequence_len:  # before making it: range(10**18)
        raise ExprError("E505", f"range() would make {len(steps)} items (limit {ev.limits.max_sequence_len})")
    ev.budget.spend(len(steps))
    return list(steps)


def _sequences(fn: str, *values: Any) -> None:
    for v in values:
        if not isinstance(v, _ITERABLE):
            hint = "iterate over its shape: x.shape" if isinstance(v, ShapeView) else None
            raise ExprError("E504", f"{fn}() takes lists, tuples or strs, found {_kind(v)}", hint=hint)


def _pairs(ev: _Evaluator, fn: str, length: int, width: int) -> None:
    """Refuse, before making them, ``length`` tuples of ``width`` that pass the size limit; spend them."""
    if length * width > ev.limits.max_sequence_len:
        raise ExprError("E505", f"{fn}() would make {length} tuples of {width} (limit "
                        f"{ev.limits.max_sequence_len} items)")
    ev.budget.spend(length * (width + NODE_WORK))  # each tuple is weighed in Python by check(), item by item


def _zip(ev: _Evaluator, first: Any, *rest: Any) -> list[tuple]:
    _sequences("zip", first, *rest)
    _pairs(ev, "zip", min(len(s) for s in (first, *rest)), 1 + len(rest))
    return list(zip(first, *rest))


def _enumerate(ev: _Evaluator, items: Any, start: Any = 0) -> list[tuple]:
    _sequences("enumerate", items)
    _pairs(ev, "enumerate", len(items), 2)
    return list(enumerate(items, _integer("enumerate", start)))


def _truths(ev: _Evaluator, fn: str, items: Any) -> Any:
    _sequences(fn, items)
    if set(map(type, items)) <= _PLAIN:  # told at C speed, and their truth too
        return items
    ev.budget.spend(NODE_WORK // 10 * len(items))
    return [ev.truth(v) for v in items]  # a symbolic dim's truth depends on the input: E406


SEQUENCE_FUNCTIONS = {
    "range": _range, "zip": _zip, "enumerate": _enumerate,
    "all": lambda ev, items: all(_truths(ev, "all", items)),
    "any": lambda ev, items: any(_truths(ev, "any", items)),
}
# functions that walk a list argument whole: the call spends its length
WALKING = frozenset({"min", "max", "sum", "all", "any"})

__all__ = ["SEQUENCE_FUNCTIONS", "WALKING", "comprehension_problem", "evaluate_comprehension"]
