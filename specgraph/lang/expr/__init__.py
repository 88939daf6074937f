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
(:class:`ShapeView`).  Symbolic dims (:class:`specgraph.ir.dims.Sym`) stay exact under ``+ - *`` and
``//`` by a positive int; ``==``/``!=`` compare canonical forms; ordering them is an error since
the answer would depend on the input size.

Every failure is an :class:`ExprError`: E501 syntax, E502 undefined name, E503 forbidden
construct, E504 evaluation error, E505 limit exceeded (:class:`specgraph.lang.limits.Limits`).
"""

from __future__ import annotations

import ast
import io
import tokenize
from functools import lru_cache
from typing import Mapping

from ..identifiers import RULE, ascii_hint
from ..limits import DEFAULT_LIMITS, Limits
from .budget import current_budget, spending, work_budget
from .carets import value_location
from .evaluator import _Evaluator, _lookup
from .functions import FUNCTIONS
from .syntax import _parse
from .values import ExprError, ShapeView

__all__ = ["FUNCTIONS", "ExprError", "ShapeView", "evaluate", "is_expression", "referenced_names", "value_location",
           "work_budget", "spending"]


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
            if not name.isascii():
                raise ExprError("E501", f"name '{name}' is not ASCII: {RULE}", offset=1, hint=ascii_hint(name))
            if name.startswith("__"):
                raise ExprError("E503", f"dunder name '{name}' is not allowed in expressions", offset=1)
            try:
                return _lookup(name, env, wrap=False)
            except ExprError as e:
                e.offset = 1
                raise
        tree, text, base = _compiled(value, limits.max_expr_chars, limits.max_expr_nodes)
        evaluator = _Evaluator(env, limits, text, base, current_budget(limits))
        try:
            return evaluator.eval(tree.body)
        except (RecursionError, MemoryError):  # a safety net: validate() should prevent both
            raise ExprError("E505", "expression is too large to evaluate", offset=0) from None
    except ExprError as e:
        e.value = value
        raise


@lru_cache(maxsize=4096)
def _compiled(value: str, max_chars: int, max_nodes: int) -> tuple[ast.Expression, str, int]:
    """``value`` parsed and validated, once per text and limits: a block repeated 100 times
    evaluates the same texts 100 times, and parsing costs more than evaluating.  The tree is
    never changed by evaluation.  (A text that fails is not cached; it ends the check.)"""
    limits = Limits(max_expr_chars=max_chars, max_expr_nodes=max_nodes)
    tree, text, base = _parse(value, limits)
    if not text.isascii():
        _refuse_non_ascii_names(text, base)
    _Evaluator({}, limits, text, base).validate(tree)
    return tree, text, base


def _refuse_non_ascii_names(text: str, base: int) -> None:
    """E501 at the first name that is not ASCII: the parser would read ``ｗidth`` as ``width``
    (NFKC), where ``$ｗidth`` reads the key as written (see lang/identifiers.py)."""
    lines = text.splitlines(keepends=True)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and not tok.string.isascii():
                row, col = tok.start
                offset = base + sum(len(line) for line in lines[:row - 1]) + col
                raise ExprError("E501", f"name '{tok.string}' is not ASCII: {RULE}", offset=offset,
                                hint=ascii_hint(tok.string))
    except (tokenize.TokenError, SyntaxError):  # the parser accepted it: nothing more to find here
        pass


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
    return set(_free_names(value, limits.max_expr_chars))


@lru_cache(maxsize=4096)
def _free_names(value: str, max_chars: int) -> frozenset[str]:
    try:
        tree = _parse(value, Limits(max_expr_chars=max_chars))[0]
    except ExprError:
        return frozenset()
    nodes = list(ast.walk(tree))
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    return frozenset(n.id for n in nodes if isinstance(n, ast.Name) and id(n) not in called)
