"""Errors are the product's face: every mistake gets a stable code, its node, its place, a hint.

Each test writes one small wrong spec and checks the diagnostic exactly: the code, the line
and column the caret points at, the node path, and the words of the message and hint that
tell the user what to do.  ``pos(text, needle)`` gives the (line, col) where ``needle``
first occurs in ``text``, so "the caret is on `kernal`" reads as ``pos(SPEC, "kernal")``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import specgraph
from specgraph import Diagnostic, Limits, SpecError
from specgraph.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


# --- helpers -------------------------------------------------------------------------------------

def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the ``nth`` occurrence of ``needle`` in ``text``."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col


def errors_of(spec, **params) -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        specgraph.check(spec, **params)
    return info.value.diagnostics


def only(spec, code: str, at: tuple[int, int], path: str | None = None, **params) -> Diagnostic:
    """The single diagnostic of a spec, checked for code, location and node path."""
    diags = errors_of(spec, **params)
    shown = "\n".join(d.format() for d in diags)
    assert [d.code for d in diags] == [code], shown
    d = diags[0]
    assert d.location is not None, shown
    assert (d.location.line, d.location.col) == at, shown
    assert d.path == path, shown
    return d


def spec(body: str, header: str = "specgraph: 1\ninputs:\n  x: [N, 3, 32, 32]\n") -> str:
    """A spec text: the header (format line and one image input) and a dedented body."""
    return header + dedent(body)


# --- keys and names: "did you mean" ----------------------------------------------------------------

def test_typo_in_from_key():
    text = spec("""\
        graph:
          conv: {op: conv2d, out: 8, kernel: 3}
          relu: {op: relu, form: conv}
        """)
    d = only(text, "E201", pos(text, "form"), "relu")
    assert "unknown key 'form'" in d.message
    assert d.hint == "did you mean 'from'?"


def test_typo_in_op_param_is_one_error_not_two():
    text = spec("""\
        graph:
          conv: {op: conv2d, out: 8, kernal: 3}
        """)
    d = only(text, "E201", pos(text, "kernal"), "conv")  # no second "needs the key 'kernel'"
    assert "'kernal'" in d.message and "conv2d" in d.message
    assert d.hint == "did you mean 'kernel'?"


def test_unknown_op():
    text = spec("""\
        graph:
          conv: {op: conv2e, out: 8, kernel: 3}
        """)
    d = only(text, "E302", pos(text, "conv2e"), "conv")
    assert d.message == "unknown op 'conv2e'"
    assert d.hint == "did you mean 'conv2d'?"


BLOCKS = """\
blocks:
  conv_bn:
    params: {out: int, kernel: 3}
    nodes:
      conv: {op: conv2d, out: $out, kernel: $kernel, padding: 1}
      bn:   {op: batchnorm2d}
