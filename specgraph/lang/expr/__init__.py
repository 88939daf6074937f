"""Expressions inside spec values: ``$name``, ``${...}`` and the ``$$`` escape.

* ``$width``        the value of ``width`` (a parameter, or an input tensor);
* ``${width * 4}``  a Python-syntax expression.  ``${...}`` must be the *whole* value: there is
  no interpolation, so ``"conv${i}"`` is just the literal string ``conv${i}``;
* ``$$text``        the literal string ``$text`` (the escape for a real leading dollar).

Evaluation walks a whitelisted subset of Python's AST -- never ``eval``/``exec``/``compile``,
never sympy -- so a spec can neither reach Python objects nor spend unbounded time or memory:
literals (int, float, bool, str, None), lists, tuples, names; ``+ - * / // % **``, unary
``- + not``, ``and or``, ``== != < <= > >= in not in``, ``a if c else b``; indexing and slicing
of lists, tuples and strings; calls by name of :data:`FUNCTIONS`; attributes of tensors only
(:class:`ShapeView`).  Symbolic dims (:class:`specgraph.dims.Sym`) stay exact under ``+ - *`` and
``//`` by a positive int; ``==``/``!=`` compare canonical forms; ordering them is an error since
the answer would depend on the input size.

Every failure is an :class:`ExprError`: E501 syntax, E502 undefined name, E503 forbidden
construct, E504 evaluation error, E505 limit exceeded (:class:`specgraph.limits.Limits`).
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from ...ir import dims
from ...ir.dims import Sym
from ...ir.tensor_type import TensorType
from ...diagnostics import Location, did_you_mean
from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["FUNCTIONS", "ExprError", "ShapeView", "evaluate", "is_expression", "referenced_names", "value_location"]

# The evaluator recurses about twice per AST level; this keeps it far inside Python's recursion
# limit even where max_expr_nodes is raised.  No real expression nests this deep.
MAX_DEPTH = 200


class ExprError(Exception):
    """An expression that cannot be evaluated.

    ``code``: E501 syntax, E502 undefined name, E503 forbidden construct, E504 evaluation error,
    E505 limit exceeded.  ``offset``: 0-based index within the value string (its ``$`` is 0) of
    the sub-expression at fault, or None.  ``value``: the string that failed.
    """

    def __init__(self, code: str, message: str, hint: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.offset = code, message, hint, offset
        self.value: str | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


@dataclass(frozen=True)
class ShapeView:
    """A tensor as an expression sees it: read-only facts about its type, nothing else.

    ``shape`` (tuple), ``rank``, ``dtype`` (str), ``batch`` = shape[0], ``channels`` = shape[1]
    (rank >= 2), ``height`` = shape[-2] (rank >= 4), ``width`` = shape[-1] (rank >= 3),
    ``features`` = shape[-1].  Dims are ints or :class:`~specgraph.dims.Sym`.
    """

    type: TensorType
    ATTRIBUTES = ("shape", "rank", "dtype", "batch", "channels", "height", "width", "features")

    shape = property(lambda self: tuple(self.type.shape))
    rank = property(lambda self: len(self.type.shape))
    dtype = property(lambda self: self.type.dtype)
    batch = property(lambda self: self._dim(0, 1, "batch"))
    channels = property(lambda self: self._dim(1, 2, "channels"))
    height = property(lambda self: self._dim(-2, 4, "height"))
    width = property(lambda self: self._dim(-1, 3, "width"))
    features = property(lambda self: self._dim(-1, 1, "features"))

    def _dim(self, index: int, min_rank: int, what: str) -> dims.Dim:
        # Refuse rather than guess: the "height" of a [N, C, L] tensor would silently be C.
        if self.rank < min_rank:
            raise ExprError("E504", f"tensor {self.type} has no {what}: that needs rank >= {min_rank}",
                            hint="read a specific dim as x.shape[i]")
        return self.type.shape[index]


# ---------------------------------------------------------------- whitelisted functions

def _type_name(v: object) -> str:
    return {Sym: "symbolic dim", ShapeView: "tensor", type(None): "None"}.get(type(v), type(v).__name__)


def _numbers(fn: str, *values: Any) -> Any:
    """``values`` (the first of them returned), or E504 unless all are plain numbers."""
    for v in values:
        if isinstance(v, Sym):
            raise ExprError("E504", f"{fn}() is not defined for symbolic dim {v}",
                            hint="its value depends on the input size")
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
    for item in (start, *items):  # numbers only: sum(lists, []) would be quadratic
        if not isinstance(item, (int, float, Sym)):
            raise ExprError("E504", f"sum() adds numbers, found {_type_name(item)}")
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

# ---------------------------------------------------------------- syntax whitelist

_BINOPS = {ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
           ast.Div: ("/", operator.truediv), ast.FloorDiv: ("//", operator.floordiv),
           ast.Mod: ("%", operator.mod), ast.Pow: ("**", operator.pow)}
_SYMBOLIC = {ast.Add: dims.add, ast.Sub: dims.sub, ast.Mult: dims.mul}
_BITOPS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.MatMult: "@"}
_COMPARISONS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                ast.In: "in", ast.NotIn: "not", ast.Is: "is", ast.IsNot: "is"}
_ORDER = {ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt),
          ast.GtE: (">=", operator.ge)}
_ALLOWED = {ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
            ast.List, ast.Tuple, ast.Subscript, ast.Slice, ast.Attribute, ast.Call, ast.keyword}
_OPERATOR_NODES = (ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)
_CONSTRUCTS = {ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
               ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
               ast.Lambda: "lambda", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
               ast.Starred: "a starred expression (*x)", ast.NamedExpr: "an assignment (:=)",
               ast.Dict: "a dict literal", ast.Set: "a set literal", ast.Await: "await"}


# Where a problem points: ("at", node) its start, ("attr", node) the attribute's name,
# ("between", left, right, symbol) an operator written between two operands.
Culprit = tuple


def _forbidden(node: ast.AST) -> tuple[str, str | None, Culprit] | None:
    """Why ``node`` may not appear in an expression (message, hint, culprit), or None when it may."""
    at = ("at", node)
    if type(node) not in _ALLOWED:
        return f"{_CONSTRUCTS.get(type(node), type(node).__name__)} is not allowed in expressions", None, at
    if isinstance(node, ast.Constant) and type(node.value) not in (int, float, bool, str, type(None)):
        return f"a {type(node.value).__name__} literal is not allowed in expressions", None, at
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"dunder name '{node.id}' is not allowed in expressions", None, at
    if isinstance(node, ast.Attribute) and node.attr not in ShapeView.ATTRIBUTES:
        return (f"attribute '.{node.attr}' is not allowed; a tensor has " + ", ".join(ShapeView.ATTRIBUTES),
                did_you_mean(node.attr, ShapeView.ATTRIBUTES), ("attr", node))
    if isinstance(node, ast.Call):
        known = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):  # name the worse problem in (lambda: 0)() or a.b()
            return _forbidden(node.func) or (f"only these functions can be called, by name: {known}", None, at)
        if node.func.id not in FUNCTIONS:
            hint = did_you_mean(node.func.id, FUNCTIONS)
            return f"function '{node.func.id}' is not allowed; functions: {known}", hint, at
        unpacked = [k for k in node.keywords if k.arg is None]
        if unpacked:
            return "'**' argument unpacking is not allowed in expressions", None, ("at", unpacked[0])
    if isinstance(node, ast.BinOp) and type(node.op) in _BITOPS:
        symbol = _BITOPS[type(node.op)]
        return f"operator '{symbol}' is not allowed in expressions", None, ("between", node.left, node.right, symbol)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return "operator '~' is not allowed in expressions", None, at
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if isinstance(op, (ast.Is, ast.IsNot)):
                return ("'is' comparisons are not allowed in expressions", "use == or !=",
                        ("between", operands[i], operands[i + 1], "is"))
    return None


def _char_offset(text: str, lineno: int, col: int, col_is_bytes: bool = True) -> int:
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]  # the tokenizer's newlines
    lineno = max(1, min(lineno, len(starts)))
    line = text[starts[lineno - 1]: starts[lineno] if lineno < len(starts) else len(text)]
    if col_is_bytes:  # ast's col_offset counts UTF-8 bytes, SyntaxError.offset characters
        col = len(line.encode("utf-8")[:col].decode("utf-8", "ignore"))
    return starts[lineno - 1] + max(0, min(col, len(line)))


def _parse(value: str, limits: Limits) -> tuple[ast.Expression, str, int]:
    """Parse ``${...}`` into (tree, expression text, offset of that text in ``value``)."""
    if len(value) > limits.max_expr_chars:  # first: the parser itself is a bomb target
        raise ExprError("E505", f"expression is {len(value)} characters long "
                        f"(limit {limits.max_expr_chars})", offset=0)
    if not value.endswith("}"):
        raise ExprError("E501", "an expression '${...}' must end with '}' and be the whole value", offset=0,
                        hint="to write a literal leading '$', start the value with '$$'")
    text = value[2:-1].lstrip()  # the parser would call leading whitespace an indent
    base = len(value) - 1 - len(text)
    if not text.strip():
        raise ExprError("E501", "empty expression '${}'", offset=0)
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences: not ours to report
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="eval"), text, base
    except SyntaxError as e:
        if not e.offset or not e.lineno:  # the parser ran out of text: something is missing at the end
            at = len(value) - 1
        else:
            at = base + _char_offset(text, e.lineno, e.offset - 1, col_is_bytes=False)
        too_deep = "too many nested" in str(e.msg) or "too complex" in str(e.msg)
        raise ExprError("E505" if too_deep else "E501", f"invalid expression: {e.msg}", offset=at) from None
    except ValueError as e:  # null bytes, on Pythons that do not call that a SyntaxError
        raise ExprError("E501", f"invalid expression: {e}", offset=0) from None
    except (RecursionError, MemoryError):  # the C parser's own stack limits
        raise ExprError("E505", "expression is nested too deeply to parse", offset=0) from None


# ---------------------------------------------------------------- evaluation

class _Evaluator:
    """Evaluates one expression tree; every value it produces passes :meth:`check`."""

    def __init__(self, env: Mapping[str, object], limits: Limits, text: str, base: int):
        self.env, self.limits, self.text, self.base = env, limits, text, base
        self._weights: dict[int, tuple[object, int]] = {}  # id -> (the list, kept alive; weight)

    def offset(self, node: ast.AST) -> int | None:
        if not hasattr(node, "lineno"):
            return None
        return self.base + _char_offset(self.text, node.lineno, node.col_offset)

    def end(self, node: ast.AST) -> int | None:
        if getattr(node, "end_lineno", None) is None:
            return None
        return self.base + _char_offset(self.text, node.end_lineno, node.end_col_offset)

    def culprit(self, culprit: Culprit) -> int | None:
        """The offset in the value of what a :data:`Culprit` names, or of its node's start."""
        kind, node = culprit[0], culprit[1]
        if kind == "attr":  # `x . colour`: the name is the last thing the node spans
            end = self.end(node)
            return self.offset(node) if end is None else end - len(node.attr)  # type: ignore[attr-defined]
        if kind == "between":
            return self.operator(node, culprit[2], culprit[3])
        return self.offset(node)

    def operator(self, left: ast.AST, right: ast.AST, symbol: str) -> int | None:
        """The offset of ``symbol`` written between two operands; only spaces and parentheses
        can sit there besides it, so the first match is the operator."""
        a, b = self.end(left), self.offset(right)
        if a is None or b is None:
            return self.offset(left)
        found = self.text.find(symbol, a - self.base, b - self.base)
        return self.offset(left) if found < 0 else self.base + found

    @contextmanager
    def blame(self, offset: int | None) -> Iterator[None]:
        """Errors raised inside point at ``offset`` unless they already point somewhere."""
        try:
            yield
        except ExprError as e:
            e.offset = offset if e.offset is None else e.offset
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
            raise ExprError("E504", str(e) or type(e).__name__, offset=offset) from e

    def validate(self, tree: ast.Expression) -> None:
        """Reject forbidden constructs anywhere (even in branches never taken) and oversize trees."""
        count, stack = 0, [(tree.body, 1)]
        while stack:  # iterative: a deep tree must not overflow the stack while being measured
            node, depth = stack.pop()
            count += 1
            if count > self.limits.max_expr_nodes:
                raise ExprError("E505", f"expression has more than {self.limits.max_expr_nodes} nodes", offset=0)
            if depth > MAX_DEPTH:
                raise ExprError("E505", f"expression nests deeper than {MAX_DEPTH}", offset=self.offset(node))
            problem = _forbidden(node)
            if problem:
                raise ExprError("E503", problem[0], hint=problem[1], offset=self.culprit(problem[2]))
            children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, _OPERATOR_NODES)]
            stack.extend((c, depth + 1) for c in reversed(children))  # report the leftmost first

    def eval(self, node: ast.AST) -> Any:
        handler = getattr(self, "eval_" + type(node).__name__, None)
        try:
            if handler is None:  # after validate(), only a Slice outside [...] gets here
                raise ExprError("E503", "multi-dimensional indexing is not allowed in expressions")
            return self.check(handler(node))
        except ExprError as e:
            e.offset = self.offset(node) if e.offset is None else e.offset  # the innermost node
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
            raise ExprError("E504", str(e) or type(e).__name__, offset=self.offset(node)) from e

    def check(self, v: Any) -> Any:
        """``v``, after enforcing the limits: int bits, sequence size, finite real numbers."""
        lim = self.limits
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > lim.max_int_bits:
            raise ExprError("E505", f"integer result has {v.bit_length()} bits (limit {lim.max_int_bits})")
        if isinstance(v, float) and not math.isfinite(v) or isinstance(v, complex):
            raise ExprError("E504", f"result is not a finite real number ({v})")
        if isinstance(v, (str, list, tuple)) and self.weight(v) > lim.max_sequence_len:
            raise ExprError("E505", f"{_type_name(v)} result is longer than {lim.max_sequence_len}")
        if isinstance(v, Sym) and (len(str(v)) > lim.max_sequence_len or any(
                i.bit_length() > lim.max_int_bits for i in (v.const, v.div, *(c for _, c in v.terms)))):
            raise ExprError("E505", "symbolic dim grew past the integer limit")
        return v

    def weight(self, v: object) -> int:
        """String length, or list slots counting nested lists and strings.  Bounding it bounds
        the cost of == and ``in`` too: ``[[0]*99999]*99999`` is small in memory, not to compare."""
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            return len(v) if isinstance(v, str) else 1
        if id(v) in self._weights and self._weights[id(v)][0] is v:
            return self._weights[id(v)][1]
        total = 0
        for item in v:
            total += max(1, self.weight(item))  # an empty item still takes a slot
            if total > self.limits.max_sequence_len:
                break
        self._weights[id(v)] = (v, total)
        return total

    def truth(self, v: object) -> bool:
        if isinstance(v, Sym):
            raise ExprError("E504", f"the truth of symbolic dim {v} depends on the input size")
        if isinstance(v, ShapeView):
            raise ExprError("E504", "a tensor has no truth value", hint="test an attribute, e.g. x.rank == 4")
        return bool(v)

    # --- one method per allowed node type

    def eval_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def eval_Name(self, node: ast.Name) -> Any:
        return _lookup(node.id, self.env, wrap=True)

    def eval_List(self, node: ast.List) -> list:
        return [self.eval(e) for e in node.elts]

    def eval_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.eval(e) for e in node.elts)

    def truth_of(self, node: ast.AST, value: Any) -> bool:
        with self.blame(self.offset(node)):  # "a tensor has no truth value" points at the tensor
            return self.truth(value)

    def eval_IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.truth_of(node.test, self.eval(node.test)) else self.eval(node.orelse)

    def eval_BoolOp(self, node: ast.BoolOp) -> Any:
        stop_when = isinstance(node.op, ast.Or)  # `or` stops at a true value, `and` at a false one
        for operand in node.values:
            result = self.eval(operand)
            if self.truth_of(operand, result) == stop_when:
                break
        return result

    def eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not self.truth(v)
        if not isinstance(v, (int, float, Sym)):
            raise ExprError("E504", f"unary operator needs a number, found {_type_name(v)}")
        return v if isinstance(node.op, ast.UAdd) else dims.mul(v, -1) if isinstance(v, Sym) else -v

    def eval_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        op = type(node.op)
        with self.blame(self.operator(node.left, node.right, _BINOPS[op][0])):  # like Python's `~~^~~`
            return self.binop(op, left, right)

    def binop(self, op: type, a: Any, b: Any) -> Any:
        symbol, apply = _BINOPS[op]
        if isinstance(a, Sym) or isinstance(b, Sym):
            return self.symbolic(op, a, b)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return self.arithmetic(op, a, b)
        sequences = (str, list, tuple)
        if op is ast.Mult and isinstance(a, int) and isinstance(b, sequences):
            a, b = b, a
        if op is ast.Add and type(a) is type(b) and isinstance(a, sequences) or (
                op is ast.Mult and isinstance(a, sequences) and isinstance(b, int)):
            size = self.weight(a) + self.weight(b) if op is ast.Add else max(1, self.weight(a)) * b
            if size > self.limits.max_sequence_len:  # before building it: 'a' * 10**10
                raise ExprError("E505", f"'{symbol}' would build a {_type_name(a)} of size {size} "
                                f"(limit {self.limits.max_sequence_len})")
            return apply(a, b)
        raise ExprError("E504", f"cannot apply '{symbol}' to {_type_name(a)} and {_type_name(b)}")

    def arithmetic(self, op: type, a: Any, b: Any) -> Any:
        bits, (symbol, apply) = self.limits.max_int_bits, _BINOPS[op]
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and b == 0:
            raise ExprError("E504", "division by zero")
        ints = isinstance(a, int) and isinstance(b, int)
        # Refuse oversize ints before computing them: |a*b| has >= bitlen(a)+bitlen(b)-1 bits and
        # |a**b| >= b*(bitlen(a)-1)+1, which is how 9**9**9**9 fails in microseconds.
        if ints and op is ast.Mult and a.bit_length() + b.bit_length() - 1 > bits or (
                ints and op is ast.Pow and b > 0 and abs(a) > 1 and b * (abs(a).bit_length() - 1) + 1 > bits):
            raise ExprError("E505", f"integer result of '{symbol}' would exceed {bits} bits")
        if op is ast.Pow and a < 0 and isinstance(b, float) and not b.is_integer():
            raise ExprError("E504", "a negative number to a fractional power is not real")
        try:
            return apply(a, b)
        except OverflowError:
            raise ExprError("E504", f"'{symbol}' overflows a float") from None

    def symbolic(self, op: type, a: Any, b: Any) -> Any:
        for v in (a, b):
            if not isinstance(v, (int, Sym)):
                raise ExprError("E504", f"symbolic dim arithmetic needs integers, found {_type_name(v)}")
        if op in _SYMBOLIC:
            return _SYMBOLIC[op](a, b)
        if op is ast.FloorDiv and isinstance(b, int) and b > 0:
            return dims.floordiv(a, b)
        if op is ast.FloorDiv:
            raise ExprError("E504", "a symbolic dim can only be floor-divided by a positive integer")
        raise ExprError("E504", f"'{_BINOPS[op][0]}' is not defined for symbolic dims",
                        hint="use + - * and // (ceiling division: (h + s - 1) // s)")

    def eval_Compare(self, node: ast.Compare) -> bool:
        left, left_node = self.eval(node.left), node.left
        for op, comparator in zip(node.ops, node.comparators):  # chained, lazily, like Python
            right = self.eval(comparator)
            symbol = _COMPARISONS[type(op)]
            with self.blame(self.operator(left_node, comparator, symbol)):
                if not self.compare(op, left, right):
                    return False
            left, left_node = right, comparator
        return True

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> bool:
        if isinstance(op, (ast.Eq, ast.NotEq)):
            return (a == b) == isinstance(op, ast.Eq)  # Syms are frozen dataclasses in canonical form
        if isinstance(op, (ast.In, ast.NotIn)):
            if not (isinstance(b, (list, tuple)) or isinstance(b, str) and isinstance(a, str)):
                raise ExprError("E504", f"cannot test {_type_name(a)} 'in' {_type_name(b)}")
            return (a in b) == isinstance(op, ast.In)
        symbol, apply = _ORDER[type(op)]
        if isinstance(a, Sym) or isinstance(b, Sym):
            raise ExprError("E504", f"cannot compare symbolic dim {a if isinstance(a, Sym) else b} with "
                            f"'{symbol}': the answer depends on the input size",
                            hint="compare with == or !=, or give the input a concrete size")
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                or type(a) is type(b) and isinstance(a, (str, list, tuple))):
            raise ExprError("E504", f"cannot order {_type_name(a)} and {_type_name(b)}")
        return apply(a, b)

    def eval_Subscript(self, node: ast.Subscript) -> Any:
        target = self.eval(node.value)
        if not isinstance(target, (list, tuple, str)):
            hint = "index its shape: x.shape[i]" if isinstance(target, ShapeView) else None
            raise ExprError("E504", f"cannot index {_type_name(target)}", hint=hint)
        if isinstance(node.slice, ast.Slice):
            parts = [p if p is None else self.index(self.eval(p))
                     for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if parts[2] == 0:
                raise ExprError("E504", "slice step cannot be zero")
            return target[slice(*parts)]
        with self.blame(self.offset(node.slice)):  # "index 5 is out of range" points at the 5
            i = self.index(self.eval(node.slice))
            if not -len(target) <= i < len(target):
                raise ExprError("E504", f"index {i} is out of range for a {_type_name(target)} "
                                f"of length {len(target)}")
        return target[i]

    def index(self, v: object) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ExprError("E504", f"an index must be an integer, found {_type_name(v)}")
        return v

    def eval_Attribute(self, node: ast.Attribute) -> Any:
        target = self.eval(node.value)
        with self.blame(self.culprit(("attr", node))):
            if not isinstance(target, ShapeView):  # the name itself was whitelisted by validate()
                raise ExprError("E503", f"attributes are only allowed on tensors, not on {_type_name(target)}")
            return getattr(target, node.attr)

    def eval_Call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]  # validate() let only FUNCTIONS through
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords}
        try:
            _SIGNATURES[name].bind(self, *args, **kwargs)  # a clean message for a wrong call
        except TypeError as e:
            raise ExprError("E504", f"{name}(): {e}") from None
        return FUNCTIONS[name](self, *args, **kwargs)


