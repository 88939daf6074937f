"""Tests for specgraph.expr: the language, the whitelist, symbolic dims, error codes and bombs."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specgraph.ir import dims
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.lang.expr import FUNCTIONS, ExprError, ShapeView, evaluate, is_expression, referenced_names, value_location
from specgraph.lang.limits import Limits

N, H, W = symbol("N"), symbol("H"), symbol("W")
IMAGE = TensorType((N, 3, H, W))
ENV = {
    "width": 64,
    "stride": 2,
    "ratio": 0.75,
    "name": "conv",
    "widths": [16, 32, 64],
    "x": IMAGE,
    "seq": TensorType((N, 10, 128)),
    "flat": TensorType((N, 512)),
    "vec": TensorType((7,), "int64"),
    "fixed": TensorType((2, 3, 32, 32)),
    "view": ShapeView(TensorType((1, 8, 4, 4))),
}


def ev(text: str, env: dict | None = None, limits: Limits | None = None) -> object:
    return evaluate(text, ENV if env is None else env, *([limits] if limits else []))


def error(text: str, env: dict | None = None, limits: Limits | None = None) -> ExprError:
    with pytest.raises(ExprError) as info:
        ev(text, env, limits)
    return info.value


# ------------------------------------------------------------------ the three forms


def test_forms() -> None:
    assert ev("$width") == 64
    assert ev("${width}") == 64
    assert ev("$$width") == "$width"
    assert ev("$$") == "$"
    assert ev("a${width}") == "a${width}"  # no interpolation: only whole-value expressions
    assert ev("plain") == "plain"
    assert ev(3) == 3 and ev(None) is None and ev(2.5) == 2.5
    assert ev("$x") is IMAGE  # $name is env[name], unchanged
    assert ev("${x}") == ShapeView(IMAGE)  # inside ${} a tensor type is seen as a ShapeView
    assert ev("${  width  }") == 64  # surrounding whitespace is fine


def test_containers_are_evaluated_elementwise() -> None:
    value = {"out": "$width", "k": [1, "${stride * 2}", {"deep": "$$x"}], "t": ("$stride",)}
    assert ev(value) == {"out": 64, "k": [1, 4, {"deep": "$x"}], "t": (2,)}


def test_is_expression() -> None:
    assert is_expression("$a") and is_expression("${a}") and is_expression("$")
    assert not is_expression("$$a") and not is_expression("a$") and not is_expression(5)


# ------------------------------------------------------------------ the language


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 + 2", 3), ("7 - 10", -3), ("6 * 7", 42), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 // 2", -4),
        ("7 % 3", 1), ("2 ** 10", 1024), ("2 ** -1", 0.5), ("2.5 * 2", 5.0), ("-width", -64),
        ("+width", 64), ("width * ratio", 48.0), ("'a' + 'b'", "ab"), ("'ab' * 3", "ababab"),
        ("[1] * 3", [1, 1, 1]), ("[1, 2] + [3]", [1, 2, 3]), ("(1, 2)", (1, 2)), ("None", None),
        ("2 ** 63", 2**63), ("-2 ** 63", -(2**63)),
        # precedence and associativity are Python's
        ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("-2 ** 2", -4), ("2 ** 3 ** 2", 512),
        ("10 - 4 - 3", 3), ("7 // 2 * 2", 6), ("not 1 == 2", True), ("1 + 2 < 4 and 3", 3),
        ("width * 4 if stride == 1 else width * 2", 128), ("1 if 0 else 2 if 0 else 3", 3),
    ],
)
def test_arithmetic_and_precedence(text: str, expected: object) -> None:
    result = ev("${" + text + "}")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 < 2", True), ("2 <= 1", False), ("1 < 2 < 3", True), ("1 < 3 < 2", False),
        ("width == 64", True), ("width != 64", False), ("3 >= 3.0", True), ("'a' < 'b'", True),
        ("32 in widths", True), ("33 not in widths", True), ("'on' in name", True),
        ("[1, 2] == [1, 2]", True), ("(1, 2) < (1, 3)", True),
        ("True and 0", 0), ("0 or 'x'", "x"), ("not widths", False), ("1 and 2 and 3", 3),
        ("0 and undefined_name", 0), ("1 or undefined_name", 1),  # short-circuit, like Python
        ("widths[0]", 16), ("widths[-1]", 64), ("widths[1:]", [32, 64]), ("widths[::-1]", [64, 32, 16]),
        ("name[1:3]", "on"), ("(1, 2, 3)[1]", 2),
    ],
)
def test_comparisons_logic_indexing(text: str, expected: object) -> None:
    assert ev("${" + text + "}") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("min(3, 1, 2)", 1), ("min(0, 1)", 0), ("max([0, -1])", 0), ("max([3, 1, 2])", 3), ("max(widths)", 64), ("abs(-3)", 3),
        ("int(3.9)", 3), ("int('12')", 12), ("float(2)", 2.0), ("round(2.5)", 2), ("round(2.567, 2)", 2.57),
        ("round(1234, -2)", 1200), ("ceil(2.1)", 3), ("floor(-2.1)", -3), ("ceil(4)", 4),
        ("len(widths)", 3), ("len('abc')", 3), ("len(x.shape)", 4), ("sum(widths)", 112),
        ("sum([1.5, 2], 1)", 4.5), ("bool(0)", False), ("bool([1])", True),
        ("make_divisible(32 * 0.75, 8)", 24), ("make_divisible(10, 8)", 16), ("make_divisible(3, 8)", 8),
        ("make_divisible(16 * 1.4, 8)", 24), ("make_divisible(96 * 0.35)", 32),
        ("make_divisible(value=100, divisor=16)", 96), ("make_divisible(5, 4, min_value=16)", 16),
        ("max(64, width // 2)", 64),
    ],
)
def test_functions(text: str, expected: object) -> None:
    result = ev("${" + text + "}")
    assert result == expected and type(result) is type(expected)


def _torchvision_reference(v: float, divisor: int, min_value: int | None = None) -> int:
    # torchvision.models._utils._make_divisible, the MobileNet v2/v3 rule, copied verbatim
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


MULTIPLIERS = [0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0]


@given(st.integers(1, 4096), st.sampled_from(MULTIPLIERS), st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_matches_mobilenet(channels: int, multiplier: float, divisor: int) -> None:
    env = {"c": channels, "m": multiplier, "d": divisor}
    assert ev("${make_divisible(c * m, d)}", env) == _torchvision_reference(channels * multiplier, divisor)


def test_make_divisible_matches_torchvision_itself() -> None:
    utils = pytest.importorskip("torchvision.models._utils")
    for v in (3, 10, 16, 24.0, 33.6, 44.8, 96 * 0.35, 1280 * 1.3):
        for d in (4, 8):
            assert ev("${make_divisible(v, d)}", {"v": v, "d": d}) == utils._make_divisible(v, d)


# ------------------------------------------------------------------ tensors and symbolic dims


def test_shape_view_attributes() -> None:
    assert ev("${x.shape}") == (N, 3, H, W)
    assert ev("${x.rank}") == 4 and ev("${x.batch}") == N and ev("${x.channels}") == 3
    assert ev("${x.height}") == H and ev("${x.width}") == W and ev("${x.dtype}") == "float32"
    assert ev("${seq.features}") == 128 and ev("${seq.width}") == 128 and ev("${flat.features}") == 512
    assert ev("${vec.dtype}") == "int64" and ev("${vec.features}") == 7
    assert ev("${fixed.channels * fixed.height * fixed.width}") == 3072
    assert ev("${view.channels}") == 8  # a ShapeView in the env works as well as a TensorType
    assert ev("${x.shape[1]}") == 3 and ev("${x.shape[-2:]}") == (H, W)
    assert ev("${x.channels != width * 4}") is True
    assert ev("${x == x}") is True


@pytest.mark.parametrize("text", ["${flat.height}", "${seq.height}", "${vec.channels}", "${vec.width}"])
def test_shape_view_rank_requirements(text: str) -> None:
    err = error(text)
    assert err.code == "E504" and "rank" in err.message
    assert err.offset == text.index(".") + 1  # on the attribute's name


def test_symbolic_arithmetic() -> None:
    assert ev("${x.height // 2}") == dims.floordiv(H, 2)
    assert ev("${(x.height + 1) // 2}") == dims.ceildiv(H, 2)
    assert ev("${(x.height + 2 * 3 - 7) // 2 + 1}") == dims.add(dims.floordiv(dims.add(H, -1), 2), 1)
    assert ev("${x.width * 2 - x.width}") == W
    assert ev("${x.batch * 2}") == dims.mul(N, 2)
    assert ev("${-x.height + x.height}") == 0  # cancels to a plain int
    assert ev("${x.height * x.width}") == dims.mul(H, W)  # product of symbols: opaque but exact
    assert ev("${int(x.height)}") == H and ev("${ceil(x.height)}") == H
    assert ev("${sum(x.shape[2:])}") == dims.add(H, W)
    assert ev("${x.height == x.height}") is True and ev("${x.height // 2 == x.height // 2}") is True
    assert ev("${x.height != 3}") is True and ev("${x.height == x.width}") is False
    assert ev("${x.height in x.shape}") is True
    # a % k (k > 0) is a - k * (a // k): Swin's padding to a multiple of the window
    pad = ev("${(7 - x.width % 7) % 7}")
    assert [dims.evaluate(pad, {"W": w}) for w in (7, 8, 13, 14, 15)] == [(7 - w % 7) % 7 for w in (7, 8, 13, 14, 15)]


@pytest.mark.parametrize(
    "text, code, words",
    [
        # a number needed where the value depends on the input size: E406
        ("${x.height < 3}", "E406", "cannot compare symbolic dim"), ("${3 >= x.width}", "E406", "cannot compare symbolic dim"),
        ("${max(x.height, 3)}", "E406", "max() needs a number, found the symbolic dim H"),
        ("${1 if x.height else 2}", "E406", "depends on the input size"),
        ("${float(x.height)}", "E406", "float() needs a number, found the symbolic dim H"),
        # arithmetic symbolic dims do not have
        ("${x.height / 2}", "E504", "not defined for symbolic dims"), ("${x.height % 0}", "E504", "positive integer"),
        ("${x.height % x.width}", "E504", "positive integer"), ("${x.height ** 2}", "E504", "not defined for symbolic"),
        ("${x.height // 0}", "E504", "positive integer"), ("${x.height // x.width}", "E504", "positive integer"),
        ("${x.height * 0.5}", "E504", "needs integers"), ("${widths[x.height]}", "E504", "index must be an integer"),
    ],
)
def test_symbolic_errors(text: str, code: str, words: str) -> None:
    err = error(text)
    assert err.code == code and words in err.message
    assert "Sym(" not in err.message


# ------------------------------------------------------------------ errors and their positions


def test_undefined_name_with_did_you_mean() -> None:
    err = error("${widht * 4}")
    assert (err.code, err.offset, err.hint) == ("E502", 2, "did you mean 'width'?")
    assert "widht" in err.message and err.value == "${widht * 4}"
    err = error("$strid")
    assert (err.code, err.offset, err.hint) == ("E502", 1, "did you mean 'stride'?")
    assert error("${zzz}").hint is None


def test_offsets_point_inside_the_value() -> None:
    assert error("${1 + foo}").offset == 6
    assert error("${  1 + foo}").offset == 8
    assert error("${'é' + foo}").offset == 8  # characters, not UTF-8 bytes
    assert error("${1 +* 2}").code == "E501" and error("${1 +* 2}").offset == 5
    assert error("${(1 +\r\n foo)}").offset == 9 and error("${(1 +\r foo)}").offset == 8
    assert error("${(1,\n 2 +* 3)}").offset == 10


def at(text: str) -> str:
    """The value from the offset of its error on: what the caret points at."""
    return text[error(text).offset:]


@pytest.mark.parametrize("text, culprit", [
    # E501: where the parser stopped; at the closing brace when the text ran out
    ("${1 + (2 3)}", "2 3)}"), ("${width *}", "}"), ("${3 + +}", "}"), ("${max(1,,2)}", ",2)}"),
    ("${(1}", "(1}"),
    # E503: the forbidden operator, attribute, call or construct, not the expression's start
    ("${1 | 2}", "| 2}"), ("${(width) << 3}", "<< 3}"), ("${1 + ~2}", "~2}"), ("${x.colour}", "colour}"),
    ("${x . colour + 1}", "colour + 1}"), ("${__import__('os').system(1)}", "system(1)}"),
    ("${(lambda: 1)()}", "lambda: 1)()}"), ("${1 + foo(2)}", "foo(2)}"), ("${width is None}", "is None}"),
    ("${1 == 1 is not 2}", "is not 2}"), ("${max(1, **{})}", "**{})}"), ("${2 * [c for c in widths]}", "[c for c in widths]}"),
    ("${1 + x.shape.rank}", "rank}"), ("${width + __class__}", "__class__}"), ("$__class__", "__class__"),
    # E504: the operator that fails, the index out of range, the call given wrong arguments
    ("${width // 0}", "// 0}"), ("${1 + (64 % 0)}", "% 0)}"), ("${1 + 'a'}", "+ 'a'}"), ("${widths[1 + 2]}", "1 + 2]}"),
    ("${1 + abs(1, 2)}", "abs(1, 2)}"), ("${x.batch < 3}", "< 3}"), ("${1 if x else 2}", "x else 2}"),
    ("${1 + flat.height}", "height}"), ("${1 in 5}", "in 5}"), ("${1 + -'a'}", "-'a'}"),
    # E505: the operator whose result would be too large
    ("${1 + 2 ** 100}", "** 100}"),
])
def test_the_offset_names_the_culprit(text: str, culprit: str) -> None:
    assert at(text) == culprit


def test_error_text() -> None:
    err = error("${widht}")
    assert str(err) == "[E502] undefined name 'widht' (hint: did you mean 'width'?)"
    assert isinstance(err, Exception)


@pytest.mark.parametrize(
    "text, code",
    [
        ("${", "E501"), ("${}", "E501"), ("${ }", "E501"), ("${1 +}", "E501"), ("${width", "E501"),
        ("$", "E501"), ("$width*2", "E501"), ("$ width", "E501"), ("${a\x00}", "E501"), ("${1}}", "E501"),
        ("${1 / 0}", "E504"), ("${1 // 0}", "E504"), ("${1.5 % 0}", "E504"), ("${0 ** -1}", "E504"),
        ("${1 + 'a'}", "E504"), ("${'%d' % 5}", "E504"), ("${widths[3]}", "E504"), ("${widths[::0]}", "E504"),
        ("${widths['a']}", "E504"), ("${width[0]}", "E504"), ("${x[0]}", "E504"), ("${len(width)}", "E504"),
        ("${min()}", "E504"), ("${min(1, 'a')}", "E504"), ("${int('x')}", "E504"), ("${abs(1, 2)}", "E504"),
        ("${max(1, 2, key=3)}", "E504"), ("${make_divisible(10, 0)}", "E504"), ("${1e308 * 10}", "E504"),
        ("${1e999}", "E504"), ("${float('inf')}", "E504"), ("${float('nan')}", "E504"), ("${10.0 ** 400}", "E504"),
        ("${(-8) ** 0.5}", "E504"), ("${'a' < 1}", "E504"), ("${1 in 5}", "E504"),
        ("${1 in 'abc'}", "E504"),
        ("${-'a'}", "E504"), ("${sum([[1]], [])}", "E504"), ("${x and 1}", "E504"),
        ("${1 + 'a' * 3}", "E504"), ("${int(x)}", "E504"),
    ],
)
def test_error_codes(text: str, code: str) -> None:
    assert error(text).code == code


@pytest.mark.parametrize(
    "text, words",
    [
        ("${[i for i in widths]}", "list comprehension"), ("${{i for i in widths}}", "set comprehension"),
        ("${{i: i for i in widths}}", "dict comprehension"), ("${sum(i for i in widths)}", "generator"),
        ("${(lambda: 1)()}", "lambda"), ("${f'{width}'}", "f-string"), ("${[*widths]}", "starred"),
        ("${(y := 3)}", "assignment"), ("${{'a': 1}}", "dict literal"), ("${{1, 2}}", "set literal"),
        ("${().__class__}", "attribute '.__class__'"), ("${x.__class__}", "attribute '.__class__'"),
        ("${x._type}", "attribute '._type'"), ("${x.shape.__class__}", "attribute '.__class__'"),
        ("${x.shape.count(1)}", "attribute '.count'"), ("${'a'.upper()}", "attribute '.upper'"),
        ("${(1).real}", "attribute '.real'"), ("${widths.append}", "attribute '.append'"),
        ("${width.bit_length()}", "attribute '.bit_length'"),
        ("${__import__('os')}", "'__import__'"), ("${__builtins__}", "dunder"), ("$__class__", "dunder"),
        ("${eval('1')}", "function 'eval'"), ("${getattr(x, 'shape')}", "function 'getattr'"),
        ("${type(x)}", "function 'type'"), ("${open('f')}", "function 'open'"), ("${str(1)}", "function 'str'"),
        ("${widths[0](1)}", "by name"), ("${max(*widths)}", "starred"), ("${max(**{})}", "'**'"),
        ("${1 << 3}", "'<<'"), ("${1 | 2}", "'|'"), ("${1 & 2}", "'&'"), ("${1 ^ 2}", "'^'"), ("${~1}", "'~'"),
        ("${x is None}", "'is'"), ("${x is not None}", "'is'"), ("${b'a'}", "bytes"), ("${1j}", "complex"),
        ("${...}", "ellipsis"), ("${await x}", "await"), ("${widths[0, 1:]}", "multi-dimensional"),
        ("${min}", "can only be called"), ("${width.shape}", "only allowed on tensors"),
        ("${1 if 1 else [i for i in widths]}", "list comprehension"),  # found even if never evaluated
    ],
)
def test_forbidden_constructs(text: str, words: str) -> None:
    err = error(text)
    assert err.code == "E503", err
    assert words in err.message or words in (err.hint or ""), err.message


def test_attribute_hint_lists_the_allowed_names() -> None:
    err = error("${x.chanels}")
    assert err.hint == "did you mean 'channels'?"
    assert all(name in err.message for name in ShapeView.ATTRIBUTES)
    assert error("${mx(1, 2)}").hint == "did you mean 'max'?"


# ------------------------------------------------------------------ limits and bombs

BOMBS = [
    "${9**9**9**9}",
    "${9**(9**9)}",
    "${2**64}",
    "${(2**62) * (2**62)}",
    "${10**20}",
    "${99999999999999999999999}",
    "${'a'*10**10}",
    "${[0]*10**10}",
    "${10**10*[0]}",
    "${[[]]*10**10}",
    "${[[0]*99999]*99999}",
    "${['a'*99999]*2}",
    "${'a'*99999 + 'a'*99999}",
    "${round(5, -10**18)}",
    "${round(5, 10**9)}",
    "${" + "1+" * 500_000 + "1}",  # a 10**6-character expression
    "${" + "(" * 100_000 + "1" + ")" * 100_000 + "}",  # 100k nested parentheses
    "${" + "-" * 1_990 + "1}",  # within the length limit, too many nodes
    "${" + "(" * 300 + "1" + ")" * 300 + "}",  # within both limits: too deep for the parser
    "${" + "[" * 250 + "]" * 250 + "}",
    "${" + "+".join(["1"] * 600) + "}",
    "${int('9' * 1000)}",
    "${ceil(1e300)}",
    "${make_divisible(1e300)}",
]


@pytest.mark.parametrize("text", BOMBS, ids=lambda t: t[:30])
def test_bombs_fail_fast_with_e505(text: str) -> None:
    start = time.perf_counter()
    err = error(text)
    assert time.thread_time() - start < 1.0
    assert err.code == "E505", err


def test_depth_limit_within_node_limit() -> None:
    limits = Limits(max_expr_chars=100_000, max_expr_nodes=100_000)
    err = error("${" + "-" * 1_000 + "1}", limits=limits)
    assert err.code == "E505"


def test_limits_are_configurable() -> None:
    big = Limits(max_int_bits=200, max_sequence_len=10**6)
    assert ev("${2**100}", limits=big) == 2**100
    assert len(ev("${'a' * 500000}", limits=big)) == 500_000
    assert error("${2**8}", limits=Limits(max_int_bits=8)).code == "E505"
    assert error("${'abc' * 2}", limits=Limits(max_sequence_len=5)).code == "E505"
    assert error("${1 + 2}", limits=Limits(max_expr_chars=5)).code == "E505"


def test_at_the_limits_is_fine() -> None:
    assert len(ev("${[0] * 100000}")) == 100_000
    assert ev("${-2**63 - 1 + 1}") == -(2**63)
    assert ev("${len([[0] * 1000] * 99)}") == 99


# ------------------------------------------------------------------ robustness properties

TOKENS = ["1", "9", "0", "2.5", "1e308", "'a'", "x", "width", "widths", "name", "None", "True",
          "+", "-", "*", "/", "//", "%", "**", "<", "==", "!=", "in", "not", "and", "or", "if", "else",
          "(", ")", "[", "]", ",", ":", ".", "shape", "height", "channels", "__class__", "lambda",
          "for", "min", "max", "make_divisible", "len", "sum", "round", "int", "ceil", "10**9", "{", "}",
          "f'", "'", "\"", "\\", "@", "~", "=", ":=", " ", "é", "\n", "\x00"]


def _never_crashes(body: str) -> None:
    # CPU time of this thread: a loaded CI machine cannot inflate it, a runaway evaluation can.
    start = time.thread_time()
    try:
        evaluate("${" + body + "}", ENV)
    except ExprError as e:
        assert e.code in {"E501", "E502", "E503", "E504", "E505"}
        assert e.offset is None or 0 <= e.offset < len(body) + 3
        assert e.value == "${" + body + "}"
    assert time.thread_time() - start < 1.0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_only_raises_expr_error(body: str) -> None:
    _never_crashes(body)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_soup_only_raises_expr_error(tokens: list[str]) -> None:
    _never_crashes(" ".join(tokens))
    _never_crashes("".join(tokens))


def test_no_python_object_is_reachable() -> None:
    # every road to an object's attributes is closed, whatever the receiver
    for receiver in ["()", "[]", "''", "(1)", "x", "x.shape", "widths", "min", "(lambda: 0)", "x.shape[0]"]:
        for attr in ["__class__", "__dict__", "__globals__", "mro", "_type", "__init__"]:
            assert error("${" + f"{receiver}.{attr}" + "}").code == "E503"
    assert "__" not in "".join(ShapeView.ATTRIBUTES)
    assert set(FUNCTIONS) == {"min", "max", "abs", "int", "float", "round", "ceil", "floor", "len", "sum",
                              "bool", "make_divisible"}


# ------------------------------------------------------------------ referenced_names


def test_referenced_names() -> None:
    assert referenced_names("$width") == {"width"}
    assert referenced_names("${width * 4 if stride != 1 else x.channels}") == {"width", "stride", "x"}
    assert referenced_names("${max(width, make_divisible(c))}") == {"width", "c"}  # calls are not refs
    assert referenced_names(["$a", {"k": "${b + 1}", "l": ["$$c", "${c}"]}, 3]) == {"a", "b", "c"}
    assert referenced_names("$$width") == set() and referenced_names("a${b}") == set()
    assert referenced_names("${1 +}") == set() and referenced_names("$a b") == set()
    assert referenced_names("${" + "(" * 100_000 + "}") == set()
    assert referenced_names(7) == set()


# ------------------------------------------------------------------ from the offset to the file's column

def caret_at(yaml_text: str) -> str:
    """Evaluate the scalar of key `v` in ``yaml_text`` and return the text from the caret on."""
    import yaml

    from specgraph.diagnostics import Location

    node = next(v for k, v in yaml.compose(yaml_text).value if k.value == "v")
    err = error(node.value)
    lines = yaml_text.split("\n")
    start = Location("net.yaml", node.start_mark.line + 1, node.start_mark.column + 1, lines[node.start_mark.line])
    loc = value_location(start, lines, err.value, err.offset)
    assert loc.source_line == lines[loc.line - 1]
    return "\n".join(lines[loc.line - 1:])[loc.col - 1:]


@pytest.mark.parametrize("yaml_text, caret", [
    ('v: ${1 + foo}\n', "foo"),                                  # plain
    ('v: "${1 + foo}"\n', "foo"),                                # double-quoted
    ("v: '${1 + foo}'\n", "foo"),                                # single-quoted
    ("v: '${''a'' + foo}'\n", "foo"),                            # '' is one quote in the value
    ('{a: 1, v: "${width | 2}"}\n', "| 2"),                      # in a flow mapping
    ('v: ${max(8,\n     width // 0)}\n', "// 0"),                # plain, folded over lines
    ('v: "${max(8,   \n   \n     foo)}"\n', "foo"),              # quoted, a blank line is a newline
    ('v: |\n  ${width +\n  foo}\n', "${width +"),                # block scalars: the first line only...
    ('v: >-\n  ${width + foo}\n', "foo"),                        # ... but exactly there
    ('v: "${\\x31 + foo}"\n', '"${\\x31'),                       # an escape: the scalar's start
    ('v: "${1 + \\\n foo}"\n', '"${1 +'),                        # an escaped line break: the start
])
def test_value_location_maps_the_offset_into_the_file(yaml_text: str, caret: str) -> None:
    assert caret_at(yaml_text).startswith(caret)


def test_value_location_keeps_the_start_when_it_cannot_follow() -> None:
    from specgraph.diagnostics import Location

    start = Location("f", 1, 4, "v: [1, ${foo}]")
    assert value_location(start, ["v: [1, ${foo}]"], "${foo}", 2) == start  # a value inside a list
    assert value_location(start, ["v: ${foo"], "${foo}", 5) == start  # the text ends first
    assert value_location(start, ["v: ${foo}"], "${foo}", None) == start
    assert value_location(start, ["v: ${foo}"], "${foo}", 2) == Location("f", 1, 6, "v: ${foo}")