graph:
"""


def test_unknown_block():
    text = spec(BLOCKS + "  c1: {block: conv_nb, out: 8}\n")
    d = only(text, "E303", pos(text, "conv_nb"), "c1")
    assert d.message == "unknown block 'conv_nb'"
    assert d.hint == "did you mean 'conv_bn'?"


def test_block_name_written_as_op():
    text = spec(BLOCKS + "  c1: {op: conv_bn, out: 8}\n")
    d = only(text, "E302", pos(text, "conv_bn", 1), "c1")
    assert "write `block: conv_bn`" in d.hint


def test_undefined_reference():
    text = spec("""\
        graph:
          conv1: {op: conv2d, out: 8, kernel: 3}
          relu:  {op: relu, from: cnov1}
        """)
    d = only(text, "E301", pos(text, "cnov1"), "relu")
    assert d.message == "undefined reference 'cnov1'"
    assert d.hint == "did you mean 'conv1'?"


def test_unknown_top_level_key():
    text = "specgraph: 1\ninputs:\n  x: [N, 8]\ngrpah:\n  fc: {op: linear, out: 4}\n"
    d = only(text, "E201", (4, 1))
    assert "unknown key 'grpah'" in d.message
    assert d.hint == "did you mean 'graph'?"


def test_unknown_key_in_an_output():
    text = spec("""\
        graph:
          relu: {op: relu}
        outputs:
          y: {form: relu}
        """)
    d = only(text, "E201", pos(text, "form"))
    assert d.hint == "did you mean 'from'?"


def test_node_without_op_block_or_seq():
    text = spec("""\
        graph:
          relu: {opp: relu}
        """)
    d = only(text, "E202", pos(text, "relu"), "relu")
    assert "exactly one of `op`, `block`, `seq`" in d.message
    assert "did you mean 'op'?" in d.hint


def test_bad_node_name():
    text = spec("""\
        graph:
          conv-1: {op: relu}
        """)
    d = only(text, "E204", pos(text, "conv-1"))
    assert d.message == "node name 'conv-1' must be letters, digits and _ only"


def test_node_named_like_a_module_attribute():
    text = spec("""\
        graph:
          train: {op: relu}
        """)
    d = only(text, "E204", pos(text, "train"), "train")
    assert "taken by torch's Module" in d.message and "train_" in d.hint


def test_node_named_like_a_python_keyword():
    # found by `make fuzz`: fx wrote `self.from(...)` into the generated forward
    text = spec("""\
        graph:
          from: {op: relu}
        """)
    d = only(text, "E204", pos(text, "from"), "from")
    assert "Python keyword" in d.message and "from_" in d.hint


def test_input_named_like_a_python_keyword_builds():
    import torch

    import specgraph

    model = specgraph.build("specgraph: 1\ninputs:\n  from: [N, 4]\ngraph:\n  fc: {op: linear, out: 3}\n")
    assert "def forward(self, from_)" in model.code
    assert model(torch.randn(2, 4)).shape == (2, 3)


def test_reserved_names_cover_graph_module_attributes():
    # add_module refuses any existing attribute: the list checked without importing torch must
    # hold every public one of this torch's GraphModule.
    import torch.fx
    from specgraph.lang.names import NAME_RE, RESERVED_NAMES
    public = {n for n in dir(torch.fx.GraphModule) if NAME_RE.match(n) and not n.startswith("_")}
    assert public <= RESERVED_NAMES, sorted(public - RESERVED_NAMES)


def test_node_named_like_an_input():
    text = spec("""\
        graph:
          x: {op: relu}
        """)
    only(text, "E305", pos(text, "x: {"), "x")


# --- the graph: cycles, ports, input counts ---------------------------------------------------------

def test_cycle_names_every_node_on_it():
    text = spec("""\
        graph:
          a: {op: relu, from: c}
          b: {op: relu, from: a}
          c: {op: relu, from: b}
          d: {op: relu, from: x}
        """)
    d = only(text, "E304", pos(text, "a: {"), "a")  # d is independent and fine
    assert d.message == "cycle: a -> b -> c -> a"
    assert "remove one `from`" in d.hint


def test_multi_output_node_used_without_port():
    text = spec("""\
        graph:
          parts: {op: chunk, chunks: 2, dim: 2}
          relu:  {op: relu, from: parts}
        """)
    d = only(text, "E311", pos(text, "parts", 1), "relu")
    assert "several outputs (0, 1)" in d.message and "'parts.0'" in d.message


def test_unknown_port():
    text = spec("""\
        graph:
          parts: {op: chunk, chunks: 2, dim: 2}
          relu:  {op: relu, from: parts.2}
        """)
    d = only(text, "E311", pos(text, "parts.2"), "relu")
    assert "has no output '2'" in d.message
    assert d.hint == "its outputs: 0, 1"


def test_multi_output_seq_item_followed_by_another():
    text = spec("""\
        graph:
          s: {seq: [{op: chunk, chunks: 2, dim: 2}, {op: relu}]}
        """)
    d = only(text, "E311", pos(text, "{op: chunk"), "s.0")
    assert "the next item needs one" in d.message


def test_multi_output_last_seq_item_is_fine():
    text = spec("""\
        graph:
          s: {seq: [{op: relu}, {op: chunk, chunks: 2, dim: 2}]}
          a: {op: add, from: [s.0, s.1]}
        """)
    assert str(specgraph.check(text).node("a").out) == "[N, 3, 16, 32]"


def test_add_with_one_input():
    text = spec("""\
        graph:
          relu: {op: relu}
          add:  {op: add}
        """)
    d = only(text, "E408", pos(text, "add:"), "add")
    assert d.message == "add takes at least 2 input(s), found 1"
    assert "from: [a, b]" in d.hint


def test_seq_item_with_from():
    text = spec("""\
        graph:
          s:
            seq:
              - {op: relu}
              - {op: relu, from: x}
        """)
    d = only(text, "E204", pos(text, "from"), "s.1")
    assert "`from` is not allowed here" in d.message


def test_block_given_an_input_it_does_not_have():
    text = spec("""\
        blocks:
          merge:
            inputs: [a, b]
            nodes:
              sum: {op: add, from: [a, b]}
        graph:
          r: {op: relu}
          m: {block: merge, from: {a: x, c: r}}
        """)
    d = only(text, "E301", pos(text, "c: r"), "m")
    assert d.message == "block 'merge' has no input 'c'"
    assert d.hint == "its inputs: a, b"


def test_output_naming_no_node():
    text = spec("""\
        graph:
          relu: {op: relu}
        outputs: [rleu]
        """)
    d = only(text, "E301", pos(text, "rleu"))
    assert d.hint == "did you mean 'relu'?"


def test_disabled_node_with_nothing_to_pass_through():
    text = "specgraph: 1\ngraph:\n  r: {op: relu, when: false}\n"
    d = only(text, "E312", (3, 3), "r")
    assert "passes its input through" in d.message


# --- shapes --------------------------------------------------------------------------------------

def test_channel_mismatch_at_add():
    text = spec("""\
        graph:
          conv1: {op: conv2d, out: 8, kernel: 3, padding: 1}
          conv2: {op: conv2d, out: 16, kernel: 3, padding: 1, from: x}
          add:   {op: add, from: [conv1, conv2]}
        """)
    d = only(text, "E402", pos(text, "add:"), "add")
    assert "disagree on dim 1" in d.message
    assert d.details == ("conv1 -> [N, 8, 32, 32]", "conv2 -> [N, 16, 32, 32]")
    assert "1×1 conv2d (projection)" in d.hint


def test_spatial_mismatch_at_concat_names_the_pool_upstream():
    text = spec("""\
        graph:
          branch1: {op: conv2d, out: 8, kernel: 1, from: x}
          branch2:
            from: x
            seq:
              - {op: maxpool2d, kernel: 3, stride: 1}
              - {op: conv2d, out: 8, kernel: 1}
          out: {op: concat, dim: 1, from: [branch1, branch2]}
        """)
    d = only(text, "E402", pos(text, "out: {"), "out")
    assert "disagree on dim 2" in d.message
    assert d.details == ("branch1 -> [N, 8, 32, 32]", "branch2.1 -> [N, 8, 30, 30]")
    # the cause is the missing padding, and only it is named (ceil_mode changes nothing here)
    assert d.hint == "branch2.0 (maxpool2d) gives 30x30; with padding: 1 it gives 32x32, as its siblings"


def test_spatial_mismatch_hint_names_ceil_mode_where_it_is_the_cause():
    # GoogLeNet's pools: 3x3 stride 2 on 28x28 gives 13x13, 14x14 only with ceil_mode
    text = spec("""        graph:
          a: {op: maxpool2d, kernel: 2, stride: 2, from: x}
          b: {op: maxpool2d, kernel: 3, stride: 2, from: x}
          c: {op: maxpool2d, kernel: 3, stride: 2, from: x}
          out: {op: concat, dim: 1, from: [a, b, c]}
        """, header="specgraph: 1\ninputs:\n  x: [N, 3, 28, 28]\n")
    d = errors_of(text)[0]
    assert d.hint.startswith("b (maxpool2d) gives 13x13; with ceil_mode: true it gives 14x14, as a")


def test_spatial_mismatch_hint_names_no_param_when_none_is_the_cause():
    # a 5x5 and a 3x3 conv, both unpadded: no one param of the one makes it the other's size
    text = spec("""        graph:
          a: {op: conv2d, out: 4, kernel: 3, padding: 1, stride: 2, from: x}
          b: {op: conv2d, out: 4, kernel: 1, stride: 3, from: x}
          out: {op: concat, dim: 1, from: [a, b]}
        """)
    d = errors_of(text)[0]
    assert d.hint.startswith("a (conv2d) gives 16x16, its siblings 11x11"), d.hint
    assert "padding" not in d.hint and "ceil_mode" not in d.hint


def test_linear_after_a_4d_tensor_without_flatten():
    text = spec("""\
        graph:
          conv: {op: conv2d, out: 8, kernel: 3}
          fc:   {op: linear, out: 10}
        """)
    d = only(text, "E410", pos(text, "fc:"), "fc")
    assert "rank-4 tensor [N, 8, 30, 30]" in d.message
    assert "{op: flatten}" in d.hint


@pytest.mark.parametrize("node", [
    "{op: conv2d, out: 8, kernel: 35}",              # kernel larger than the image
    "{op: conv2d, out: 8, kernel: 3, dilation: 16}",  # dilated window larger than the image
    "{op: maxpool2d, kernel: 33, stride: 2}",
])
def test_window_making_a_dim_non_positive(node):
    text = spec(f"graph:\n  down: {node}\n")
    d = only(text, "E404", pos(text, "down"), "down")
    assert "would give output size" in d.message and "does not fit" in d.hint


def test_stride_chain_running_out_of_pixels():
    text = spec("""\
        graph:
          down: {op: conv2d, out: 8, kernel: 3, stride: 2, repeat: 6}
        """)
    d = only(text, "E404", pos(text, "down"), "down.4")  # 32 -> 15 -> 7 -> 3 -> 1 -> 0
    assert "output size 0" in d.message


def test_groups_not_dividing_the_channels():
    text = spec("graph:\n  c: {op: conv2d, out: 8, kernel: 1, groups: 2}\n")
    d = only(text, "E407", pos(text, "c:"), "c")
    assert "groups=2 does not divide" in d.message


def test_dim_out_of_range():
    text = spec("graph:\n  r: {op: relu}\n  cat: {op: concat, dim: 4, from: [x, r]}\n")
    d = only(text, "E405", pos(text, "cat"), "cat")
    assert d.hint == "valid values are -4..3"


def test_symbolic_dim_sizing_weights():
    text = "specgraph: 1\ninputs:\n  x: [N, C]\ngraph:\n  fc: {op: linear, out: 3}\n"
    d = only(text, "E406", (5, 3), "fc")
    assert "symbolic 'C'" in d.message


# --- types: nothing is coerced ----------------------------------------------------------------------

def test_quoted_number_is_not_an_int():
    text = spec("graph:\n  conv: {op: conv2d, out: \"64\", kernel: 3}\n")
    d = only(text, "E203", pos(text, '"64"'), "conv")
    assert "'out' expected a valid integer; found '64'" in d.message
    assert d.hint == "values are never converted: write 64 without quotes"


def test_wrong_type_for_a_union_param_is_one_error():
    text = spec("graph:\n  conv: {op: conv2d, out: 8, kernel: [3, 3, 3]}\n")
    d = only(text, "E203", pos(text, "[3, 3, 3]"), "conv")
    assert "at most 2 items" in d.message


def test_quoted_bool_for_a_block_param():
    text = spec("""\
        blocks:
          unit:
            params: {act: true}
            nodes:
              r: {op: relu, when: $act}
        graph:
          u: {block: unit, act: "false"}
        """)
    d = only(text, "E203", pos(text, 'act: "false"'), "u")
    assert "expects bool, found str 'false'" in d.message
    assert "without quotes" in d.hint


def test_param_default_of_the_wrong_declared_type():
    text = spec("params:\n  width: {type: int, default: 0.5}\ngraph:\n  r: {op: relu}\n")
    d = only(text, "E203", pos(text, "0.5"))
    assert d.message == "param 'width': default 0.5 is not an int"


# --- block params -------------------------------------------------------------------------------

def test_missing_block_param():
    text = spec(BLOCKS + "  c1: {block: conv_bn, kernel: 1}\n")
    d = only(text, "E309", pos(text, "c1"), "c1")
    assert d.message == "block 'conv_bn' needs the param 'out' (int)"
    assert d.hint == "add `out: <int>`"


def test_unknown_block_param():
    text = spec(BLOCKS + "  c1: {block: conv_bn, out: 8, kernle: 1}\n")
    d = only(text, "E308", pos(text, "kernle"), "c1")
    assert d.message == "block 'conv_bn' has no param 'kernle'"
    assert d.hint == "did you mean 'kernel'?"


def test_misspelt_required_block_param_is_one_error():
    text = spec(BLOCKS + "  c1: {block: conv_bn, otu: 8}\n")
    d = only(text, "E308", pos(text, "otu"), "c1")  # not also "needs the param 'out'"
    assert d.hint == "did you mean 'out'?"


def test_typo_of_from_on_a_block_node():
    text = spec(BLOCKS + "  r: {op: relu}\n  c1: {block: conv_bn, out: 8, form: x}\n")
    d = only(text, "E308", pos(text, "form"), "c1")
    assert d.hint == "did you mean 'from'?"


def test_block_that_instantiates_itself_without_end():
    text = spec("""\
        blocks:
          tower:
            nodes:
              conv: {op: conv2d, out: 8, kernel: 3, padding: 1}
              more: {block: tower}
        graph:
          t: {block: tower}
        """)
    diags = errors_of(text)
    assert [(d.code, (d.location.line, d.location.col)) for d in diags] == [("E604", pos(text, "tower", 1))]
    d = diags[0]
    assert d.path == "t.more"  # the first instance that recursed, where a `when:` is missing
    assert d.details == ("t -> t.more -> t.more.more -> ... (64 instances)",)
    assert d.message == "block 'tower' instantiates itself without end (more than 64 levels)"
    assert "`when:`" in d.hint


def test_recursion_ended_by_when_is_fine():
    text = spec("""\
        blocks:
          tower:
            params: {depth: int}
            nodes:
              conv: {op: conv2d, out: 8, kernel: 3, padding: 1}
              more: {block: tower, depth: "${depth - 1}", when: "${depth > 1}"}
        graph:
          t: {block: tower, depth: 3}
        """)
    assert "t.more.more.conv" in specgraph.check(text)


def test_let_value_shadowing_a_param():
    text = spec("params: {width: 8}\nlet: {width: 16}\ngraph:\n  r: {op: relu}\n")
    d = only(text, "E305", pos(text, "width", 1))
    assert "has the name of a param" in d.message


# --- `when` and `repeat` ------------------------------------------------------------------------

def test_when_that_is_not_a_bool():
    text = spec("graph:\n  conv: {op: conv2d, out: 8, kernel: 3, when: 1}\n")
    d = only(text, "E204", pos(text, "1}"), "conv")
    assert d.message == "`when` must be true or false, found 1"


def test_negative_repeat():
    text = spec("graph:\n  relu: {op: relu, repeat: -1}\n")
    d = only(text, "E204", pos(text, "-1"), "relu")
    assert d.message == "`repeat` must be a non-negative integer, found -1"


def test_repeat_over_the_limit():
    text = spec("graph:\n  relu: {op: relu, repeat: 1000000}\n")
    d = only(text, "E603", pos(text, "1000000"), "relu")
    assert "--limit max_repeat" in d.hint


# --- expressions --------------------------------------------------------------------------------

def test_undefined_name_in_an_expression_points_inside_it():
    text = spec("params: {width: 8}\ngraph:\n  conv: {op: conv2d, out: \"${2 * widht}\", kernel: 3}\n")
    d = only(text, "E502", pos(text, "widht"), "conv")  # the caret is on the name, not the quote
    assert d.message == "undefined name 'widht'"
    assert d.hint == "did you mean 'width'?"


def test_undefined_name_in_a_when():
    text = spec("graph:\n  relu: {op: relu, when: $use_relu}\n")
    d = only(text, "E502", pos(text, "use_relu"), "relu")
    assert d.message == "undefined name 'use_relu'"


def test_division_by_zero_in_an_expression():
    text = spec("params: {groups: 0}\ngraph:\n  conv: {op: conv2d, out: \"${64 // groups}\", kernel: 3}\n")
    d = only(text, "E504", pos(text, "// groups"), "conv")  # on the operator, as Python's tracebacks do
    assert d.message == "division by zero"


def test_expression_syntax_error():
    text = spec("graph:\n  conv: {op: conv2d, out: \"${3 +}\", kernel: 3}\n")
    d = only(text, "E501", pos(text, "}\""), "conv")  # the operand is missing where the text ends
    assert "invalid expression" in d.message


def test_ordering_a_symbolic_dim():
    text = spec("graph:\n  relu: {op: relu, when: \"${x.batch > 1}\"}\n")
    d = only(text, "E406", pos(text, "> 1"), "relu")
    assert "depends on the input size" in d.message
    assert d.hint == "compare with == or !=, or give input 'x' [N, 3, 32, 32] a concrete N, or decide it with a param"


def test_integer_past_the_limit():
    text = spec("graph:\n  fc: {op: linear, out: \"${2 ** 100}\"}\n")
    d = only(text, "E505", pos(text, "** 100"), "fc")
    assert "64 bits" in d.message


def test_unquoted_expression_in_a_flow_mapping():
    text = spec("graph:\n  fc: {op: linear, out: ${2 * 4}}\n")
    line, col = pos(text, "${")
    d = only(text, "E101", (line, col + 1))  # YAML stops at the "{" of an unquoted "${"
    assert "did not find expected ',' or '}'" in d.message


# --- nothing in a spec is executed --------------------------------------------------------------

@pytest.mark.parametrize("value, culprit", [
    ("${__import__('os').system('touch pwned')}", "system("),
    ("${().__class__}", "__class__"),
    ("${().__class__.__bases__[0].__subclasses__()}", "__subclasses__"),
    ("${x.__class__}", "__class__"),
    ("${open('/etc/passwd')}", "open("),
    ("${eval('1')}", "eval("),
    ("${(lambda: 1)()}", "lambda"),
    ("${[c for c in 'abc']}", "[c for"),
    ("$__class__", "__class__"),
])
def test_expressions_cannot_reach_python(value, culprit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = spec(f"graph:\n  fc: {{op: linear, out: \"{value}\"}}\n")
    d = only(text, "E503", pos(text, culprit), "fc")  # the caret is on the forbidden part
    assert "not allowed" in d.message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch pwned']",
    "!!python/name:os.system",
    "!!python/object/new:subprocess.Popen [['touch', 'pwned']]",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
])
def test_unsafe_yaml_tags_are_refused(tag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = spec(f"graph:\n  relu: {tag}\n")
    d = only(text, "E103", pos(text, "!!"))
    assert "is not allowed" in d.message
    assert not (tmp_path / "pwned").exists()


# --- YAML and the format line --------------------------------------------------------------------

def test_duplicate_yaml_key():
    text = spec("""\
        graph:
          conv: {op: conv2d, out: 8, kernel: 3}
          conv: {op: relu}
        """)
    d = only(text, "E102", pos(text, "conv: {op: relu"))
    assert d.message == "duplicate key 'conv' (first defined on line 5)"


def test_unsupported_format_version():
    text = "specgraph: 2\ninputs:\n  x: [N, 8]\ngraph:\n  fc: {op: linear, out: 4}\n"
    d = only(text, "E205", (1, 12))
    assert d.message == "unsupported format version 2"
    assert d.hint == "this specgraph reads `specgraph: 1`"


def test_missing_format_line():
    text = "inputs:\n  x: [N, 8]\ngraph:\n  fc: {op: linear, out: 4}\n"
    d = only(text, "E202", (1, 1))
    assert "`specgraph: 1` is missing" in d.message


def test_spec_that_is_a_list():
    only("- conv\n- relu\n", "E106", (1, 1))


def test_unknown_input_dtype():
    text = "specgraph: 1\ninputs:\n  x: {shape: [N, 8], dtype: float23}\ngraph:\n  fc: {op: linear, out: 4}\n"
    d = only(text, "E204", pos(text, "float23"))
    assert d.hint == "did you mean 'float32'?"


def test_bad_input_shape_does_not_cascade():
    text = "specgraph: 1\ninputs:\n  x: [N, 3, -1]\ngraph:\n  relu: {op: relu}\n"
    d = only(text, "E204", pos(text, "-1"))  # and no "relu takes 1 input, found 0"
    assert "must be positive" in d.message


# --- includes ------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(dedent(text), encoding="utf-8")
    return path


def test_include_cycle(tmp_path):
    main = write(tmp_path / "main.yaml", """\
        specgraph: 1
        include: [lib.yaml]
        inputs:
          x: [N, 8]
        graph:
          fc: {op: linear, out: 4}
        """)
    write(tmp_path / "lib.yaml", """\
        specgraph: 1
        include: [main.yaml]
        blocks:
          unit:
            nodes:
              r: {op: relu}
        """)
    diags = errors_of(main)
    assert [d.code for d in diags] == ["E307"]
    d = diags[0]
    assert (Path(d.location.file).name, d.location.line, d.location.col) == ("lib.yaml", 2, 11)
    assert d.message == "include cycle: main.yaml -> lib.yaml -> main.yaml"


def test_include_of_a_missing_file(tmp_path):
    main = write(tmp_path / "main.yaml", """\
        specgraph: 1
        include: [blocks/missing.yaml]
        graph:
          fc: {op: linear, out: 4}
        """)
    d = only(main, "E306", (2, 11))
    assert d.message == "cannot include 'blocks/missing.yaml'"
    assert any("file not found" in line for line in d.details)


def test_include_of_a_file_that_is_not_a_spec(tmp_path):
    write(tmp_path / "settings.yaml", "name: my settings\nversion: 3\n")
    main = write(tmp_path / "main.yaml", """\
        specgraph: 1
        include: [settings.yaml]
        graph:
          fc: {op: linear, out: 4}
        """)
    d = only(main, "E306", (2, 11))
    assert d.message == "'settings.yaml' is not a valid spec file"
    assert any("`specgraph: 1` is missing" in line for line in d.details)


def test_include_outside_the_spec_folder(tmp_path):
    (tmp_path / "inner").mkdir()
    write(tmp_path / "lib.yaml", "specgraph: 1\nblocks: {}\n")
    main = write(tmp_path / "inner" / "main.yaml", """\
        specgraph: 1
        include: [../lib.yaml]
        graph:
          fc: {op: linear, out: 4}
        """)
    d = only(main, "E306", (2, 11))
    assert "outside the spec's folder tree" in d.message


def test_spec_file_not_found(tmp_path):
    d = only(str(tmp_path / "nope.yaml"), "E108", (1, 1))
    assert d.message == "file not found"


# --- params from outside: overrides --------------------------------------------------------------

OVERRIDABLE = """\
specgraph: 1
params:
  num_classes: 10
