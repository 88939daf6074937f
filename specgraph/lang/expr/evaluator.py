"""The evaluator: a walk over the whitelisted AST with a work budget, never eval/exec/compile.

Each evaluation is O(its AST + the sizes of the sequences it builds, walks or compares), and
spends that from the check's :class:`~specgraph.lang.expr.budget.WorkBudget`."""

from __future__ import annotations

import ast
import math
from typing import Any, Callable, Mapping

from ...diagnostics import did_you_mean
from ...ir import dims
from ...ir.dims import Sym
from ...ir.tensor_type import TensorType
from ..limits import Limits
from .budget import NODE_WORK, WorkBudget
from .functions import _SIGNATURES, FUNCTIONS, _type_name
from .syntax import _BINOPS, _COMPARISONS, _OPERATOR_NODES, _ORDER, _SYMBOLIC, Culprit, _char_offset, _forbidden
from .values import MAX_DEPTH, NEEDS_A_NUMBER, ExprError, ShapeView


_SEQUENCES = {str, list, tuple}


def _lookup(name: str, env: Mapping[str, object], wrap: bool) -> Any:
    if name in env:
        value = env[name]
        return ShapeView(value) if wrap and isinstance(value, TensorType) else value
    if name in FUNCTIONS:
        raise ExprError("E503", f"function '{name}' can only be called, e.g. {name}(x)")
    raise ExprError("E502", f"undefined name '{name}'", hint=did_you_mean(name, env))


class _Blame:
    """The context of :meth:`_Evaluator.blame` (a class: a generator-based context manager costs
    more than the arithmetic it guards)."""

    __slots__ = ("offset",)

    def __init__(self, offset: Callable[[], int | None]):
        self.offset = offset

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, ExprError):
            error.offset = self.offset() if error.offset is None else error.offset
        elif isinstance(error, (ArithmeticError, TypeError, ValueError, IndexError, KeyError)):
            raise ExprError("E504", str(error) or kind.__name__, offset=self.offset()) from error
        return False


