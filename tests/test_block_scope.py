"""What a block and a node see, and what they may demand: `let:` over the block's inputs,
`index` in a repeated node's `when:`, `uses:` (the caller's values, inherited explicitly),
`require:` (what the params must satisfy), expressions in `from:`, and inline repeats named by
a template.  Each is checked against a plain-PyTorch model or by the exact shapes and names it
must give, and each mistake by its exact code and place."""

from __future__ import annotations

from textwrap import dedent

import pytest
import torch

import specgraph
from specgraph import SpecError


def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def errors_of(text: str, **params) -> list:
    with pytest.raises(SpecError) as info:
        specgraph.check(text, **params)
    return info.value.diagnostics


def only(text: str, code: str, at: tuple[int, int], path: str | None, **params):
    diags = errors_of(text, **params)
    shown = "\n".join(d.format() for d in diags)
    assert [(d.code, (d.location.line, d.location.col), d.path) for d in diags] == [(code, at, path)], shown
    return diags[0]


# --- let over the block's inputs ---------------------------------------------------------------------

INVERTED = dedent("""\
    specgraph: 1
    params: {ratios: [1, 6, 6]}
    inputs:
      x: [N, 16, 8, 8]
    blocks:
      inverted:
        params: {t: int, out: int}
        let:                                   # in order: the inputs, then each value before
          hidden: "${make_divisible(x.channels * t, 8)}"
          residual: "${x.channels == out}"
        nodes:
          expand:  {op: conv2d, out: $hidden, kernel: 1, when: "${hidden != x.channels}"}
          dw:      {op: conv2d, out: $hidden, kernel: 3, padding: 1, groups: $hidden}
          project: {op: conv2d, out: $out, kernel: 1}
          add:     {op: add, from: [project, x], when: $residual}
    graph:
      blocks: {block: inverted, repeat: "${len(ratios)}", t: "${ratios[index]}", out: "${24 if index == 1 else 16}"}
    """)


def test_let_reads_the_block_inputs_in_order_and_when_reads_let():
    graph = specgraph.check(INVERTED)
    # copy 0: t 1 keeps 16 wide, no expand, a residual; copy 1: 96 wide, 24 out, no residual
    assert "blocks.0.expand" not in graph and "blocks.0.add" in graph
    assert graph.node("blocks.1.expand").out.shape[1] == 96 and "blocks.1.add" not in graph
    assert graph.node("blocks.2.expand").out.shape[1] == 144 and graph.scopes["blocks.2"].params["hidden"] == 144
    model = specgraph.build(graph).eval()
    x = torch.randn(2, 16, 8, 8)
    m = dict(model.named_modules())

    def block(i, y, expand, residual):
        h = m[f"blocks.{i}.expand"](y) if expand else y
        out = m[f"blocks.{i}.project"](m[f"blocks.{i}.dw"](h))
        return out + y if residual else out

    want = block(2, block(1, block(0, x, False, True), True, False), True, False)
    torch.testing.assert_close(model(x), want)


def test_let_named_like_an_input_is_a_clash():
    text = INVERTED.replace("residual: ", "x: ")
    d = only(text, "E305", pos(text, "x: \"${x.channels == out}"), "blocks.0")
    assert d.message == "`let` value 'x' has the name of an input"


# --- index in the `when:` of a repeated node ------------------------------------------------------------