inputs:
  x: [N, 8]
graph:
  fc: {op: linear, out: $num_classes}
"""


def test_override_of_an_unknown_param():
    d = only(OVERRIDABLE, "E308", (2, 1), num_clases=5)  # points at the declared params
    assert d.message == "spec 'spec' has no param 'num_clases' (given as an override)"
    assert d.hint == "did you mean 'num_classes'?"


def test_override_of_the_wrong_type():
    d = only(OVERRIDABLE, "E203", pos(OVERRIDABLE, "num_classes"), num_classes="5")
    assert "expects int, found str '5'" in d.message
    assert "without quotes" in d.hint


def test_override_that_is_fine():
    assert str(specgraph.check(OVERRIDABLE, num_classes=5).node("fc").out) == "[N, 5]"


# --- warnings ------------------------------------------------------------------------------------

def test_unused_input_warns():
    text = "specgraph: 1\ninputs:\n  x: [N, 8]\n  mask: [N, 8]\ngraph:\n  fc: {op: linear, out: 4, from: x}\n"
    graph = specgraph.check(text)
    assert [(w.code, w.severity, w.location.line, w.location.col) for w in graph.warnings] == [("W301", "warning", 4, 3)]
    assert graph.warnings[0].message == "input 'mask' is not used"


def test_node_not_reaching_an_output_warns():
    text = spec("""\
        graph:
          side: {op: relu, from: x}
          main: {op: sigmoid, from: x}
        outputs: [main]
        """)
    graph = specgraph.check(text)
    assert [(w.code, w.path, (w.location.line, w.location.col)) for w in graph.warnings] == [
        ("W302", "side", pos(text, "side"))]
    assert "does not reach any output" in graph.warnings[0].message


# --- limits ------------------------------------------------------------------------------------

def test_graph_node_limit():
    text = spec("graph:\n  relu: {op: relu, repeat: 20}\n")
    with pytest.raises(SpecError) as info:
        specgraph.check(specgraph.load(text, limits=Limits(max_graph_nodes=10)))
    assert info.value.codes == ["E601"]
    assert "--limit max_graph_nodes" in info.value.diagnostics[0].hint


def test_tensor_size_limit():
    text = "specgraph: 1\ninputs:\n  x: [N, 8]\ngraph:\n  fc: {op: linear, out: 1099511627777}\n"
    d = only(text, "E602", pos(text, "fc"), "fc")
    assert "--limit max_dim" in d.hint


def test_yaml_depth_limit():
    text = "specgraph: 1\nname: " + "[" * 100 + "]" * 100 + "\n"
    d = only(text, "E104", (2, 6 + 64))  # the 64th '[', 65 levels under the document
    assert "max_yaml_depth" in d.hint


# --- many errors, one run ------------------------------------------------------------------------

def test_independent_errors_are_all_reported_sorted_by_location():
    text = spec("""\
        graph:
          conv1: {op: conv2d, out: 8, kernel: 3, padding: 1}
          bad1:  {op: reluu}
          conv2: {op: conv2d, out: 8, kernal: 3, from: conv1}
          bad3:  {op: relu, from: nowhere}
          pool:  {op: maxpool2d, kernel: 2, from: conv1}
          fc:    {op: linear, out: 10, from: pool}
          after: {op: relu, from: bad1}
        outputs: [fc, after]
        """)
    diags = errors_of(text)
    assert [(d.code, d.path, (d.location.line, d.location.col)) for d in diags] == [
        ("E302", "bad1", pos(text, "reluu")),
        ("E201", "conv2", pos(text, "kernal")),
        ("E301", "bad3", pos(text, "nowhere")),
        ("E410", "fc", pos(text, "fc:")),
    ]  # `after` depends on the failed bad1, so it stays silent
    locations = [(d.location.line, d.location.col) for d in diags]
    assert locations == sorted(locations)


def test_error_in_a_block_used_many_times_is_reported_once():
    text = spec("""\
        blocks:
          unit:
            params: {width: int}
            nodes:
              conv: {op: conv2d, out: $width, kernel: 3, padding: 1}
              fc:   {op: linear, out: 4}
        graph:
          u1: {block: unit, width: 8, from: x}
          u2: {block: unit, width: 8, from: x}
          u3: {block: unit, width: 16, from: x}
          u4: {block: unit, width: 8, from: x, repeat: 3}
        """)
    d = only(text, "E410", pos(text, "fc:"), "u1.fc")
    assert d.details[-1] == "also in: u2.fc, u3.fc, u4.0.fc"


def test_typo_in_a_block_used_many_times_is_reported_once():
    text = spec("""\
        blocks:
          unit:
            nodes:
              bn: {op: batchnrom2d}
        graph:
          u1: {block: unit, from: x}
          u2: {block: unit, from: x}
        """)
    d = only(text, "E302", pos(text, "batchnrom2d"), "u1.bn")
    assert d.hint == "did you mean 'batchnorm2d'?"
    assert d.details == ("also in: u2.bn",)


# --- the rendering --------------------------------------------------------------------------------

def test_format_has_header_source_line_and_caret(tmp_path):
    path = write(tmp_path / "net.yaml", """\
        specgraph: 1
        inputs:
          x: [N, 3, 32, 32]
        graph:
          conv1: {op: conv2d, out: 8, kernel: 3, padding: 1}
          conv2: {op: conv2d, out: 16, kernel: 3, padding: 1, from: x}
          add:   {op: add, from: [conv1, conv2]}
        """)
    d = only(path, "E402", (7, 3), "add")
    lines = d.format().splitlines()
    assert re.fullmatch(r".*net\.yaml:7:3: error\[E402\] node 'add': add: inputs disagree on dim 1 .*", lines[0])
    assert lines[1:3] == ["  conv1 -> [N, 8, 32, 32]", "  conv2 -> [N, 16, 32, 32]"]
    assert lines[3] == "    7 |   add:   {op: add, from: [conv1, conv2]}"
    assert lines[4] == "      |   ^"
    assert lines[5].startswith("  hint: ")


def test_caret_sits_under_the_column():
    text = spec("graph:\n  relu: {op: relu, form: conv}\n")
    d = only(text, "E201", pos(text, "form"), "relu")
    source, caret = d.format().splitlines()[1:3]
    assert source.index("form") == caret.index("^")


def test_warning_format_says_warning():
    text = "specgraph: 1\ninputs:\n  x: [N, 8]\n  y: [N, 8]\ngraph:\n  fc: {op: linear, out: 4, from: x}\n"
    head = specgraph.check(text).warnings[0].format().splitlines()[0]
    assert head == "<string>:4:3: warning[W301]: input 'y' is not used"


# --- the command line ----------------------------------------------------------------------------

BAD = """\
specgraph: 1
inputs:
  x: [N, 3, 32, 32]