class _Evaluator:
    """Evaluates one expression tree; every value it produces passes :meth:`check`."""

    def __init__(self, env: Mapping[str, object], limits: Limits, text: str, base: int,
                 budget: WorkBudget | None = None):
        self.env, self.limits, self.text, self.base = env, limits, text, base
        self.budget = budget if budget is not None else WorkBudget(limits.max_expr_work)
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

    def blame(self, offset: Callable[[], int | None]) -> "_Blame":
        """Errors raised inside point at ``offset()`` unless they already point somewhere (found
        only on failure: most evaluations never need an offset)."""
        return _Blame(offset)

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
        kind = type(node)
        handler = _HANDLERS.get(kind)
        budget = self.budget
        try:
            budget.left -= NODE_WORK
            if budget.left < 0:
                budget.spend(0)  # raises E505
            if handler is None:  # after validate(), only a Slice outside [...] gets here
                raise ExprError("E503", "multi-dimensional indexing is not allowed in expressions")
            value = handler(self, node)
            # a comparison makes a bool; `and`, `or` and `if` hand on an operand already checked
            return value if kind in _PASSED_ON else self.check(value)
        except ExprError as e:
            e.offset = self.offset(node) if e.offset is None else e.offset  # the innermost node
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
            raise ExprError("E504", str(e) or type(e).__name__, offset=self.offset(node)) from e

    def check(self, v: Any) -> Any:
        """``v``, after enforcing the limits: int bits, sequence size, finite real numbers."""
        lim = self.limits
        if type(v) is int and v.bit_length() <= lim.max_int_bits or type(v) is bool:  # the common case, first
            return v
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > lim.max_int_bits:
            raise ExprError("E505", f"integer result has {v.bit_length()} bits (limit {lim.max_int_bits})")
        if isinstance(v, float) and not math.isfinite(v) or isinstance(v, complex):
            raise ExprError("E504", f"result is not a finite real number ({v})")
        if isinstance(v, (str, list, tuple)) and self.weight(v) > lim.max_sequence_len:
            raise ExprError("E505", f"{_type_name(v)} result is longer than {lim.max_sequence_len}")
        if isinstance(v, Sym) and (self.spent(len(v.terms)) or len(str(v)) > lim.max_sequence_len or any(
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
        self.budget.spend(len(v))  # each object is walked once: its weight is remembered
        if not _SEQUENCES & set(map(type, v)):  # flat (the common case): told at C speed
            self._weights[id(v)] = (v, len(v))
            return len(v)
        self.budget.spend(10 * len(v))  # nested: walked in Python, item by item
        total = 0
        for item in v:
            total += max(1, self.weight(item))  # an empty item still takes a slot
            if total > self.limits.max_sequence_len:
                break
        self._weights[id(v)] = (v, total)
        return total

    def spent(self, work: int) -> bool:
        """Spend ``work`` (raising E505 when the budget runs out); False, for use in conditions."""
        self.budget.spend(work)
        return False

    def truth(self, v: object) -> bool:
        if isinstance(v, Sym):
            raise ExprError("E406", f"the truth of symbolic dim {v} depends on the input size", hint=NEEDS_A_NUMBER, dim=v)
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
        with self.blame(lambda: self.offset(node)):  # "a tensor has no truth value" points at the tensor
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
        with self.blame(lambda: self.operator(node.left, node.right, _BINOPS[op][0])):  # like Python's `~~^~~`
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
            self.budget.spend(size)
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
        if op is ast.Mod and isinstance(b, int) and b > 0:  # Python's a % b for b > 0: a - b * (a // b)
            return dims.sub(a, dims.mul(dims.floordiv(a, b), b))
        if op in (ast.FloorDiv, ast.Mod):
            raise ExprError("E504", f"a symbolic dim can only be {'floor-divided' if op is ast.FloorDiv else 'taken modulo'} "
                            "by a positive integer")
        raise ExprError("E504", f"'{_BINOPS[op][0]}' is not defined for symbolic dims",
                        hint="use + - * // and % by a positive integer (ceiling division: (h + s - 1) // s)")

    def eval_Compare(self, node: ast.Compare) -> bool:
        left, left_node = self.eval(node.left), node.left
        for op, comparator in zip(node.ops, node.comparators):  # chained, lazily, like Python
            right = self.eval(comparator)
            symbol = _COMPARISONS[type(op)]
            with self.blame(lambda: self.operator(left_node, comparator, symbol)):
                if not self.compare(op, left, right):
                    return False
            left, left_node = right, comparator
        return True

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> bool:
        sequences = (str, list, tuple)
        self.budget.spend(sum(self.weight(v) for v in (a, b) if isinstance(v, sequences)))  # == and in walk them
        if isinstance(op, (ast.Eq, ast.NotEq)):
            return (a == b) == isinstance(op, ast.Eq)  # Syms are frozen dataclasses in canonical form
        if isinstance(op, (ast.In, ast.NotIn)):
            if not (isinstance(b, (list, tuple)) or isinstance(b, str) and isinstance(a, str)):
                raise ExprError("E504", f"cannot test {_type_name(a)} 'in' {_type_name(b)}")
            return (a in b) == isinstance(op, ast.In)
        symbol, apply = _ORDER[type(op)]
        if isinstance(a, Sym) or isinstance(b, Sym):
            sym = a if isinstance(a, Sym) else b
            raise ExprError("E406", f"cannot compare symbolic dim {sym} with '{symbol}': the answer depends on the "
                            "input size", hint="compare with == or !=, or " + NEEDS_A_NUMBER, dim=sym)
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
            self.budget.spend(len(range(*slice(*parts).indices(len(target)))))
            return target[slice(*parts)]
        with self.blame(lambda: self.offset(node.slice)):  # "index 5 is out of range" points at the 5
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
        with self.blame(lambda: self.culprit(("attr", node))):
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
        if name in ("min", "max", "sum"):  # they walk a sequence argument: its length
            self.budget.spend(sum(len(a) for a in args if isinstance(a, (list, tuple))))
        return FUNCTIONS[name](self, *args, **kwargs)


# eval_<Node> by node type, looked up once; and the node types whose value needs no new check
_HANDLERS = {getattr(ast, name[len("eval_"):]): fn for name, fn in vars(_Evaluator).items()
             if name.startswith("eval_") and hasattr(ast, name[len("eval_"):])}
_PASSED_ON = frozenset({ast.Compare, ast.BoolOp, ast.IfExp})
