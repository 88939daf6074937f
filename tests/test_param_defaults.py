"""A param's default may be an expression over the params declared before it (docs/language.md):
written bare (`eps: ${1 - 0.9997}`, typed by its value) or with a type (`{type: float, default:
"${...}"}`, checked once evaluated), at the spec's top level and in blocks; a failing default
points at its own declaration, not at the spec or the caller."""

from __future__ import annotations

from textwrap import dedent

import pytest

import specgraph
from specgraph import SpecError

SPEC = dedent("""\
    specgraph: 1
    params:
      width: 8
      eps: ${1 - 0.9997}
      momentum: {type: float, default: "${0.01 * 3}"}
      hidden: ${width * 2}
    blocks:
      head:
        params: {out: int, scale: "${out * 2}"}
        nodes:
          fc: {op: linear, out: $scale}
    inputs: {x: [N, 4]}
    graph:
      fc: {op: linear, out: $hidden}
      bn: {op: batchnorm1d, eps: $eps, momentum: $momentum}
      head: {block: head, out: 3}
    """)


def test_expression_defaults_are_evaluated_in_order_and_typed_by_their_value():
    model = specgraph.build(SPEC)
    assert model.fc.out_features == 16
    assert model.bn.eps == pytest.approx(1 - 0.9997) and model.bn.momentum == pytest.approx(0.03)
    assert model.head.fc.out_features == 6


@pytest.mark.parametrize("name, value, ok", [("eps", 0.1, True), ("eps", 1, True), ("eps", "a", False),
                                              ("width", 4, True), ("hidden", 3, True), ("hidden", 3.5, False)])
def test_an_override_must_have_the_type_of_the_evaluated_default(name, value, ok):
    if ok:
        specgraph.check(SPEC, **{name: value})
    else:
        with pytest.raises(SpecError) as e:
            specgraph.check(SPEC, **{name: value})
        assert e.value.diagnostics[0].code == "E203"


@pytest.mark.parametrize("decl, code, line, words", [
    ("eps: ${1 / width + nothing}", "E502", 4, "default of param 'eps'"),
    ('eps: {type: int, default: "${1 - 0.9997}"}', "E203", 4, "expects int"),
])
def test_a_failing_default_points_at_its_declaration(decl, code, line, words):
    text = SPEC.replace("eps: ${1 - 0.9997}", decl)
    with pytest.raises(SpecError) as e:
        specgraph.check(text)
    d = e.value.diagnostics[0]
    assert (d.code, d.location.line) == (code, line) and words in d.message