graph:
  conv: {op: conv2d, out: 8, kernal: 3}
  pool: {op: maxpool2d, kernel: 2, from: x}
  fc:   {op: linear, out: 10}
"""


@pytest.fixture
def runner():
    return CliRunner()


def test_cli_check_bad_spec_exits_1_with_diagnostics(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD)
    result = runner.invoke(app, ["check", "bad.yaml"])
    assert result.exit_code == 1
    assert "bad.yaml:5:30: error[E201] node 'conv': unknown key 'kernal' in op conv2d" in result.output
    assert "bad.yaml:7:3: error[E410] node 'fc'" in result.output
    assert "hint: did you mean 'kernel'?" in result.output
    assert result.output.rstrip().endswith("2 errors")
    assert "Traceback" not in result.output


def test_cli_check_good_spec_exits_0(runner):
    result = runner.invoke(app, ["check", str(SPECS / "resnet18.yaml")])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "[N, 1000]" in result.output


def test_cli_usage_errors_exit_2(runner, tmp_path):
    (tmp_path / "bad.yaml").write_text(BAD)
    assert runner.invoke(app, ["check"]).exit_code == 2
    assert runner.invoke(app, ["check", str(tmp_path / "bad.yaml"), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["check", str(tmp_path / "bad.yaml"), "--limit", "max_nodez=3"]).exit_code == 2
    assert runner.invoke(app, ["check", str(tmp_path / "bad.yaml"), "--set", "no_equals_sign"]).exit_code == 2


def test_cli_json_diagnostics(tmp_path, runner):
    (tmp_path / "bad.yaml").write_text(BAD)
    result = runner.invoke(app, ["check", str(tmp_path / "bad.yaml"), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    first = report["diagnostics"][0]
    assert {k: first[k] for k in ("code", "severity", "path", "line", "col")} == {
        "code": "E201", "severity": "error", "path": "conv", "line": 5, "col": 30}
    assert first["hint"] == "did you mean 'kernel'?"
    assert [d["code"] for d in report["diagnostics"]] == ["E201", "E410"]


def test_cli_json_of_a_good_spec_lists_warnings(tmp_path, runner):
    (tmp_path / "net.yaml").write_text("specgraph: 1\ninputs:\n  x: [N, 8]\n  y: [N, 8]\ngraph:\n  fc: {op: linear, out: 4, from: x}\n")
    result = runner.invoke(app, ["check", str(tmp_path / "net.yaml"), "--format", "json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [(d["code"], d["line"], d["col"]) for d in report["diagnostics"]] == [("W301", 4, 3)]


def test_cli_set_override_errors(runner):
    result = runner.invoke(app, ["check", str(SPECS / "resnet18.yaml"), "--set", "num_classes=ten"])
    assert result.exit_code == 1
    assert "error[E203]" in result.output and "expects int, found str 'ten'" in result.output
    result = runner.invoke(app, ["check", str(SPECS / "resnet18.yaml"), "--set", "num_clases=10"])
    assert result.exit_code == 1
    assert "error[E308]" in result.output and "did you mean 'num_classes'?" in result.output
    result = runner.invoke(app, ["check", str(SPECS / "resnet18.yaml"), "--set", "num_classes=10"])
    assert result.exit_code == 0 and "[N, 10]" in result.output


def test_cli_limit_raises_a_limit(tmp_path, runner):
    (tmp_path / "deep.yaml").write_text(spec("graph:\n  relu: {op: relu, repeat: 200}\n"))
    small = runner.invoke(app, ["check", str(tmp_path / "deep.yaml"), "--limit", "max_repeat=100"])
    assert small.exit_code == 1 and "error[E603]" in small.output
    assert runner.invoke(app, ["check", str(tmp_path / "deep.yaml"), "--limit", "max_repeat=1000"]).exit_code == 0


def test_cli_console_script_prints_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("specgraph")
    if not exe.exists():
        pytest.skip("the specgraph console script is not installed")
    (tmp_path / "bad.yaml").write_text(BAD)
    for args, code in (([str(tmp_path / "bad.yaml")], 1), ([str(tmp_path / "missing.yaml")], 1),
                       ([str(tmp_path)], 1), ([str(SPECS / "lenet5.yaml")], 0)):
        proc = subprocess.run([str(exe), "check", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr


# --- robustness: mutated specs fail with SpecError and nothing else --------------------------------

SPEC_TEXTS = {p.name: p.read_text(encoding="utf-8") for p in sorted(SPECS.glob("*.yaml"))}
REPLACEMENTS = ["0", "-1", "1", "3", "7", "1000000000000000000000", "0.5", "true", "null", "[]", "''", "$N",
                "${1 // 0}", "[1, 2, 3]"]


@st.composite
def mutated_spec(draw):
    name = draw(st.sampled_from(sorted(SPEC_TEXTS)))
    text = SPEC_TEXTS[name]
    lines = text.split("\n")
    kind = draw(st.sampled_from(["delete", "duplicate", "number"]))
    if kind == "number":
        numbers = list(re.finditer(r"(?<![\w.$])\d+(?![\w.])", text))
        m = draw(st.sampled_from(numbers))
        return text[:m.start()] + draw(st.sampled_from(REPLACEMENTS)) + text[m.end():]
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "delete":
        del lines[i]
    else:
        lines.insert(i, lines[i])
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=mutated_spec())
def test_mutated_specs_raise_only_spec_errors(text, monkeypatch):
    monkeypatch.chdir(SPECS)  # includes resolve as they do for the real files
    try:
        graph = specgraph.check(text)
    except SpecError as e:
        assert e.diagnostics, "a SpecError carries at least one diagnostic"
        for d in e.diagnostics:
            assert re.fullmatch(r"[EW]\d{3}", d.code)
            if d.location is not None:
                assert d.location.line >= 1 and d.location.col >= 1
        e.format()
    else:
        assert len(graph) > 0


# --- docs/errors.md documents every code, with examples that do what they say --------------------

DOCS = ROOT / "docs" / "errors.md"
CODE_RE = re.compile(r"""["'](E\d{3}|W\d{3})["']""")


def emitted_codes() -> set[str]:
    codes = set()
    for path in (ROOT / "specgraph").rglob("*.py"):
        codes |= set(CODE_RE.findall(path.read_text(encoding="utf-8")))
    codes |= set(re.findall(r"error\[(E\d{3})\]", (ROOT / "specgraph" / "cli" / "app.py").read_text(encoding="utf-8")))
    return codes


def documented_examples() -> list[tuple[str, str, str, str]]:
    """(kind, code, yaml, output shown) for each example in docs/errors.md marked `<!-- bad E123 -->`
    (followed by the output it gives) or `<!-- good -->`."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.findall(r"<!-- (bad|good) ?(E\d{3}|W\d{3})? -->\n```yaml\n(.*?)```(?:\n\ngives:\n\n```text\n(.*?)```)?",
                       text, flags=re.S)
    return [(kind, code, body, shown) for kind, code, body, shown in found]


HEADER = re.compile(r"^(\S+:\d+:\d+: (?:error|warning)\[[EW]\d{3}\])", flags=re.M)


def test_every_code_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#### ([EW]\d{3})\b", text, flags=re.M))
    missing = emitted_codes() - documented
    assert not missing, f"codes emitted but not documented in docs/errors.md: {sorted(missing)}"


def test_documented_examples_behave_as_documented(tmp_path, monkeypatch):
    """Each bad example gives its code at the place shown; each fixed one compiles cleanly."""
    monkeypatch.chdir(tmp_path)
    examples = documented_examples()
    assert sum(kind == "bad" for kind, *_ in examples) >= 35
    for kind, code, body, shown in examples:
        if kind == "bad":
            try:
                graph = specgraph.check(body)
            except SpecError as e:
                diags = e.diagnostics
            else:
                diags = graph.warnings
            actual = "\n".join(d.format() for d in diags).replace("<string>", "net.yaml")
            assert code in {d.code for d in diags}, f"expected {code}:\n{body}\n{actual}"
            assert HEADER.findall(shown) == HEADER.findall(actual), f"docs/errors.md shows for {code}:\n{shown}\nbut:\n{actual}"
        else:
            graph = specgraph.check(body)
            assert not graph.warnings, f"{body}\n" + "\n".join(w.format() for w in graph.warnings)


def test_an_op_written_as_another_library_calls_it_is_answered_by_meaning():
    from specgraph.ops import REGISTRY, all_ops

    for written, meant in [("dense", "linear"), ("Dense", "linear"), ("bmm", "matmul"), ("hard-swish", "hardswish"),
                           ("stochastic_depth", "drop_path"), ("cat", "concat"), ("mha", "multihead_attention")]:
        assert REGISTRY.meaning(written) == meant
        spec = f"specgraph: 1\ninputs: {{x: [N, 4]}}\ngraph:\n  a: {{op: {written}, out: 3}}\n"
        with pytest.raises(specgraph.SpecError) as info:
            specgraph.check(spec)
        d = info.value.diagnostics[0]
        assert d.code == "E302" and d.hint == f"did you mean '{meant}'? (what '{written}' is called here)"
    # an alias never shadows an op: no op's alias is another op's name
    names = set(all_ops())
    assert not {a for op in all_ops().values() for a in op.aliases} & names


def test_a_param_written_as_another_library_calls_it_is_answered_by_meaning():
    from specgraph.ops import all_ops
    from specgraph.ops.base import PARAM_MEANINGS

    spec = """specgraph: 1
inputs: {x: [N, 3, 16, 16]}
graph:
  c: {op: conv2d, out_channels: 8, kernel_size: 3, in_channels: 3}
  u: {op: interpolate, scale_factor: 2, from: x}
  a: {op: multihead_attention, num_heads: 2, from: [t, t, t]}
  t: {op: flatten, start_dim: 2, from: x}
"""
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(spec)
    hints = {(d.path, d.message.split("'")[1]): d.hint for d in info.value.diagnostics}
    assert hints == {
        ("c", "out_channels"): "did you mean 'out'? (what 'out_channels' is called here)",
        ("c", "kernel_size"): "did you mean 'kernel'? (what 'kernel_size' is called here)",
        ("c", "in_channels"): "'in_channels' is read from the input's shape: leave it out",
        ("u", "scale_factor"): "did you mean 'scale'? (what 'scale_factor' is called here)",
        ("a", "num_heads"): "did you mean 'heads'? (what 'num_heads' is called here)",
    }  # and no "needs the key 'out'" beside the key that meant it
    # every name the table maps to is some op's param: the table cannot point at nothing
    params = {f for op in all_ops().values() if getattr(op, "Params", None) for f in op.Params.model_fields}
    assert {m for targets in PARAM_MEANINGS.values() for m in targets} <= params


@pytest.mark.parametrize("op", ["parameter", "buffer"])
def test_a_node_that_reads_nothing_reports_its_own_error_after_a_failed_one(op):
    # it takes no implicit input, so the failed node before it does not silence it
    spec = f"""specgraph: 1
inputs: {{x: [N, 4]}}
graph:
  a: {{op: linear, out: 2, kernal: 3}}
  token: {{op: {op}, shape: [1, 2], initializer: bogus}}
  b: {{op: add, from: [a, token]}}
"""
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(spec)
    assert [(d.code, d.path) for d in info.value.diagnostics] == [("E201", "a"), ("E203", "token")]