def test_when_of_a_repeated_node_sees_index_copy_by_copy():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 4]
        graph:
          layers: {op: linear, out: 4, repeat: 5, when: "${index % 2 == 0}"}
        """)
    graph = specgraph.check(text)
    # copies 0, 2 and 4 exist, numbered in order as a seq numbers its items
    assert [n.path for n in graph.op_nodes()] == ["layers.0", "layers.1", "layers.2"]
    named = specgraph.check(text.replace("repeat: 5,", 'repeat: 5, name: "fc{index}",'))
    assert [n.path for n in named.op_nodes()] == ["layers.fc0", "layers.fc2", "layers.fc4"]


def test_when_of_a_repeated_node_without_index_decides_once():
    text = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  layers: {op: relu, repeat: 3, when: false}\n  out: {op: sigmoid}\n"
    graph = specgraph.check(text)
    assert [n.path for n in graph.op_nodes()] == ["out"] and "layers" not in graph.scopes


# --- uses: the caller's values, inherited explicitly -----------------------------------------------------------

USES = dedent("""\
    specgraph: 1
    params: {eps: 0.001, act: silu}
    inputs:
      x: [N, 3, 8, 8]
    blocks:
      conv_bn:
        params: {out: int, momentum: 0.1}
        uses: [eps, act, momentum]       # momentum: the caller's where it has one, else 0.1
        nodes:
          conv: {op: conv2d, out: $out, kernel: 3, padding: 1}
          bn:   {op: batchnorm2d, eps: $eps, momentum: $momentum}
          act:  {op: $act}
      stage:
        params: {out: int}
        uses: [eps, act]
        nodes:
          a: {block: conv_bn, out: $out}
          b: {block: conv_bn, out: $out, act: relu, eps: 0.01}   # an instance may still give its own
    graph:
      s: {block: stage, out: 8}
    """)


def test_uses_takes_the_callers_values_through_every_level():
    graph = specgraph.check(USES)
    assert graph.node("s.a.bn").params.eps == 0.001 and graph.node("s.a.act").op_name == "silu"
    assert graph.node("s.a.bn").params.momentum == 0.1  # no caller has one: the block's default
    assert graph.node("s.b.bn").params.eps == 0.01 and graph.node("s.b.act").op_name == "relu"
    assert specgraph.check(USES, eps=1e-5).node("s.a.bn").params.eps == 1e-5
    model = specgraph.build(graph).eval()
    assert model.get_submodule("s.a.bn").eps == 0.001 and model.get_submodule("s.b.bn").eps == 0.01


def test_uses_shows_in_the_diagram():
    source = specgraph.render(USES).source
    assert "uses: eps 0.001 · act silu" in source


def test_uses_of_a_name_the_caller_lacks_is_refused_at_the_instance():
    text = USES.replace("    uses: [eps, act]\n", "")
    d = only(text, "E309", pos(text, "a: {block: conv_bn"), "s.a")
    assert d.message == "block 'conv_bn' uses 'eps', 'act' from its caller, but block 'stage' has no 'eps', 'act'"
    assert d.details == (f"<string>:{pos(text, '[eps, act, momentum]')[0]}:{pos(text, '[eps, act, momentum]')[1] + 1}: "
                         "`uses: [eps, act, momentum]`",)
    assert "declare 'eps', 'act' in the params or `uses:` of block 'stage'" in d.hint


def test_uses_keeps_a_declared_type():
    text = USES.replace("params: {out: int, momentum: 0.1}", "params: {out: int, momentum: 0.1, act: int}")
    d = errors_of(text)[0]
    assert d.code == "E203" and "param 'act' of block 'conv_bn' expects int, found str 'silu'" in d.message


# --- require: what the params must satisfy ------------------------------------------------------------

def test_a_spec_requirement_refuses_a_combination_of_params_at_its_text():
    text = dedent("""\
        specgraph: 1
        params: {depths: [2, 2], widths: [8, 16]}
        require:
          "${len(depths) == len(widths)}": "one width per stage"
        inputs:
          x: [N, 4]
        graph:
          fc: {op: linear, out: "${widths[-1]}"}
        """)
    assert specgraph.check(text).node("fc").out.shape[1] == 16
    d = only(text, "E310", pos(text, '"${len(depths)'), None, depths=[2, 2, 2])
    assert d.message == "requirement not met: one width per stage"
    assert d.details == ("len(depths) == len(widths) is false with depths = [2, 2, 2], widths = [8, 16]",)


def test_a_block_requirement_sees_its_params_and_inputs_and_names_the_instance():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 12, 8, 8]
        blocks:
          grouped:
            params: {groups: int}
            require:
              "${x.channels % groups == 0}": "the groups split the input channels"
            nodes:
              conv: {op: conv2d, out: 12, kernel: 1, groups: $groups}
        graph:
          a: {block: grouped, groups: 3}
          b: {block: grouped, groups: 5}
        """)
    d = only(text, "E310", pos(text, '"${x.channels'), "b")
    assert d.details == ("x.channels % groups == 0 is false with groups = 5, x = the tensor [N, 12, 8, 8]",)


