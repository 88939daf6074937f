"""Diagnostics a compiler owes its user: every independent mistake in one run, symbolic sizes
shown as the user writes them (and E406 with the fix where a number is needed), the implicit
`from` explained where it confuses, hints that name the cause, and warnings for what is
declared and never used (silenced by `check --no-warn`)."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
from typer.testing import CliRunner

import specgraph
from specgraph import SpecError
from specgraph.cli.app import app
from specgraph.ir import dims


def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def found(text: str, **params) -> list[tuple]:
    """(code, (line, col), path) of each diagnostic of a spec that fails."""
    with pytest.raises(SpecError) as info:
        specgraph.check(text, **params)
    return [(d.code, (d.location.line, d.location.col), d.path) for d in info.value.diagnostics]


def errors_of(text: str, **params):
    with pytest.raises(SpecError) as info:
        specgraph.check(text, **params)
    return info.value.diagnostics


# --- every independent error in one run ----------------------------------------------------------------------

CHAIN = dedent("""\
    specgraph: 1
    inputs:
      x: [N, 3, 32, 32]
    graph:
      conv: {op: conv2d, out: 8, kernal: 3}
      bn:   {op: batchnorm}
      relu: {op: relu}
      flat: {op: flatten}
      fc:   {op: linear, out: "10"}
    """)


def test_three_mistakes_in_a_chain_are_three_errors():
    assert found(CHAIN) == [("E201", pos(CHAIN, "kernal"), "conv"), ("E302", pos(CHAIN, "batchnorm"), "bn"),
                            ("E203", pos(CHAIN, '"10"'), "fc")]


def test_three_mistakes_in_a_seq_are_three_errors():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 3, 32, 32]
        blocks:
          unit:
            params: {k: int}
            nodes:
              r: {op: relu}
        graph:
          features:
            seq:
              - {op: conv2d, out: 8, kernal: 3}
              - {op: batchnorm}
              - {block: unit, k: "3", extra: 1}
              - {op: linear, out: "${features.width}"}
        """)
    assert found(text) == [("E201", pos(text, "kernal"), "features.0"), ("E302", pos(text, "batchnorm"), "features.1"),
                           ("E203", pos(text, 'k: "3"'), "features.2"), ("E308", pos(text, "extra"), "features.2"),
                           ("E502", pos(text, "features.width"), "features.3")]


def test_what_depends_on_the_failed_shape_stays_silent():
    # c2's `out` reads the failed c1's shape, c3 takes a wrong number of inputs only because c1 failed,
    # d has its own independent mistake
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 3, 32, 32]
        graph:
          c1: {op: conv2d, out: 8, kernal: 3}
          c2: {op: conv2d, out: "${c1.channels * 2}", kernel: 1}
          c3: {op: add, from: [c1, c2]}
          d:  {op: conv2d, out: 8, kernel: 3, from: x, stride: 0}
        """)
    assert found(text) == [("E201", pos(text, "kernal"), "c1"), ("E204", pos(text, "0}"), "d")]


def test_a_mistake_in_an_instance_whose_input_failed_is_told():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 3, 32, 32]
        blocks:
          unit:
            params: {width: int}
            nodes:
              conv: {op: conv2d, out: $width, kernel: 1}
        graph:
          stem: {op: conv2d, out: 8, kernel: 3, paddding: 1}
          body: {block: unit, widht: 8}
          head: {block: unknown_block}
        """)
    assert [c for c, *_ in found(text)] == ["E201", "E308", "E303"]


# --- symbolic values as the user writes them; E406 where a number is needed -------------------------------

