"""The syntax whitelist: which Python AST nodes an expression may hold, the operators' meanings,
and parsing a value's text (E501 syntax, E503 a forbidden construct, E505 a limit)."""

from __future__ import annotations

import ast
import operator
import re
import warnings

from ...diagnostics import did_you_mean
from ...ir import dims
from ..limits import Limits
from .functions import FUNCTIONS
from .iteration import comprehension_problem
from .values import ExprError, ShapeView


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
            ast.List, ast.Tuple, ast.Subscript, ast.Slice, ast.Attribute, ast.Call, ast.keyword,
            ast.ListComp, ast.GeneratorExp, ast.comprehension}
_OPERATOR_NODES = (ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)
_CONSTRUCTS = {ast.SetComp: "a set comprehension", ast.DictComp: "a dict comprehension",
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
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        problem = comprehension_problem(node)
        if problem:
            return problem[0], problem[1], ("at", problem[2])
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
