"""The load stage: safe YAML with a line/column for every value and key (specgraph.lang.marked_yaml)."""

from __future__ import annotations

import re
import time
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specgraph.lang import marked_yaml as loader
from specgraph.diagnostics import SpecError
from specgraph.lang.limits import Limits
from specgraph.lang.marked_yaml import Source, load_yaml_file, load_yaml_text

BACKENDS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])
YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@pytest.fixture(params=BACKENDS, ids=lambda c: c.__name__)
def backend(request, monkeypatch):
    """Run a test under libyaml's parser and under the pure-Python fallback."""
    monkeypatch.setattr(loader, "_LOADER", request.param)
    return request.param


def error_of(text, **kw) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_yaml_text(text, **kw)
    return info.value


def only(err: SpecError, code: str):
    """The single diagnostic of ``err``, checked to carry ``code``; returns (line, col, diagnostic)."""
    assert err.codes == [code], err.format()
    d = err.diagnostics[0]
    return d.location.line, d.location.col, d


# --- marks -------------------------------------------------------------------------------------

NESTED = """\
name: net
inputs:
  image: [N, 3, 224, 224]
graph:
  conv1: {op: conv2d, out: 64}
  seq:
    - op: relu
    - {op: linear, out: "10"}
"""


def test_nested_values_and_marks(backend):
    data, src = load_yaml_text(NESTED, name="net.yaml")
    assert data == {"name": "net", "inputs": {"image": ["N", 3, 224, 224]},
                    "graph": {"conv1": {"op": "conv2d", "out": 64},
                              "seq": [{"op": "relu"}, {"op": "linear", "out": "10"}]}}
    v, k = src.value_marks, src.key_marks
    assert v[()] == (1, 1)
    assert v[("name",)] == (1, 7) and k[("name",)] == (1, 1)
    assert v[("inputs", "image")] == (3, 10) and k[("inputs", "image")] == (3, 3)
    assert v[("inputs", "image", 0)] == (3, 11) and v[("inputs", "image", 3)] == (3, 22)
    assert k[("graph", "conv1", "out")] == (5, 23) and v[("graph", "conv1", "out")] == (5, 28)
    assert v[("graph", "seq", 0)] == (7, 7) and v[("graph", "seq", 0, "op")] == (7, 11)
    assert v[("graph", "seq", 1, "out")] == (8, 25)  # a quoted scalar starts at its quote
    loc = src.location(("graph", "conv1", "out"))
    assert (loc.file, loc.line, loc.col, loc.source_line) == ("net.yaml", 5, 28, "  conv1: {op: conv2d, out: 64}")


def test_location_falls_back_to_longest_marked_prefix():
    _, src = load_yaml_text(NESTED)
    assert (src.location(("graph", "conv1", "kernel")).line, src.location(("graph", "conv1", "kernel")).col) == (5, 10)
    key_loc = src.location(("graph", "conv1", "kernel"), key=True)
    assert (key_loc.line, key_loc.col) == (5, 3)
    assert src.location(("graph", "seq", 7, "x")).line == 7  # the block list starts at its "-"
    assert (src.location(("nope",)).line, src.location(()).col) == (1, 1)
    assert src.location(("name",), key=True).col == 1 and src.location(("name",)).col == 7


def test_bom_crlf_and_unicode_columns(backend):
    text = "\ufeffé: 1\r\nb: [ü, x]\r\n"
    data, src = load_yaml_text(text.encode("utf-8"))
    assert data == {"é": 1, "b": ["ü", "x"]}
    assert src.value_marks[("é",)] == (1, 4) and src.value_marks[("b", 1)] == (2, 8)


def test_plain_scalar_types(backend):
    # (1_000 and yes, which YAML 1.1 and 1.2 read differently, are refused: tests/test_yaml_meaning.py)
    data, _ = load_yaml_text("a: 0x10\nb: 1e3\nc: .inf\nd: ~\ne: true\nf: !!str 12\ng: !!float 1\nh: '2020-01-01'\n")
    assert data == {"a": 16, "b": 1000.0, "c": float("inf"), "d": None, "e": True, "f": "12", "g": 1.0,
                    "h": "2020-01-01"}
    assert type(data["f"]) is str and type(data["g"]) is float


# --- anchors, aliases, merge keys ----------------------------------------------------------------

def test_aliases_share_the_anchored_data(backend):
    data, src = load_yaml_text("base: &b {x: 1}\nuse: *b\nlist: [*b, *b]\n")
    assert data["use"] == {"x": 1} and data["use"] is data["base"] and data["list"][1] is data["base"]
    assert src.value_marks[("use",)] == (2, 6)  # the alias itself; deeper paths fall back to it
    assert src.location(("use", "x")).line == 2


