"""One text, one name: a name that is not ASCII is refused wherever it is declared or read.

Python's parser NFKC-normalises identifiers, so ``${ｗidth}`` read ``width`` while ``$ｗidth``
read the key ``ｗidth``: one name, two values.  And a confusable (Cyrillic ``о`` for Latin ``o``)
reads as another name than it looks.  The family: look-alike characters of several kinds —
fullwidth forms, Cyrillic and Greek letters, mathematical alphanumerics, ligatures, superscripts —
placed in every position a name is declared (params, let, inputs, blocks, block params, inputs
and outputs, the spec's outputs) or read (``$name``, ``${name}``, ``${x.attribute}``): each is a
located error (E204 where declared, E501 where read) whose hint names the character, and the
ASCII name it stands for where NFKC gives one.  Strings that are values, not names, stay free.
"""

from __future__ import annotations

import unicodedata

import pytest

import specgraph
from specgraph import SpecError

from fuzzing import assert_located

# (look-alike, the ASCII letter(s) it is mistaken for)
LOOKALIKES = [
    ("ｗ", "w"), ("Ｗ", "W"), ("ｉ", "i"), ("ｏ", "o"), ("ｄ", "d"),       # fullwidth: NFKC folds them
    ("𝐰", "w"), ("𝑖", "i"), ("𝖽", "d"), ("𝚘", "o"),                  # mathematical alphanumerics: NFKC folds them
    ("ﬁ", "fi"), ("ᵢ", "i"), ("ⁱ", "i"),                              # ligature, sub- and superscript: NFKC folds them
    ("і", "i"), ("о", "o"), ("ԁ", "d"), ("ѡ", "w"), ("е", "e"),       # Cyrillic: NFKC keeps them
    ("ο", "o"), ("ι", "i"), ("ν", "v"),                              # Greek: NFKC keeps them
]


def named(letter: str, lookalike: str) -> str:
    """``width`` with its first ``letter`` replaced by ``lookalike`` (``ｗidth``, ``wіdth``)."""
    word = {"w": "width", "W": "Width", "i": "width", "o": "top", "d": "depth", "fi": "fix", "e": "depth",
            "v": "vdim"}[letter]
    return word.replace(letter, lookalike, 1)


def spec_with(name: str, where: str) -> tuple[str, str]:
    """(a spec whose name in position ``where`` is ``name``, the code it must give)."""
    head = "specgraph: 1\n"
    if where == "param":
        return head + f"params: {{{name}: 4}}\ninputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: 4}}\n", "E204"
    if where == "let":
        return head + f"let: {{{name}: 4}}\ninputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: 4}}\n", "E204"
    if where == "input":
        return head + f"inputs: {{{name}: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: 4}}\n", "E204"
    if where == "block":
        return head + (f"inputs: {{x: [N, 4]}}\nblocks:\n  {name}: {{nodes: {{r: {{op: relu}}}}}}\n"
                       f"graph:\n  b: {{block: {name}}}\n"), "E204"
    if where == "block param":
        return head + ("inputs: {x: [N, 4]}\nblocks:\n  b:\n    params: {" + name + ": 4}\n"
                       "    nodes: {r: {op: relu}}\ngraph:\n  b: {block: b}\n"), "E204"
    if where == "block input":
        return head + ("inputs: {x: [N, 4]}\nblocks:\n  b:\n    inputs: [" + name + "]\n"
                       "    nodes: {r: {op: relu}}\ngraph:\n  b: {block: b}\n"), "E204"
    if where == "block output":
        return head + ("inputs: {x: [N, 4]}\nblocks:\n  b:\n    outputs: {" + name + ": r}\n"
                       "    nodes: {r: {op: relu}}\ngraph:\n  b: {block: b}\n"), "E204"
    if where == "output":
        return head + f"inputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: 4}}\noutputs: {{{name}: fc}}\n", "E204"
    ascii_name = unicodedata.normalize("NFKC", name)
    params = f"params: {{{ascii_name if ascii_name.isascii() else 'width'}: 4}}\n"
    if where == "$name":
        return head + params + f"inputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: ${name}}}\n", "E501"
    if where == "${name}":
        return head + params + f'inputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: "${{2 * {name}}}"}}\n', "E501"
    assert where == "${x.attribute}"
    attribute = "ｃhannels"  # fullwidth c
    return head + f'inputs: {{x: [N, 4]}}\ngraph:\n  fc: {{op: linear, out: "${{x.{attribute}}}"}}\n', "E501"


WHERE = ["param", "let", "input", "block", "block param", "block input", "block output", "output", "$name",
         "${name}"]


@pytest.mark.parametrize("lookalike, letter", LOOKALIKES, ids=[f"U+{ord(c[0]):04X}" for c, _ in LOOKALIKES])
@pytest.mark.parametrize("where", WHERE)
def test_a_name_that_is_not_ascii_is_refused_where_it_is_written(where, lookalike, letter):
    name = named(letter, lookalike)
    text, code = spec_with(name, where)
    with pytest.raises(SpecError) as e:
        specgraph.check(text)
    assert_located(e.value, text)
    d = next((d for d in e.value.diagnostics if "is not ASCII" in d.message), None)
    assert d is not None and d.code == code, e.value.format()
    line = text.splitlines()[d.location.line - 1]
    assert lookalike in line[d.location.col - 1:], f"the caret is not on the name:\n{e.value.format()}"
    odd = next(c for c in lookalike if not c.isascii())
    assert unicodedata.name(odd) in d.hint, d.hint
    folded = unicodedata.normalize("NFKC", name)
    if folded.isascii():  # NFKC reads it as an ASCII name: the hint says which
        assert f"did you mean '{folded}'?" in d.hint, d.hint
    else:
        assert "only looks like an ASCII letter" in d.hint, d.hint


def test_an_attribute_that_is_not_ascii_is_refused():
    text, code = spec_with("x", "${x.attribute}")
    with pytest.raises(SpecError) as e:
        specgraph.check(text)
    assert e.value.codes == ["E501"] and "did you mean 'channels'?" in e.value.diagnostics[0].hint


def test_the_two_spellings_no_longer_give_two_values():
    """The issue's case: before, `$ｗidth` read 8 and `${ｗidth}` read 4."""
    text = ("specgraph: 1\nparams: {width: 4, ｗidth: 8}\ninputs: {x: [N, 4]}\ngraph:\n"
            "  a: {op: linear, out: $ｗidth}\n  b: {op: linear, out: \"${ｗidth}\"}\n")
    with pytest.raises(SpecError) as e:
        specgraph.check(text)
    assert e.value.codes == ["E204"]


@pytest.mark.parametrize("value", ["ｗidth", "café", "日本", "𝐰"])
def test_values_that_are_not_names_stay_free(value):
    text = (f"specgraph: 1\nname: n\ndoc: {value}\nparams: {{label: \"{value}\"}}\ninputs: {{x: [N, 4]}}\ngraph:\n"
            f"  fc: {{op: linear, out: \"${{len('{value}') * 0 + 4}}\", doc: {value}}}\n")
    graph = specgraph.check(text)
    assert graph.params["label"] == value
