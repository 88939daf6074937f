"""The work budget of expressions: element operations, counted across all the evaluations of a check.

The size limits bound what one value may hold, not what evaluating costs: ``len([0]*99999)`` is
a short text and a small result, yet builds and walks 100,000 slots, and a block repeated 100
times evaluates it again each time.  So every evaluation spends from one budget per check
(``Limits.max_expr_work``): an AST node evaluated costs :data:`NODE_WORK`, and building,
walking, comparing or slicing a sequence costs its length.  A check that runs out stops with
E505 at the expression that did, however the work was split between expressions.

The expander opens the budget for a whole check (:func:`work_budget`); an evaluation outside
one (the API's ``evaluate``) gets a budget of its own.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, TypeVar

from ..limits import Limits
from .values import ExprError

# An AST node evaluated, in element operations: the evaluator's per-node bookkeeping (limits,
# blame, dispatch) costs about as much as walking 50 list slots in C.
NODE_WORK = 50
T = TypeVar("T")


class WorkBudget:
    """Element operations left to the expressions of one check."""

    def __init__(self, limit: int):
        self.limit, self.left = limit, limit

    def spend(self, work: int) -> None:
        self.left -= work
        if self.left < 0:
            raise ExprError("E505", f"the spec's expressions do more than {self.limit} element operations "
                            "in all", hint="raise it with --limit max_expr_work=N")


_CURRENT: ContextVar[WorkBudget | None] = ContextVar("specgraph_expr_work", default=None)


@contextmanager
def work_budget(limits: Limits) -> Iterator[WorkBudget]:
    """One budget for every evaluation inside the block (a check)."""
    token = _CURRENT.set(WorkBudget(limits.max_expr_work))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def spending(run: Callable[..., T]) -> Callable[..., T]:
    """A method of an object with ``limits`` run inside one :func:`work_budget` (the expander's run)."""
    @functools.wraps(run)
    def wrapper(self, *args: Any, **kwargs: Any) -> T:
        with work_budget(self.limits):
            return run(self, *args, **kwargs)
    return wrapper


def current_budget(limits: Limits) -> WorkBudget:
    """The open budget, or a fresh one for a lone evaluation."""
    return _CURRENT.get() or WorkBudget(limits.max_expr_work)


__all__ = ["NODE_WORK", "WorkBudget", "work_budget", "spending", "current_budget"]