def test_merge_keys(backend):
    text = """\
defaults: &d {kernel: 3, stride: 1, bias: false}
extra: &e {stride: 9, groups: 2}
conv:
  <<: [*d, *e]
  stride: 2
inline:
  <<: {a: 1}
  b: 2
"""
    data, src = load_yaml_text(text)
    assert data["conv"] == {"kernel": 3, "bias": False, "groups": 2, "stride": 2}  # local wins, then 1st source
    assert list(data["conv"]) == ["kernel", "bias", "groups", "stride"]
    assert data["inline"] == {"a": 1, "b": 2}
    assert src.key_marks[("conv", "stride")] == (5, 3)  # the local override, not a duplicate
    assert src.value_marks[("conv", "kernel")] == (1, 23)  # a merged key points at its definition
    assert src.key_marks[("inline", "a")] == (7, 3)  # ... or at the '<<' when it has none


def test_merge_of_a_non_mapping_is_an_error(backend):
    line, col, _ = only(error_of("a: &a [1]\nb:\n  <<: *a\n"), "E101")
    assert (line, col) == (3, 7)


def test_undefined_and_recursive_aliases(backend):
    assert only(error_of("a: *nope\n"), "E101")[:2] == (1, 4)
    assert only(error_of("a: &x [1, *x]\n"), "E101")[:2] == (1, 11)


# --- E101 syntax ---------------------------------------------------------------------------------

def test_syntax_error_location_and_hint(backend):
    line, col, d = only(error_of("a: 1\nb: c: d\n"), "E101")
    assert (line, col) == (2, 5) and "mapping values are not allowed" in d.message and d.hint
    line, _, d = only(error_of("a:\n  b: [1, 2\nc: 3\n"), "E101")
    assert line in (3, 4) and d.details  # the context ("while parsing a flow sequence ...") is kept


# --- E102 duplicate keys -------------------------------------------------------------------------

def test_duplicate_key_points_at_second_and_names_first(backend):
    line, col, d = only(error_of("graph:\n  conv: {op: relu}\n  fc: {op: linear}\n  conv: {op: tanh}\n"), "E102")
    assert (line, col) == (4, 3) and "line 2" in d.message and "conv" in d.message


def test_every_independent_error_is_reported_in_one_run(backend):
    err = error_of("a: 1\na: 2\nb: {x: 1, x: 2}\n1: x\nd: !foo y\n")
    assert err.codes == ["E102", "E102", "E107", "E103"]
    assert [d.location.line for d in err.diagnostics] == [2, 3, 4, 5]


# --- E103 tags -----------------------------------------------------------------------------------

def test_python_tags_never_construct_anything(backend, tmp_path):
    marker = tmp_path / "hacked"
    for text in (f'x: !!python/object/apply:os.system ["touch {marker}"]\n',
                 f"x: !!python/object/apply:os.system\n  args: ['touch {marker}']\n",
                 "x: !!python/name:os.system\n", "!!python/object:os.system {}\n"):
        _, _, d = only(error_of(text), "E103")
        assert "python/" in d.message
    assert not marker.exists()
    assert only(error_of(f'x: !!python/object/apply:os.system ["echo hacked"]\n'), "E103")[:2] == (1, 4)


@pytest.mark.parametrize("text", ["a: !!binary aGVsbG8=\n", "a: !!set {x, y}\n", "a: !!omap [{x: 1}]\n",
                                  "a: !custom 3\n", "a: !!timestamp 2001-12-14\n", "a: !!map [1]\n",
                                  "%TAG !p! tag:yaml.org,2002:python/\n---\na: !p!name:os.system\n"])
def test_tags_outside_the_safe_set(backend, text):
    only(error_of(text), "E103")


def test_unquoted_date_is_a_timestamp(backend):
    line, col, d = only(error_of("name: x\ndate: 2020-01-01\n"), "E103")
    assert (line, col) == (2, 7) and d.hint == 'quote it: "2020-01-01"'


def test_explicit_tag_with_bad_value(backend):
    assert only(error_of("a: !!int twelve\n"), "E103")[:2] == (1, 4)


# --- E104 limits ---------------------------------------------------------------------------------

LOL = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


def run_bounded(text, **kw):
    """(error, CPU seconds, peak MB) of loading ``text``.

    Time is this process's CPU time, measured without tracemalloc (which slows Python code
    several-fold), so a busy machine does not fail the bound; memory is a second run's peak.
    """
    t0 = time.process_time()
    err = error_of(text, **kw)
    seconds = time.process_time() - t0
    tracemalloc.start()
    try:
        error_of(text, **kw)
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return err, seconds, peak


