"""Expressions inside spec values: ``$name``, ``${...}`` and the ``$$`` escape.

A spec value that is a string starting with ``$`` is an expression:

* ``$width``        the value of ``width`` (a parameter, or an input tensor);
* ``${width * 4}``  a Python-syntax expression.  ``${...}`` must be the *whole* value: there is
  no interpolation, so ``"conv${i}"`` is just the literal string ``conv${i}``;
* ``$$text``        the literal string ``$text`` (the escape for a real leading dollar).

Evaluation walks a whitelisted subset of Python's AST -- never ``eval``/``exec``/``compile``,
never sympy -- so a spec can neither reach Python objects nor spend unbounded time or memory:

* literals (int, float, bool, str, None), list and tuple displays, names from the environment;
* ``+ - * / // % **``, unary ``- + not``, ``and or``, ``== != < <= > >= in not in``,
  ``a if c else b``, indexing and slicing of lists, tuples and strings;
* calls, by plain name, of the functions in :data:`FUNCTIONS`;
* attributes only on tensors (see :class:`ShapeView`).

Tensor dims may be symbolic (:class:`specgraph.dims.Sym`): ``+ - *`` and ``//`` by a positive
int stay exact through :mod:`specgraph.dims`, ``==``/``!=`` compare canonical forms, and an
ordering on a symbolic dim is an error because its answer would depend on the input size.

Every failure is an :class:`ExprError`: E501 syntax, E502 undefined name, E503 forbidden
construct, E504 evaluation error, E505 limit exceeded (:class:`specgraph.limits.Limits`).
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
import warnings
from typing import Any, Callable, Mapping

from . import dims
from .dims import Sym, TensorType
from .errors import did_you_mean
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["FUNCTIONS", "ExprError", "ShapeView", "evaluate", "is_expression", "referenced_names"]

# The evaluator recurses about twice per AST level; this bound keeps it far inside Python's
# recursion limit even when max_expr_nodes is raised.  No real expression nests this deep.
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


class ShapeView:
    """A tensor as an expression sees it: read-only facts about its type, nothing else.

    ``shape`` (tuple), ``rank``, ``dtype`` (str), ``batch`` = shape[0], ``channels`` = shape[1]
    (rank >= 2), ``height`` = shape[-2] (rank >= 4), ``width`` = shape[-1] (rank >= 3),
    ``features`` = shape[-1].  Dims are ints or :class:`~specgraph.dims.Sym`.
    """

    ATTRIBUTES = ("shape", "rank", "dtype", "batch", "channels", "height", "width", "features")
    __slots__ = ("_type",)

    def __init__(self, type: TensorType):
        self._type = type

    def __repr__(self) -> str:
        return f"ShapeView({self._type} {self._type.dtype})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeView) and other._type == self._type

    def __hash__(self) -> int:
        return hash(self._type)

    shape = property(lambda self: tuple(self._type.shape))
    rank = property(lambda self: len(self._type.shape))
    dtype = property(lambda self: self._type.dtype)
    batch = property(lambda self: self._dim(0, 1, "batch"))
    channels = property(lambda self: self._dim(1, 2, "channels"))
    height = property(lambda self: self._dim(-2, 4, "height"))
    width = property(lambda self: self._dim(-1, 3, "width"))
    features = property(lambda self: self._dim(-1, 1, "features"))

    def _dim(self, index: int, min_rank: int, what: str) -> dims.Dim:
        # Refuse rather than guess: the "height" of a [N, C, L] tensor would silently be C.
        if self.rank < min_rank:
            raise ExprError("E504", f"tensor {self._type} has no {what}: that needs rank >= {min_rank}",
                            hint="read a specific dim as x.shape[i]")
        return self._type.shape[index]


# ---------------------------------------------------------------- whitelisted functions

def _is_number(v: object) -> bool:
    return isinstance(v, (int, float))


def _type_name(v: object) -> str:
    names = {Sym: "symbolic dim", ShapeView: "tensor", type(None): "None"}
    return names.get(type(v), type(v).__name__)


def _need_numbers(fn: str, *values: object) -> None:
    for v in values:
        if isinstance(v, Sym):
            raise ExprError("E504", f"{fn}() is not defined for symbolic dim {v}",
                            hint="its value depends on the input size")
        if not _is_number(v):
            raise ExprError("E504", f"{fn}() takes numbers, found {_type_name(v)}")


def _extremum(fn: str, pick: Callable, args: tuple) -> Any:
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    if not args:
        raise ExprError("E504", f"{fn}() of an empty sequence")
    _need_numbers(fn, *args)
    return pick(args)


def _from_text(fn: str, convert: Callable, x: object) -> Any:
    if isinstance(x, str):
        if len(x) > 100:  # int("9" * 10**5) is quadratic; no real number is this long
            raise ExprError("E505", f"{fn}() of a {len(x)}-character string")
        return convert(x)
    _need_numbers(fn, x)
    return convert(x)


def _round(ev: _Evaluator, x: object, ndigits: object = None) -> Any:
    _need_numbers("round", x)
    if ndigits is None:
        return round(x)  # type: ignore[call-overload]
    if not isinstance(ndigits, int) or abs(ndigits) > 400:  # round(5, -10**18) builds 10**10**18
        raise ExprError("E505", "round() takes an integer ndigits between -400 and 400")
    return round(x, ndigits)  # type: ignore[call-overload]


def _sum(ev: _Evaluator, items: object, start: object = 0) -> Any:
    if not isinstance(items, (list, tuple)):
        raise ExprError("E504", f"sum() takes a list or tuple, found {_type_name(items)}")
    total = start
    for item in (start, *items):  # numbers only: sum(lists, []) would be quadratic
        if not isinstance(item, (int, float, Sym)):
            raise ExprError("E504", f"sum() adds numbers, found {_type_name(item)}")
    for item in items:
        total = ev.check(ev.binop(ast.Add, total, item))
    return total


def _len(ev: _Evaluator, x: object) -> int:
    if not isinstance(x, (list, tuple, str)):
        hint = "use x.rank for the number of dims of a tensor" if isinstance(x, ShapeView) else None
        raise ExprError("E504", f"len() takes a list, tuple or str, found {_type_name(x)}", hint=hint)
    return len(x)


def _make_divisible(ev: _Evaluator, value: object, divisor: object = 8, min_value: object = None) -> Any:
    """MobileNet's channel rounding (as in torchvision's ``_make_divisible``): the multiple of
    ``divisor`` nearest ``value``, at least ``min_value`` (default ``divisor``), and never more
    than 10% below ``value``."""
    _need_numbers("make_divisible", value)
    if not isinstance(divisor, int) or divisor <= 0:
        raise ExprError("E504", f"make_divisible() needs a positive integer divisor, found {divisor!r}")
    if min_value is None:
        min_value = divisor
    _need_numbers("make_divisible", min_value)
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)  # type: ignore[operator]
    return new + divisor if new < 0.9 * value else new  # type: ignore[operator]


def _rounding(fn: str, to_int: Callable) -> Callable:
    def apply(ev: _Evaluator, x: object) -> Any:
        if isinstance(x, Sym):  # a dim is already an integer
            return x
        _need_numbers(fn, x)
        return to_int(x)
    return apply


#: The functions an expression may call: name -> implementation(evaluator, *args, **kwargs).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": lambda ev, *args: _extremum("min", min, args),
    "max": lambda ev, *args: _extremum("max", max, args),
    "abs": lambda ev, x: _need_numbers("abs", x) or abs(x),  # type: ignore[func-returns-value]
    "int": lambda ev, x: x if isinstance(x, Sym) else _from_text("int", int, x),
    "float": lambda ev, x: _from_text("float", float, x),
    "round": _round,
    "ceil": _rounding("ceil", math.ceil),
    "floor": _rounding("floor", math.floor),
    "len": _len,
    "sum": _sum,
    "bool": lambda ev, x: ev.truth(x),
    "make_divisible": _make_divisible,
}
_SIGNATURES = {name: inspect.signature(fn) for name, fn in FUNCTIONS.items()}

# ---------------------------------------------------------------- syntax whitelist

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_BITOPS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
           ast.BitAnd: "&", ast.MatMult: "@"}
_ORDER = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ORDER_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ALLOWED = {ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
            ast.List, ast.Tuple, ast.Subscript, ast.Slice, ast.Attribute, ast.Call, ast.keyword}
_OPERATOR_NODES = (ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)
_CONSTRUCTS = {ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
               ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
               ast.Lambda: "lambda", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
               ast.Starred: "a starred expression (*x)", ast.NamedExpr: "an assignment (:=)",
               ast.Dict: "a dict literal", ast.Set: "a set literal", ast.Await: "await",
               ast.Yield: "yield", ast.YieldFrom: "yield"}


def _forbidden(node: ast.AST) -> tuple[str, str | None] | None:
    """Why ``node`` may not appear in an expression (message, hint), or None when it may."""
    kind = type(node)
    if kind not in _ALLOWED:
        return f"{_CONSTRUCTS.get(kind, kind.__name__)} is not allowed in expressions", None
    if isinstance(node, ast.Constant) and type(node.value) not in (int, float, bool, str, type(None)):
        return f"a {type(node.value).__name__} literal is not allowed in expressions", None
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"dunder name '{node.id}' is not allowed in expressions", None
    if isinstance(node, ast.Attribute) and node.attr not in ShapeView.ATTRIBUTES:
        return (f"attribute '.{node.attr}' is not allowed; a tensor has "
                + ", ".join(ShapeView.ATTRIBUTES), did_you_mean(node.attr, ShapeView.ATTRIBUTES))
    if isinstance(node, ast.Call):
        known = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):  # name the worse problem in (lambda: 0)() or a.b()
            return _forbidden(node.func) or (f"only these functions can be called, by name: {known}", None)
        if node.func.id not in FUNCTIONS:
            return f"function '{node.func.id}' is not allowed; functions: {known}", did_you_mean(node.func.id, FUNCTIONS)
        if any(k.arg is None for k in node.keywords):
            return "'**' argument unpacking is not allowed in expressions", None
    if isinstance(node, ast.BinOp) and type(node.op) in _BITOPS:
        return f"operator '{_BITOPS[type(node.op)]}' is not allowed in expressions", None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return "operator '~' is not allowed in expressions", None
    if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
        return "'is' comparisons are not allowed in expressions", "use == or !="
    return None


def _char_offset(text: str, lineno: int, col: int, col_is_bytes: bool = True) -> int:
    lines = text.split("\n")
    lineno = max(1, min(lineno, len(lines)))
    line = lines[lineno - 1]
    if col_is_bytes:  # ast col_offset counts UTF-8 bytes
        col = len(line.encode("utf-8")[:col].decode("utf-8", "ignore"))
    return sum(len(l) + 1 for l in lines[: lineno - 1]) + max(0, min(col, len(line)))


def _parse(value: str, limits: Limits) -> tuple[ast.Expression, str, int]:
    """Parse ``${...}`` into (tree, expression text, offset of that text in ``value``)."""
    if len(value) > limits.max_expr_chars:  # before parsing: the parser is the first bomb target
        raise ExprError("E505", f"expression is {len(value)} characters long (limit {limits.max_expr_chars})", offset=0)
    if not value.endswith("}"):
        raise ExprError("E501", "an expression '${...}' must end with '}' and be the whole value", offset=0,
                        hint="to write a literal leading '$', start the value with '$$'")
    inner = value[2:-1]
    text = inner.lstrip()  # the parser rejects leading whitespace as an indent
    base = 2 + len(inner) - len(text)
    if not text.strip():
        raise ExprError("E501", "empty expression '${}'", offset=0)
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences: not ours to report
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        at = base + _char_offset(text, e.lineno or 1, (e.offset or 1) - 1, col_is_bytes=False)
        if "too many nested" in str(e.msg) or "too complex" in str(e.msg):
            raise ExprError("E505", f"expression is nested too deeply: {e.msg}", offset=at) from None
        raise ExprError("E501", f"invalid expression syntax: {e.msg}", offset=at) from None
    except ValueError as e:  # null bytes, on Pythons that do not call that a SyntaxError
        raise ExprError("E501", f"invalid expression: {e}", offset=0) from None
    except (RecursionError, MemoryError):  # the C parser's own stack limits
        raise ExprError("E505", "expression is nested too deeply to parse", offset=0) from None
    return tree, text, base  # type: ignore[return-value]


# ---------------------------------------------------------------- evaluation

class _Evaluator:
    """Evaluates one validated expression tree; every value produced passes :meth:`check`."""

    def __init__(self, env: Mapping[str, object], limits: Limits, text: str, base: int):
        self.env, self.limits, self.text, self.base = env, limits, text, base
        self._weights: dict[int, tuple[object, int]] = {}  # id -> (list kept alive, weight)

    def offset(self, node: ast.AST) -> int | None:
        if not hasattr(node, "lineno"):
            return None
        return self.base + _char_offset(self.text, node.lineno, node.col_offset)

    def validate(self, tree: ast.Expression) -> None:
        """Reject forbidden constructs anywhere (even in branches never taken) and oversize trees."""
        count, stack = 0, [(tree.body, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > self.limits.max_expr_nodes:
                raise ExprError("E505", f"expression has more than {self.limits.max_expr_nodes} nodes", offset=0)
            if depth > MAX_DEPTH:
                raise ExprError("E505", f"expression nests deeper than {MAX_DEPTH}", offset=self.offset(node))
            problem = _forbidden(node)
            if problem:
                raise ExprError("E503", problem[0], hint=problem[1], offset=self.offset(node))
            children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, _OPERATOR_NODES)]
            stack.extend((c, depth + 1) for c in reversed(children))  # report the leftmost first

    def eval(self, node: ast.AST) -> Any:
        handler = getattr(self, "eval_" + type(node).__name__, None)
        try:
            if handler is None:  # only a Slice outside [...] gets here after validation
                raise ExprError("E503", "multi-dimensional indexing is not allowed in expressions")
            return self.check(handler(node))
        except ExprError as e:
            if e.offset is None:
                e.offset = self.offset(node)
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
            raise ExprError("E504", str(e) or type(e).__name__, offset=self.offset(node)) from e

    def check(self, v: Any) -> Any:
        """Enforce the limits on a value: int bits, sequence size, finite floats."""
        lim = self.limits
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v.bit_length() > lim.max_int_bits:
            raise ExprError("E505", f"integer result has {v.bit_length()} bits (limit {lim.max_int_bits})")
        if isinstance(v, float) and not math.isfinite(v):
            raise ExprError("E504", f"result is not a finite number ({v})")
        if isinstance(v, complex):
            raise ExprError("E504", "result is a complex number")
        if isinstance(v, (str, list, tuple)) and self.weight(v) > lim.max_sequence_len:
            raise ExprError("E505", f"{_type_name(v)} result is longer than {lim.max_sequence_len} elements")
        if isinstance(v, Sym):
            ints = [v.const, v.div, *(c for _, c in v.terms)]
            if v.opaque is not None and len(v.opaque) > lim.max_sequence_len or any(
                    i.bit_length() > lim.max_int_bits for i in ints):
                raise ExprError("E505", "symbolic dim grew past the integer limit")
        return v

    def weight(self, v: object) -> int:
        """The size of ``v``: string length, or list slots counting nested lists and strings.
        Bounding it bounds the cost of == and ``in`` (``[[0]*99999]*99999`` is tiny in memory)."""
        if isinstance(v, str):
            return len(v)
        if not isinstance(v, (list, tuple)):
            return 1
        cached = self._weights.get(id(v))
        if cached is not None and cached[0] is v:
            return cached[1]
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
            raise ExprError("E504", "a tensor has no truth value", hint="test one of its attributes, e.g. x.rank == 4")
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

    def eval_IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.truth(self.eval(node.test)) else self.eval(node.orelse)

    def eval_BoolOp(self, node: ast.BoolOp) -> Any:
        stop_when = isinstance(node.op, ast.Or)  # `or` stops at a true value, `and` at a false one
        for operand in node.values:
            result = self.eval(operand)
            if self.truth(result) == stop_when:
                return result
        return result

    def eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not self.truth(v)
        if isinstance(v, Sym):
            return dims.mul(v, -1) if isinstance(node.op, ast.USub) else v
        if not _is_number(v):
            raise ExprError("E504", f"unary operator needs a number, found {_type_name(v)}")
        return -v if isinstance(node.op, ast.USub) else +v

    def eval_BinOp(self, node: ast.BinOp) -> Any:
        return self.binop(type(node.op), self.eval(node.left), self.eval(node.right))

    def binop(self, op: type, a: Any, b: Any) -> Any:
        sym = _BINOPS[op]
        if isinstance(a, Sym) or isinstance(b, Sym):
            return self.symbolic(op, a, b)
        if _is_number(a) and _is_number(b):
            return self.arithmetic(op, a, b)
        max_len = self.limits.max_sequence_len
        if op is ast.Add and type(a) is type(b) and isinstance(a, (str, list, tuple)):
            size = self.weight(a) + self.weight(b)
            if size > max_len:  # check before building it
                raise ExprError("E505", f"'+' would build a {_type_name(a)} of size {size} (limit {max_len})")
            return a + b
        if op is ast.Mult and isinstance(b, (str, list, tuple)) and isinstance(a, int):
            a, b = b, a
        if op is ast.Mult and isinstance(a, (str, list, tuple)) and isinstance(b, int):
            size = max(1, self.weight(a)) * b
            if size > max_len:  # 'a' * 10**10 must fail before it allocates
                raise ExprError("E505", f"'*' would build a {_type_name(a)} of size {size} (limit {max_len})")
            return a * b
        raise ExprError("E504", f"cannot apply '{sym}' to {_type_name(a)} and {_type_name(b)}")

    def arithmetic(self, op: type, a: float, b: float) -> Any:
        bits = self.limits.max_int_bits
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and b == 0:
            raise ExprError("E504", "division by zero")
        both_int = isinstance(a, int) and isinstance(b, int)
        if op is ast.Mult and both_int and a.bit_length() + b.bit_length() - 1 > bits:
            raise ExprError("E505", f"integer product exceeds {bits} bits")
        if op is ast.Pow:
            if both_int and b > 0 and abs(a) > 1 and b * (abs(a).bit_length() - 1) + 1 > bits:
                # |a|**b has at least b*(bitlen(a)-1)+1 bits: refuse 9**9**9**9 before computing it
                raise ExprError("E505", f"integer power exceeds {bits} bits")
            if a < 0 and isinstance(b, float) and not b.is_integer():
                raise ExprError("E504", "a negative number to a fractional power is not real")
        try:
            return {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
                    ast.Mod: operator.mod, ast.Pow: operator.pow}[op](a, b)
        except OverflowError:
            raise ExprError("E504", f"'{_BINOPS[op]}' overflows a float") from None

    def symbolic(self, op: type, a: Any, b: Any) -> Any:
        for v in (a, b):
            if not isinstance(v, (int, Sym)):
                raise ExprError("E504", f"symbolic dim arithmetic needs integers, found {_type_name(v)}")
        if op is ast.Add:
            return dims.add(a, b)
        if op is ast.Sub:
            return dims.sub(a, b)
        if op is ast.Mult:
            return dims.mul(a, b)
        if op is ast.FloorDiv:
            if isinstance(b, int) and b > 0:
                return dims.floordiv(a, b)
            raise ExprError("E504", "a symbolic dim can only be floor-divided by a positive integer")
        raise ExprError("E504", f"'{_BINOPS[op]}' is not defined for symbolic dims",
                        hint="use + - * and // (ceiling division: (h + s - 1) // s)")

    def eval_Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.eval(comparator)
            if not self.compare(op, left, right):
                return False
            left = right
        return True

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> bool:
        if isinstance(op, (ast.Eq, ast.NotEq)):
            return (a == b) == isinstance(op, ast.Eq)  # Sym is a frozen dataclass in canonical form
        if isinstance(op, (ast.In, ast.NotIn)):
            if not (isinstance(b, (list, tuple)) or isinstance(b, str) and isinstance(a, str)):
                raise ExprError("E504", f"cannot test {_type_name(a)} 'in' {_type_name(b)}")
            return (a in b) == isinstance(op, ast.In)
        if isinstance(a, Sym) or isinstance(b, Sym):
            raise ExprError("E504", f"cannot compare symbolic dim: {a} {_ORDER_TEXT[type(op)]} {b} "
                            "depends on the input size", hint="compare with == or !=, or give the input a concrete size")
        if not (_is_number(a) and _is_number(b) or type(a) is type(b) and isinstance(a, (str, list, tuple))):
            raise ExprError("E504", f"cannot order {_type_name(a)} and {_type_name(b)}")
        return _ORDER[type(op)](a, b)

    def eval_Subscript(self, node: ast.Subscript) -> Any:
        target = self.eval(node.value)
        if not isinstance(target, (list, tuple, str)):
            hint = "index its shape: x.shape[i]" if isinstance(target, ShapeView) else None
            raise ExprError("E504", f"cannot index {_type_name(target)}", hint=hint)
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.index(self.eval(p))
                     for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if parts[2] == 0:
                raise ExprError("E504", "slice step cannot be zero")
            return target[slice(*parts)]
        i = self.index(self.eval(node.slice))
        if not -len(target) <= i < len(target):
            raise ExprError("E504", f"index {i} is out of range for a {_type_name(target)} of length {len(target)}")
        return target[i]

    def index(self, v: object) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ExprError("E504", f"an index must be an integer, found {_type_name(v)}")
        return v

    def eval_Attribute(self, node: ast.Attribute) -> Any:
        target = self.eval(node.value)
        if not isinstance(target, ShapeView):  # the attribute name itself was whitelisted statically
            raise ExprError("E503", f"attributes are only allowed on tensors; found .{node.attr} on {_type_name(target)}")
        return getattr(target, node.attr)

    def eval_Call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]  # validate() allows only whitelisted names
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords}
        try:
            _SIGNATURES[name].bind(self, *args, **kwargs)
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
    """True for a string that :func:`evaluate` treats as an expression (``$...`` but not ``$$...``)."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def evaluate(value: object, env: Mapping[str, object], limits: Limits = DEFAULT_LIMITS) -> object:
    """The value of ``value`` in ``env``: ``$name`` -> ``env[name]``, ``${expr}`` -> its result,
    ``$$text`` -> ``"$text"``; lists, tuples and dict values element-wise; anything else as is.

    Inside ``${...}`` a :class:`~specgraph.dims.TensorType` in ``env`` is seen as a
    :class:`ShapeView`.  Raises :class:`ExprError`, and nothing else.
    """
    if isinstance(value, (list, tuple)):
        return type(value)(evaluate(v, env, limits) for v in value)
    if isinstance(value, dict):
        return {k: evaluate(v, env, limits) for k, v in value.items()}
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    if value.startswith("$$"):
        return value[1:]
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
    if isinstance(value, (list, tuple)):
        return set().union(*(referenced_names(v, limits) for v in value))
    if isinstance(value, dict):
        return set().union(*(referenced_names(v, limits) for v in value.values()))
    if not is_expression(value):
        return set()
    assert isinstance(value, str)
    if not value.startswith("${"):
        return {value[1:]} if value[1:].isidentifier() else set()
    try:
        tree, _, _ = _parse(value, limits)
    except ExprError:
        return set()
    nodes = list(ast.walk(tree))
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    return {n.id for n in nodes if isinstance(n, ast.Name) and id(n) not in called}