# ---------------------------------------------------------------- public API

def _lookup(name: str, env: Mapping[str, object], wrap: bool) -> Any:
    if name in env:
        value = env[name]
        return ShapeView(value) if wrap and isinstance(value, TensorType) else value
    if name in FUNCTIONS:
        raise ExprError("E503", f"function '{name}' can only be called, e.g. {name}(x)")
    raise ExprError("E502", f"undefined name '{name}'", hint=did_you_mean(name, env))


def is_expression(value: object) -> bool:
    """True for a string :func:`evaluate` treats as an expression: ``$...`` but not ``$$...``."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def evaluate(value: object, env: Mapping[str, object], limits: Limits = DEFAULT_LIMITS) -> object:
    """The value of ``value`` in ``env``: ``$name`` -> ``env[name]``, ``${expr}`` -> its result,
    ``$$text`` -> ``"$text"``; lists, tuples and dict values element-wise; anything else as is.

    Inside ``${...}`` a :class:`~specgraph.ir.tensor_type.TensorType` in ``env`` is seen as a
    :class:`ShapeView`.  Raises :class:`ExprError`, and nothing else.
    """
    if isinstance(value, (list, tuple)):
        return type(value)(evaluate(v, env, limits) for v in value)
    if isinstance(value, dict):
        return {k: evaluate(v, env, limits) for k, v in value.items()}
    if not is_expression(value):
        return value[1:] if isinstance(value, str) and value.startswith("$$") else value
    assert isinstance(value, str)
    try:
        if not value.startswith("${"):
            name = value[1:]
            if not name.isidentifier():
                raise ExprError("E501", f"'{value[:40]}' is not a name", offset=1,
                                hint="write an expression as ${...}, a literal leading '$' as '$$'")
            if name.startswith("__"):
                raise ExprError("E503", f"dunder name '{name}' is not allowed in expressions", offset=1)
            try:
                return _lookup(name, env, wrap=False)
            except ExprError as e:
                e.offset = 1
                raise
        tree, text, base = _parse(value, limits)
        evaluator = _Evaluator(env, limits, text, base)
        evaluator.validate(tree)
        try:
            return evaluator.eval(tree.body)
        except (RecursionError, MemoryError):  # a safety net: validate() should prevent both
            raise ExprError("E505", "expression is too large to evaluate", offset=0) from None
    except ExprError as e:
        e.value = value
        raise


def referenced_names(value: object, limits: Limits = DEFAULT_LIMITS) -> set[str]:
    """The free names an expression (or nested lists/dicts of them) reads, for dependency order.

    Names called as functions are not references.  A malformed expression references nothing
    here; :func:`evaluate` reports it.
    """
    if isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        return set().union(*(referenced_names(v, limits) for v in items))
    if not is_expression(value):
        return set()
    assert isinstance(value, str)
    if not value.startswith("${"):
        return {value[1:]} if value[1:].isidentifier() else set()
    try:
        tree = _parse(value, limits)[0]
    except ExprError:
        return set()
    nodes = list(ast.walk(tree))
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    return {n.id for n in nodes if isinstance(n, ast.Name) and id(n) not in called}


# ---------------------------------------------------------------- from a value offset to the file

def value_location(start: Location, lines: Sequence[str], value: object, offset: int | None) -> Location:
    """Where character ``offset`` of the scalar ``value`` is in the spec text, given ``start``, the
    location of the scalar's first character (its quote or block indicator, if any), and the
    text's ``lines``.  ``start`` itself wherever the text does not spell ``value`` literally up
    to that character -- an escape sequence, a value inside a list, a YAML style we do not
    follow -- so that the caret is never misplaced, only less precise."""
    if offset is None or not isinstance(value, str) or not 0 <= offset < len(value):
        return start
    try:
        found = _spell(lines, start.line - 1, start.col - 1, value, offset)
    except IndexError:  # the text ended first
        found = None
    if found is None:
        return start
    line, col = found
    return Location(start.file, line + 1, col + 1, lines[line])


def _spell(lines: Sequence[str], row: int, col: int, value: str, offset: int) -> tuple[int, int] | None:
    """0-based (row, col) of ``value[offset]``, reading the scalar that starts at (row, col)."""
    style = lines[row][col:col + 1]
    if style in ("|", ">"):  # a block scalar: followed only on its first content line
        row += 1
        while not lines[row].strip():
            row += 1
        text = lines[row].lstrip(" ")
        col = len(lines[row]) - len(text)
        return (row, col + offset) if text[:offset + 1] == value[:offset + 1] else None
    quote = style if style in ("'", '"') else ""
    col += len(quote)
    k = 0
    while True:
        line = lines[row]
        if not line[col:].strip(" \t"):  # a line break, folded with the spaces around it
            breaks = 0
            while True:
                row, breaks = row + 1, breaks + 1
                stripped = lines[row].lstrip(" \t")
                if stripped:
                    break
            folded = " " if breaks == 1 else "\n" * (breaks - 1)
            if value[k:k + len(folded)] != folded or k + len(folded) > offset:
                return None
            k, col = k + len(folded), len(lines[row]) - len(stripped)
            continue
        char = line[col]
        if quote == '"' and char == "\\" or quote == "'" and char == "'" and line[col + 1:col + 2] != "'":
            return None  # an escape sequence, or the end of the scalar
        if char != value[k]:
            return None
        if k == offset:
            return row, col
        k, col = k + 1, col + (2 if quote == "'" and char == "'" else 1)