def test_billion_laughs_is_refused_fast_and_small(backend):
    err, seconds, peak = run_bounded(LOL)
    _, _, d = only(err, "E104")
    assert seconds < 1 and peak < 100, (seconds, peak)
    assert "max_yaml_nodes" in d.hint and "--limit" in d.hint


def test_deep_nesting_without_recursion_error(backend):
    for text in ("[" * 100_000, "a: " + "{a: " * 100_000, "".join(" " * i + "- \n" for i in range(2000))):
        err, seconds, _ = run_bounded(text)
        _, _, d = only(err, "E104")
        assert seconds < 2 and "max_yaml_depth" in d.hint


def test_depth_limit_is_exact():
    assert load_yaml_text("a: " + "[" * 63 + "]" * 63)[0]  # the top mapping is level 1
    _, col, _ = only(error_of("a: " + "[" * 64 + "]" * 64), "E104")
    assert col == 3 + 64  # the bracket that goes one level too deep
    assert load_yaml_text("a: [[[1]]]", limits=Limits(max_yaml_depth=4))[0] == {"a": [[[1]]]}
    only(error_of("a: [[[1]]]", limits=Limits(max_yaml_depth=3)), "E104")


def test_alias_and_value_count_limits(backend):
    text = "a: &a 1\nb: [*a, *a, *a]\n"
    assert load_yaml_text(text, limits=Limits(max_yaml_aliases=3))[0]["b"] == [1, 1, 1]
    assert only(error_of(text, limits=Limits(max_yaml_aliases=2)), "E104")[:2] == (2, 13)
    only(error_of("a: [1, 2, 3, 4]\n", limits=Limits(max_yaml_nodes=4)), "E104")


def test_huge_file_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # sparse: 50 MB on paper, nothing on disk
        fh.truncate(50 * 1024 * 1024)
    tracemalloc.start()
    t0 = time.thread_time()  # CPU time: a loaded machine cannot inflate it, reading 50 MB would
    try:
        with pytest.raises(SpecError) as info:
            load_yaml_file(big)
    finally:
        seconds, peak = time.thread_time() - t0, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    _, _, d = only(info.value, "E104")
    assert seconds < 0.5 and peak < 1_000_000 and "max_file_bytes" in d.hint
    only(error_of("a: 1234567890\n", limits=Limits(max_file_bytes=8)), "E104")


# --- E105 encoding -------------------------------------------------------------------------------

def test_invalid_utf8(backend):
    line, col, d = only(error_of(b"a: 1\nname: caf\xe9 x\n"), "E105")
    assert (line, col) == (2, 10) and "0xE9" in d.message


def test_control_characters(backend):
    line, col, d = only(error_of("a: 1\nb: x\x00y\n"), "E105")
    assert (line, col) == (2, 5) and "U+0000" in d.message and "\x00" not in d.location.source_line
    assert only(error_of("a: \x1b[31m\n"), "E105")[:2] == (1, 4)
    assert only(error_of("a: '\ud800'\n"), "E105")[:2] == (1, 5)  # a lone surrogate


# --- E106 document shape -------------------------------------------------------------------------

@pytest.mark.parametrize("text,found", [("", "empty"), ("# only a comment\n", "empty"), ("---\n", "empty"),
                                        ("- a\n- b\n", "found a list"), ("just text\n", "found a string"),
                                        ("42\n", "found an integer")])
def test_top_level_must_be_a_mapping(backend, text, found):
    _, _, d = only(error_of(text), "E106")
    assert found in d.message


def test_more_than_one_document(backend):
    assert only(error_of("a: 1\n---\nb: 2\n"), "E106")[:2] == (2, 1)


# --- E107 keys -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,col", [("on: 1\n", 1), ("a: {yes: 1}\n", 5), ("1: x\n", 1), ("null: x\n", 1),
                                      ("1.5: x\n", 1), ("? [a, b]\n: x\n", 3), ("a: &k 1\n*k : x\n", 1)])
def test_non_string_keys(backend, text, col):
    _, c, d = only(error_of(text), "E107")
    assert c == col and d.hint


def test_on_key_hint_says_quote_it(backend):
    _, _, d = only(error_of("on: 1\n"), "E107")
    assert "boolean" in d.message and d.hint == 'quote it: "on"'
    assert load_yaml_text('"on": 1\n!!str 2: x\n')[0] == {"on": 1, "2": "x"}