@pytest.mark.parametrize("entry, code, words", [
    ('"depth > 0": "positive"', "E204", "a requirement is an expression"),
    ('"${depth}": "positive"', "E204", "a requirement must be true or false, found 2"),
    ('"${depth > 0}": 3', "E203", "the message of a requirement is text"),
    ('"${dpeth > 0}": "positive"', "E502", "undefined name 'dpeth'"),
])
def test_a_malformed_requirement_is_located(entry, code, words):
    text = f"specgraph: 1\nparams: {{depth: 2}}\nrequire:\n  {entry}\ninputs: {{x: [N, 4]}}\ngraph:\n  r: {{op: relu}}\n"
    d = errors_of(text)[0]
    assert d.code == code and words in d.message and d.location.line == 4


# --- expressions in from: ---------------------------------------------------------------------------------

FROM = dedent("""\
    specgraph: 1
    params: {skip: true, taps: [a, b]}
    inputs:
      x: [N, 4]
    graph:
      a:   {op: linear, out: 4, from: x}
      b:   {op: linear, out: 4, from: x}
      sum: {op: add, from: $taps}
      out: {op: relu, from: "${'sum' if skip else 'a'}"}
    """)


def test_from_may_be_an_expression_over_the_params():
    graph = specgraph.check(FROM)
    assert [v.node for v in graph.node("sum").inputs] == ["a", "b"] and graph.node("out").inputs[0].node == "sum"
    assert specgraph.check(FROM, skip=False).node("out").inputs[0].node == "a"
    model = specgraph.build(graph).eval()
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), torch.relu(model.a(x) + model.b(x)))


def test_a_from_expression_is_checked_like_a_written_reference():
    d = only(FROM, "E301", pos(FROM, "$taps"), "sum", taps=["a", "bb"])
    assert d.message == "undefined reference 'bb'" and d.hint == "did you mean 'b'?"


def test_a_from_expression_that_gives_no_name_or_reads_a_tensor():
    d = only(FROM, "E203", pos(FROM, "$taps"), "sum", taps=[1, 2])
    assert "`from` names nodes: its expression gives 1, not a name" in d.message
    text = FROM.replace("from: $taps", "from: [a, $x]")
    d = only(text, "E204", pos(text, "[a, $x]"), "sum")
    assert d.hint == "write `from: x`"


def test_a_from_expression_orders_the_nodes():
    # `a` written last: what the expression names is a dependency, so `a` comes before `sum`
    text = FROM.replace("  a:   {op: linear, out: 4, from: x}\n", "") + "  a:   {op: linear, out: 4, from: x}\n"
    assert [n.path for n in specgraph.check(text).op_nodes()] == ["b", "a", "sum", "out"]


# --- inline repeats named by a template ----------------------------------------------------------------------

def test_an_inline_named_repeat_puts_each_copy_beside_its_siblings():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 4]
        blocks:
          unit:
            params: {n: int}
            nodes:
              layers: {op: linear, out: 4, repeat: $n, inline: true, name: "part{n}-{index}"}
        graph:
          trunk:
            seq: [{op: relu}]
          stages: {block: unit, repeat: 2, inline: true, name: "stage{index + 1}", n: "${index + 2}"}
        """)
    graph = specgraph.check(text)
    assert [n.path for n in graph.op_nodes()] == [
        "trunk.0", "stage1.part2-0", "stage1.part2-1", "stage2.part3-0", "stage2.part3-1", "stage2.part3-2"]
    assert graph.scopes["stage2"].kind == "block"


def test_a_named_repeat_inside_a_seq_is_refused():
    text = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  s: {seq: [{op: relu, repeat: 2, name: \"r{index}\"}]}\n"
    d = only(text, "E204", pos(text, "name:"), "s.0")
    assert "not inside a seq" in d.message
