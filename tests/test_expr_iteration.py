"""Iteration and the math functions in expressions: list comprehensions, range, zip, enumerate,
all, any, log, exp, sqrt -- against Python's own meaning of the same text, with their errors and
their bounds."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specgraph.ir import dims
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.lang.expr import ExprError, evaluate
from specgraph.lang.limits import Limits

N = symbol("N")
ENV = {"widths": [16, 32, 64], "stages": [[1, 16, 1], [6, 24, 2], [6, 40, 2]], "mult": 1.2, "k": 2,
       "x": TensorType((N, 3, 8, 8)), "name": "conv"}


def ev(text: str, env: dict | None = None, limits: Limits | None = None) -> object:
    return evaluate("${" + text + "}", ENV if env is None else env, *([limits] if limits else []))


def error(text: str, env: dict | None = None, limits: Limits | None = None) -> ExprError:
    with pytest.raises(ExprError) as info:
        ev(text, env, limits)
    return info.value


# the same text means what Python says it means (range and zip give lists: there are no lazy values)
SAME_AS_PYTHON = [
    "[w * 2 for w in widths]",
    "[w for w in widths if w > 16]",
    "[w for w in widths if w > 16 if w < 64]",
    "[c * mult for _, c, _ in stages]",
    "[i + 1 for i in range(3)]",
    "[[j * i for j in range(i)] for i in range(4)]",
    "[n for n in name]",
    "[a + b for a, b in zip(widths, widths[1:])]",
    "[i * w for i, w in enumerate(widths, 1)]",
    "[(i, (a, b)) for i, (a, b) in enumerate(zip(widths, 'abc'))]",
    "sum(s[2] for s in stages)",
    "max(s[1] for s in stages)",
    "all(w % 16 == 0 for w in widths)",
    "any(w > 100 for w in widths)",
    "all([])",
    "any([])",
    "[k for k in widths] + [k]",  # the comprehension's k is its own; the spec's k is still 2
    "[b - a for a, b in zip([0, 3, 7], [3, 7, 9])]",
    "[i for i in range(2, 11, 3)]",
    "[i for i in range(10, 0, -4)]",
    "[i for i in range(0)]",
]


@pytest.mark.parametrize("text", SAME_AS_PYTHON)
def test_comprehensions_and_sequence_functions_mean_what_python_says(text: str) -> None:
    python = eval(text.replace("zip(", "_zip(").replace("range(", "_range(").replace("enumerate(", "_enumerate("),
                  {"_zip": lambda *a: list(zip(*a)), "_range": lambda *a: list(range(*a)),
                  "_enumerate": lambda *a: list(enumerate(*a)), **ENV})  # globals: a comprehension sees them
    assert ev(text) == python


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=12), st.floats(0.1, 4.0), st.integers(1, 5))
def test_a_mapped_table_is_pythons(values: list[int], mult: float, step: int) -> None:
    env = {"vs": values, "m": mult, "s": step}
    text = "[ceil(v * m) for i, v in enumerate(vs) if i % s == 0]"
    assert ev(text, env) == [math.ceil(v * mult) for i, v in enumerate(values) if i % step == 0]


def test_math_functions() -> None:
    assert ev("log(8, 2)") == 3.0 and ev("log(1)") == 0.0 and ev("exp(0)") == 1.0
    assert ev("sqrt(2.25)") == 1.5 and ev("log(exp(3))") == pytest.approx(3.0)
    assert ev("round(log(240 / 48) / log(2.09))") == round(math.log(240 / 48) / math.log(2.09))
    assert ev("round(2.5) + round(3.5)") == 6  # half to even, as Python and torch.round


@pytest.mark.parametrize("text, code, words", [
    ("log(0)", "E504", "positive number"), ("log(-1.5)", "E504", "positive number"),
    ("log(8, 1)", "E504", "base 1"), ("log(8, 0)", "E504", "positive base"), ("log('a')", "E504", "numbers"),
    ("exp(1000)", "E504", "overflows"), ("sqrt(-1)", "E504", "negative"), ("log(x.batch)", "E406", "symbolic"),
    ("range(1.5)", "E504", "integers"), ("range()", "E504", "1 to 3"), ("range(1, 2, 3, 4)", "E504", "1 to 3"),
    ("range(0, 5, 0)", "E504", "step"), ("range(10 ** 9)", "E505", "1000000000 items"),
    ("zip(widths, 3)", "E504", "lists, tuples or strs"), ("zip()", "E504", "missing"),
    ("enumerate(x)", "E504", "found tensor"), ("enumerate(widths, 0.5)", "E504", "integers"),
    ("all(x.shape)", "E406", "symbolic"), ("any(3)", "E504", "lists"),
    ("[c for c in x]", "E504", "iterates over a list"), ("[c for c in 3]", "E504", "found int"),
    ("[a for a, b in widths]", "E504", "item 0 is the int 16, which does not unpack into (a, b)"),
    ("[a for a, b in stages]", "E504", "item 0 is a list of 3, which does not unpack into (a, b)"),
    ("[a for i, (a, b) in enumerate(stages)]", "E504", "item 0 is a list of 3, which does not unpack into (a, b)"),
    ("[w for w in widths if x.batch]", "E406", "symbolic"),
    ("[a for a in widths for b in widths]", "E503", "a second 'for'"),
    ("[a for a[0] in stages]", "E503", "a name or a tuple of names"),
    ("[a for a.shape in stages]", "E503", "a name or a tuple of names"),
    ("[a for __class__ in stages]", "E503", "dunder"),
    ("[c for c in undefined_table]", "E502", "undefined name"),
    ("(w for w in widths)", "E503", "only as a function's argument"),
    ("[(w for w in widths)]", "E503", "only as a function's argument"),
])
def test_errors(text: str, code: str, words: str) -> None:
    err = error(text)
    assert err.code == code and (words in err.message or words in (err.hint or "")), err


def test_the_variable_does_not_leak_out_of_the_comprehension() -> None:
    assert error("[c for c in widths] + [c]", {"widths": [1]}).code == "E502"
    assert ev("[[w, k] for w in widths][0] + [k]") == [16, 2, 2]


def test_a_comprehension_sees_tensors_and_keeps_dims_symbolic() -> None:
    assert ev("[d * 2 for d in x.shape]") == [dims.mul(N, 2), 6, 16, 16]


# ------------------------------------------------------------------ bounds

@pytest.mark.parametrize("text", [
    "[i for i in range(10 ** 18)]",
    "[[0] * 99999 for i in range(99999)]",  # stops at its second item, by the weight of what it holds
    "[[j for j in range(99999)] for i in range(99999)]",
    "len(zip(range(99999), range(99999)))",
    "len(enumerate(range(99999)))",
    "[i for i in range(99999)] == [i for i in range(99999)]",
])
def test_hostile_comprehensions_stop_fast_with_e505(text: str) -> None:
    start = time.thread_time()
    err = error(text)
    assert time.thread_time() - start < 1.0
    assert err.code == "E505", err


def test_each_step_of_a_comprehension_spends_from_the_budget() -> None:
    assert ev("len([0 for i in range(1000)])", limits=Limits(max_expr_work=200_000)) == 1000
    # a step costs 2 x NODE_WORK here (the step, the constant): 1,000 of them pass a budget of 100,000
    assert error("len([0 for i in range(1000)])", limits=Limits(max_expr_work=100_000)).code == "E505"
    # the test of an `if` is evaluated at every step, kept or not
    assert error("len([0 for i in range(1000) if i < 0])", limits=Limits(max_expr_work=100_000)).code == "E505"