# --- E108 files ----------------------------------------------------------------------------------

def test_file_errors(tmp_path):
    with pytest.raises(SpecError) as info:
        load_yaml_file(tmp_path / "missing.yaml", display_name="missing.yaml")
    assert info.value.codes == ["E108"] and info.value.diagnostics[0].location.file == "missing.yaml"
    with pytest.raises(SpecError) as info:
        load_yaml_file(tmp_path)
    assert info.value.codes == ["E108"] and "directory" in info.value.diagnostics[0].message


def test_unreadable_file(tmp_path, monkeypatch):
    """Permission denied is E108. Tests run as root (who reads any file), so open() is made
    to refuse the way the OS refuses other users."""
    import builtins

    f = tmp_path / "secret.yaml"
    f.write_text("a: 1\n")
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(f):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(SpecError) as info:
        load_yaml_file(f)
    assert info.value.codes == ["E108"] and "permission denied" in info.value.diagnostics[0].message


def test_load_file_source(tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text("a: [1, 2]\n")
    data, src = load_yaml_file(str(f), display_name="specs/net.yaml")
    assert data == {"a": [1, 2]} and src.name == "specs/net.yaml" and src.path == f.resolve()
    f.write_text("a: 1\na: 2\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(f)
    assert str(info.value.diagnostics[0].location) == f"{f}:2:1"


# --- speed ---------------------------------------------------------------------------------------

def test_libyaml_parses_when_installed():
    # Load speed (BENCHMARKS.md: check and load time) rests on the C parser: ~5 ms for a
    # 200-node spec with libyaml against ~7x that in pure Python. Timed in benchmarks/, not here.
    assert loader._LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    assert yaml.__with_libyaml__, "PyYAML without libyaml: specs load several times slower"


# --- properties: any input loads or raises SpecError located inside the text ---------------------

def check_outcome(text) -> None:
    for backend_cls in BACKENDS:
        loader._LOADER = backend_cls
        try:
            data, src = load_yaml_text(text)
        except SpecError as err:
            shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            lines = YAML_BREAK.split(shown)
            for d in err.diagnostics:
                loc = d.location
                assert loc is not None and 1 <= loc.line <= len(lines), (d.format(), lines)
                assert 1 <= loc.col <= len(lines[loc.line - 1]) + 1, d.format()
        else:
            assert isinstance(data, dict) and isinstance(src, Source)


@pytest.fixture(autouse=True)
def _restore_backend():
    saved = loader._LOADER
    yield
    loader._LOADER = saved


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_loads_or_raises_spec_error(text):
    check_outcome(text)


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_any_bytes_load_or_raise_spec_error(data):
    check_outcome(data)


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=25)
DOCS = st.dictionaries(st.text(max_size=6), VALUES, max_size=5)
MUTATION = st.tuples(st.floats(0, 1), st.sampled_from(["insert", "delete", "replace", "truncate"]),
                     st.text(alphabet=":-[]{},&*!#'\"\n\t <>?|%@`\\x0", max_size=3))


def as_yaml_1_2(data):
    """PyYAML's data as the loader reads it: a value YAML 1.1 leaves a string (PyYAML dumps the
    string '1e3' unquoted) but YAML 1.2 reads as a number (`1e3`, `08`) is that number."""
    from specgraph.lang.yaml_scalars import core_number, is_core_number

    if isinstance(data, dict):
        return {k: as_yaml_1_2(v) for k, v in data.items()}
    if isinstance(data, list):
        return [as_yaml_1_2(v) for v in data]
    plain_str = isinstance(data, str) and yaml.resolver.Resolver().resolve(
        yaml.ScalarNode, data, (True, False)) == "tag:yaml.org,2002:str"  # so PyYAML wrote it unquoted
    return core_number(data) if plain_str and is_core_number(data) else data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, flow=st.booleans(), mutations=st.lists(MUTATION, max_size=4))
def test_mutated_yaml_loads_or_raises_spec_error(doc, flow, mutations):
    text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True)
    for backend_cls in BACKENDS:  # unmutated, it reads as PyYAML reads it, but YAML 1.2's numbers
        loader._LOADER = backend_cls
        assert load_yaml_text(text)[0] == as_yaml_1_2(yaml.load(text, Loader=backend_cls))
    for where, how, piece in mutations:
        at = int(where * len(text))
        text = {"insert": text[:at] + piece + text[at:], "delete": text[:at] + text[at + len(piece) + 1:],
                "replace": text[:at] + piece + text[at + len(piece):], "truncate": text[:at]}[how]
    check_outcome(text)
