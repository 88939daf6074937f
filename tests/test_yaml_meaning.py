"""One text, one value: plain scalars YAML 1.1 (what PyYAML reads) and YAML 1.2 read differently
are refused where they stand (E103), with the value to write instead; the unambiguous forms load."""

from __future__ import annotations

import pytest

from specgraph.diagnostics import SpecError
from specgraph.lang.marked_yaml import load_yaml_text

AMBIGUOUS = {  # text -> (YAML 1.1's value, what YAML 1.2 reads)
    "1:30": (90, "a string"), "-1:00": (-60, "a string"), "1:30.5": (90.5, "a string"), "190:20:30": (685230, "a string"),
    "0755": (493, "755"), "-012": (-10, "-12"), "0b101": (5, "a string"), "1_000": (1000, "a string"),
    "1_0.5": (10.5, "a string"),
    "yes": ("true", "a string"), "No": ("false", "a string"), "on": ("true", "a string"), "OFF": ("false", "a string"),
}
PLAIN = {"true": True, "False": False, "0": 0, "10": 10, "-3": -3, "0x1F": 31, "1.5": 1.5, "-0.25": -0.25,
         "null": None, "~": None, "y": "y", "n": "n", "1.0e-3": 0.001,
         # numbers YAML 1.2 reads and PyYAML leaves strings: read as numbers
         "08": 8, "1e-3": 0.001, "2E5": 200000.0, "-09": -9}


@pytest.mark.parametrize("text", sorted(AMBIGUOUS))
@pytest.mark.parametrize("where", ["value", "list", "flow"])
def test_ambiguous_scalars_are_refused_where_they_stand(text, where):
    doc = {"value": f"a: {text}\n", "list": f"a: [1, {text}]\n", "flow": f"a: {{b: {text}}}\n"}[where]
    with pytest.raises(SpecError) as e:
        load_yaml_text(doc)
    (d,) = e.value.diagnostics
    old, new = AMBIGUOUS[text]
    assert d.code == "E103" and f"'{text}' is" in d.message and f"in YAML 1.1 but {new} in YAML 1.2" in d.message
    assert str(old) in d.message and d.hint.endswith(f'or quote it: "{text}"')
    assert (d.location.line, d.location.col) == (1, doc.index(text) + 1)
    # quoted, it is the text
    assert load_yaml_text(doc.replace(text, f'"{text}"'))[0]["a"] in (text, [1, text], {"b": text})


@pytest.mark.parametrize("text", sorted(PLAIN))
def test_unambiguous_scalars_load_as_yaml_1_2_reads_them(text):
    value = load_yaml_text(f"a: {text}\n")[0]["a"]
    assert value == PLAIN[text] and type(value) is type(PLAIN[text])


def test_a_key_is_resolved_apart_from_an_equal_value():
    # `yes:` as a key is E107 (not a string); the same text as a value is E103 — no cache shares them
    with pytest.raises(SpecError) as e:
        load_yaml_text("a: {yes: 1}\nb: yes\n")
    assert [d.code for d in e.value.diagnostics] == ["E107", "E103"]