def test_symbolic_dims_print_with_floor_brackets_and_spaces_and_simplified():
    W, H = dims.symbol("W"), dims.symbol("H")
    x = dims.floordiv(dims.sub(W, 16), 16)
    assert str(x) == repr(x) == "⌊(W - 16)/16⌋"
    assert str(dims.floordiv(H, 8)) == "⌊H/8⌋" and str(dims.ceildiv(H, 4)) == "⌈H/4⌉"
    assert str(dims.sub(dims.mul(2, H), 3)) == "2*H - 3"
    # ⌊(⌊W/8⌋ - 2*⌊(W - 16)/16⌋ - 2)/2⌋, the message a user met, is 0 at every W
    y = dims.floordiv(dims.sub(dims.floordiv(W, 8), dims.add(dims.mul(x, 2), 2)), 2)
    assert y == 0
    for w in range(16, 200):
        assert dims.evaluate(dims.floordiv(dims.add(dims.mul(2, H), 1), 2), {"H": w}) == w


@pytest.mark.parametrize("body, code, message, hint", [
    ('c: {op: conv2d, out: "${x.width * 2}", kernel: 1}', "E406",
     "op conv2d: 'out' needs a number, found the symbolic dim 2*W",
     "`out` is fixed before any tensor exists: give input 'x' [N, 3, H, W] a concrete W"),
    ('c: {op: interpolate, size: ["${x.height // 2}", 4]}', "E406",
     "op interpolate: 'size.0' needs a number, found the symbolic dim ⌊H/2⌋",
     "interpolate sizes against a tensor at run time: leave `size` out and give that tensor as its second input"),
    ('c: {block: b, k: "${x.width * 2}"}', "E406", "param 'k' of block 'b' needs a number (int), found the "
     "symbolic dim 2*W", "declare it `any` to pass a symbolic size through, or give input 'x' [N, 3, H, W] a "
     "concrete W"),
    ('c: {op: relu, repeat: "${x.height}"}', "E406", "`repeat` needs a number, found the symbolic dim H",
     "give input 'x' [N, 3, H, W] a concrete H, or count with a param"),
    ('c: {op: relu, when: "${max(x.height, 4) > 8}"}', "E406", "max() needs a number, found the symbolic dim H",
     "give input 'x' [N, 3, H, W] a concrete H, or decide it with a param"),
])
def test_a_symbolic_dim_where_a_number_is_needed_is_e406_with_the_fix(body, code, message, hint):
    text = f"specgraph: 1\ninputs:\n  x: [N, 3, H, W]\nblocks:\n  b:\n    params: {{k: int}}\n    nodes:\n      r: {{op: relu}}\ngraph:\n  {body}\n"
    d = errors_of(text)[0]
    assert (d.code, d.message) == (code, message) and d.hint.startswith(hint), d.format()
    assert "Sym(" not in d.format()


def test_no_message_shows_internals():
    # a tensor given where a number is meant says so in words
    text = "specgraph: 1\ninputs: {x: [N, 3, H, W]}\ngraph:\n  c: {op: linear, out: $x}\n"
    d = errors_of(text)[0]
    assert d.message == "op linear: 'out' expected a valid integer; found the tensor [N, 3, H, W]"


# --- the implicit from, explained where it confuses -------------------------------------------------------

def test_a_cycle_made_by_written_order_names_the_implicit_edge():
    text = dedent("""\
        specgraph: 1
        inputs:
          x: [N, 3, 32, 32]
        graph:
          pool: {op: maxpool2d, kernel: 2, from: conv}
          conv: {op: conv2d, out: 8, kernel: 3}
        """)
    d = errors_of(text)[0]
    assert (d.code, (d.location.line, d.location.col)) == ("E304", pos(text, "pool:"))
    assert d.message == "cycle: pool -> conv -> pool"
    assert d.details == ("'conv' takes the previous node 'pool' because it has no `from:`",)
    assert d.hint == "give 'conv' a `from:` naming its input, or write it before 'pool'"


def test_a_cycle_of_written_froms_names_no_implicit_edge():
    text = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  a: {op: relu, from: b}\n  b: {op: relu, from: a}\n"
    d = errors_of(text)[0]
    assert d.details == () and "remove one `from`" in d.hint


