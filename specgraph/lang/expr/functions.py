"""The functions an expression may call (:data:`FUNCTIONS`), checked like the operators: numbers
only where numbers are meant, symbolic dims kept exact where they can be."""

from __future__ import annotations

import ast
import functools
import inspect
import math
import operator
from typing import TYPE_CHECKING, Any, Callable

from ...ir.dims import Sym
from .budget import NODE_WORK
from .values import NEEDS_A_NUMBER, ExprError, ShapeView

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import _Evaluator


def _type_name(v: object) -> str:
    return {Sym: "symbolic dim", ShapeView: "tensor", type(None): "None"}.get(type(v), type(v).__name__)


_PLAIN = {int, float}


def _numbers(fn: str, *values: Any) -> Any:
    """``values`` (the first of them returned), or E504 unless all are plain numbers."""
    if set(map(type, values)) <= _PLAIN:  # told at C speed: a long list must cost what it is charged
        return values[0] if values else None
    for v in values:
        if isinstance(v, Sym):
            raise ExprError("E406", f"{fn}() needs a number, found the symbolic dim {v}", hint=NEEDS_A_NUMBER, dim=v)
        if not isinstance(v, (int, float)):
            raise ExprError("E504", f"{fn}() takes numbers, found {_type_name(v)}")
    return values[0] if values else None


def _extremum(fn: str, pick: Callable, args: tuple) -> Any:
    args = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    if not args:
        raise ExprError("E504", f"{fn}() of an empty sequence")
    _numbers(fn, *args)
    return pick(args)


def _convert(fn: str, to: Callable) -> Callable:
    def apply(ev: _Evaluator, x: Any) -> Any:
        if isinstance(x, Sym) and fn in ("int", "ceil", "floor"):
            return x  # a dim is already an integer
        if isinstance(x, str) and fn in ("int", "float"):
            if len(x) > 100:  # int("9" * 10**5) is quadratic; no real number is this long
                raise ExprError("E505", f"{fn}() of a {len(x)}-character string")
            return to(x)
        return to(_numbers(fn, x))
    return apply


def _round(ev: _Evaluator, x: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(_numbers("round", x))
    if not isinstance(ndigits, int) or abs(ndigits) > 400:  # round(5, -10**18) builds 10**10**18
        raise ExprError("E505", "round() takes an integer ndigits between -400 and 400")
    return round(_numbers("round", x), ndigits)


def _sum(ev: _Evaluator, items: Any, start: Any = 0) -> Any:
    if not isinstance(items, (list, tuple)):
        raise ExprError("E504", f"sum() takes a list or tuple, found {_type_name(items)}")
    kinds = set(map(type, items)) | {type(start)}
    if kinds <= _PLAIN:  # plain numbers: added left to right at C speed (as `a + b + ...`), then checked
        return ev.check(functools.reduce(operator.add, items, start))
    for item in (start, *items):  # numbers only: sum(lists, []) would be quadratic
        if not isinstance(item, (int, float, Sym)):
            raise ExprError("E504", f"sum() adds numbers, found {_type_name(item)}")
    ev.budget.spend(NODE_WORK * len(items))  # symbolic dims added one by one, as `a + b` would be
    for item in items:
        start = ev.check(ev.binop(ast.Add, start, item))
    return start


def _len(ev: _Evaluator, x: Any) -> int:
    if not isinstance(x, (list, tuple, str)):
        hint = "x.rank is the number of dims of a tensor" if isinstance(x, ShapeView) else None
        raise ExprError("E504", f"len() takes a list, tuple or str, found {_type_name(x)}", hint=hint)
    return len(x)


def _make_divisible(ev: _Evaluator, value: Any, divisor: Any = 8, min_value: Any = None) -> Any:
    """MobileNet's channel rounding (torchvision's ``_make_divisible``): the multiple of ``divisor``
    nearest ``value``, at least ``min_value`` (default ``divisor``), never 10% below ``value``."""
    if not isinstance(divisor, int) or divisor <= 0:
        raise ExprError("E504", f"make_divisible() needs a positive integer divisor, found {_type_name(divisor)} "
                        f"{divisor if isinstance(divisor, int) else ''}")
    min_value = divisor if min_value is None else _numbers("make_divisible", min_value)
    new = max(min_value, int(_numbers("make_divisible", value) + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


#: The functions an expression may call: name -> implementation(evaluator, *args, **kwargs).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": lambda ev, *args: _extremum("min", min, args),
    "max": lambda ev, *args: _extremum("max", max, args),
    "abs": lambda ev, x: abs(_numbers("abs", x)),
    "int": _convert("int", int), "float": _convert("float", float), "round": _round,
    "ceil": _convert("ceil", math.ceil), "floor": _convert("floor", math.floor),
    "len": _len, "sum": _sum, "bool": lambda ev, x: ev.truth(x), "make_divisible": _make_divisible,
}
_SIGNATURES = {name: inspect.signature(fn) for name, fn in FUNCTIONS.items()}