def test_a_node_written_after_the_output_names_it():
    text = "specgraph: 1\ninputs:\n  x: [N, 8]\ngraph:\n  fc: {op: linear, out: 4}\n  drop: {op: dropout, p: 0.5}\noutputs: [fc]\n"
    (w,) = specgraph.check(text).warnings
    assert (w.code, w.path, (w.location.line, w.location.col)) == ("W302", "drop", pos(text, "drop:"))
    assert w.message == ("node does not reach any output: it is written after the output 'fc' and reads it, "
                         "but the model returns 'fc' as it is")
    assert "write it before 'fc'" in w.hint


# --- hints that match the cause -------------------------------------------------------------------------------

@pytest.mark.parametrize("key, hint", [
    ("inlin", "allowed keys: any_rank, bias, doc, from, name, op, out, repeat, weight_norm, when"),  # not `inline`
    ("bais", "did you mean 'bias'?"),
    ("form", "did you mean 'from'?"),
])
def test_an_unknown_op_key_is_answered_among_what_an_op_node_takes(key, hint):
    text = f"specgraph: 1\ninputs: {{x: [N, 4]}}\ngraph:\n  c: {{op: linear, out: 4, {key}: true}}\n"
    (d,) = errors_of(text)
    assert (d.code, d.hint) == ("E201", hint)


def test_a_scan_key_on_an_op_node_is_answered_by_the_ops_param():
    text = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  c: {op: prelu, init: 0.1}\n"
    (d,) = errors_of(text)
    assert (d.code, d.hint) == ("E204", "did you mean 'init_slope'? (what 'init' is called here)")
    assert specgraph.check(text.replace("init:", "init_slope:")).node("c").params.init_slope == 0.1


def test_an_op_param_named_like_a_node_key_is_refused_at_registration():
    from specgraph.ops import Op, OpParams, get_op, register_op
    from specgraph.ops.base import Float

    class Bad(Op):
        name = "test_bad_init"

        class Params(OpParams):
            init: Float = 0.1

    with pytest.raises(ValueError, match=r"op 'test_bad_init' \(Bad\): param 'init' has the name of a node key, "
                                         r"so `init:` on a node would never reach the op; rename it"):
        register_op(Bad)
    assert get_op("test_bad_init") is None


# --- warnings: what is declared and never read ---------------------------------------------------------------

UNUSED = dedent("""\
    specgraph: 1
    params: {width: 8, depth: 2}
    let:
      wide: "${width * 2}"
      unused_let: 3
    inputs:
      x: [N, 4]
    blocks:
      layer:
        params: {out: int, bias: true}
        uses: [depth]
        nodes:
          fc: {op: linear, out: $out}
    graph:
      layers: {block: layer, repeat: $depth, out: $wide, name: "layer{index}"}
    """)


def test_unused_params_uses_and_let_values_warn_at_their_declaration():
    graph = specgraph.check(UNUSED)
    assert [(w.code, (w.location.line, w.location.col), w.message) for w in graph.warnings] == [
        ("W304", pos(UNUSED, "unused_let"), "`let` value 'unused_let' is never read"),
        ("W303", pos(UNUSED, "bias: true"), "param 'bias' of block 'layer' is never read"),
        ("W303", pos(UNUSED, "depth]"), "'depth' is in `uses:` of block 'layer' but never read"),
    ]
    assert all(w.severity == "warning" for w in graph.warnings)


def test_the_specs_have_no_warnings():
    from conftest import spec_files

    for path in spec_files():
        assert not specgraph.check(path).warnings, path


def test_check_shows_warnings_exits_0_and_no_warn_silences_them(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(UNUSED, encoding="utf-8")
    runner = CliRunner()
    shown = runner.invoke(app, ["check", str(path)])
    assert shown.exit_code == 0 and "warning[W303]" in shown.output and "warning[W304]" in shown.output
    quiet = runner.invoke(app, ["check", str(path), "--no-warn"])
    assert quiet.exit_code == 0 and "warning[" not in quiet.output and ": ok" in quiet.output
    report = json.loads(runner.invoke(app, ["check", str(path), "--format", "json", "--no-warn"]).output)
    assert report["ok"] is True and report["diagnostics"] == []
    report = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).output)
    assert [d["code"] for d in report["diagnostics"]] == ["W304", "W303", "W303"]
