"""The error corpus: tests/error_corpus/ holds one wrong spec per file, the golden reference for
what the user is told.

Each file states what it must give in its leading comments, one line per diagnostic, in the
order they are reported (sorted by location)::

    # schema: reject
    # limits: max_graph_nodes=100
    # expect: E305 at 7:3 path=x message~"same name as an input" hint~"did you mean"

``at LINE:COL`` is the caret, counted in the file itself (the comments included);
``file=lib/x.yaml`` says the caret is in an included file; ``path=-`` means no node path;
``message~"..."`` and ``hint~"..."`` are JSON strings the message and hint must contain.
A W-code expectation is a warning of a spec that otherwise compiles.

``schema:`` says what the JSON Schema of `specgraph schema` makes of the file (tested in
test_schema.py): ``reject`` -- a mistake an editor shows as you type; ``accept`` -- one that
needs the compiler (names, shapes, expressions); ``no-yaml`` -- the text is not YAML data a
schema could validate.  ``limits:`` lowers a resource limit so a limit error stays small.
``call: x=[2, 3, 33, 33] ids=int64[2, 7]`` says the spec checks, and its built model (in eval
mode) called with zeros of those shapes and dtypes (default: the declared one) gives the
expected diagnostics: the run-time input check's (torch/input_check.py).
Files under lib/ are included by the corpus specs and are not corpus entries themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import specgraph
from specgraph import Limits, SpecError
from specgraph.cli.app import app

CORPUS = Path(__file__).resolve().parent / "error_corpus"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
FILES = sorted(CORPUS.glob("*.yaml"))
NAMES = [p.stem for p in FILES]

# Documented codes no single spec file can produce, and why.
NOT_FROM_A_SPEC_FILE = {
    "E108": "the spec file itself cannot be read (missing, a directory): there is no file to hold the "
            "expectations; an include that cannot be read is E306 (see e306_include_missing)",
    "E109": "an output path of the command line (render -o, build --save, export, train --out) that cannot be "
            "written: no spec file holds it (tests/test_cli_files.py)",
    "E401": "the generic ShapeError code, used only by user ops registered in Python; every built-in op "
            "raises a specific E4xx code",
    "E605": "the command line's last resort when Python runs out of stack or memory despite the limits; "
            "no spec within the limits reaches it (test_hostile.py covers the limits)",
    **{f"E7{i:02d}": "found by `specgraph train` in the data, the training settings or the files it reads, "
                  "not by checking a spec" for i in range(1, 12)},
    **{f"E80{i}": "found by optimize(..., backend='onnxruntime') and the module it returns, in the model or a "
                  "call, not by checking a spec (tests/test_ort_backend.py)" for i in range(1, 4)},
}

EXPECT = re.compile(r'# expect: (?P<code>[EW]\d{3}) at (?P<line>\d+):(?P<col>\d+)(?: file=(?P<file>\S+))?'
                    r' path=(?P<path>\S+)(?: message~(?P<message>"(?:[^"\\]|\\.)*"))?(?: hint~(?P<hint>"(?:[^"\\]|\\.)*"))?$')
SCHEMA = re.compile(r"# schema: (reject|accept|no-yaml)$")
LIMITS = re.compile(r"# limits: ((?:\w+=\d+ ?)+)$")
CALL = re.compile(r"# call: (.+)$")
CALL_ARG = re.compile(r"(\w+)=(\w*)(\[[^\]]*\])")


@dataclass(frozen=True)
class Expected:
    code: str
    line: int
    col: int
    file: str  # relative to the corpus folder
    path: str | None
    message: str | None
    hint: str | None

    def key(self) -> tuple:
        return self.code, self.line, self.col, self.file, self.path


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    schema: str
    limits: dict[str, int]
    expected: tuple[Expected, ...]
    call: dict[str, tuple[str, list[int]]] | None = None  # input -> (dtype or "", shape)


def read_corpus_file(path: Path) -> CorpusFile:
    """The expectations in the leading comments of one corpus file (refusing malformed ones)."""
    schema, limits, expected, call = None, {}, [], None
    text = path.read_bytes().decode("utf-8", "replace")  # a corpus file may be invalid UTF-8 on purpose
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if m := EXPECT.match(line):
            expected.append(Expected(m["code"], int(m["line"]), int(m["col"]), m["file"] or path.name,
                                     None if m["path"] == "-" else m["path"],
                                     json.loads(m["message"]) if m["message"] else None,
                                     json.loads(m["hint"]) if m["hint"] else None))
        elif m := SCHEMA.match(line):
            schema = m[1]
        elif m := LIMITS.match(line):
            limits = {k: int(v) for k, v in (kv.split("=") for kv in m[1].split())}
        elif m := CALL.match(line):
            call = {name: (dtype, json.loads(shape)) for name, dtype, shape in CALL_ARG.findall(m[1])}
            assert call, f"{path.name}: malformed: {line}"
        else:
            assert not line.startswith(("# expect", "# schema", "# limits", "# call")), f"{path.name}: malformed: {line}"
    assert schema, f"{path.name}: no `# schema: reject|accept|no-yaml` line"
    assert expected, f"{path.name}: no `# expect:` line"
    return CorpusFile(path, schema, limits, tuple(expected), call)


def diagnostics_of(case: CorpusFile) -> list:
    """The errors of the spec, or the warnings of a spec that compiles; for a ``call:`` file,
    the input check's error when its built model is called so."""
    try:
        spec = specgraph.load(case.path, limits=Limits(**case.limits)) if case.limits else specgraph.load(case.path)
        graph = specgraph.check(spec)
    except SpecError as e:
        assert case.call is None, f"{case.path.name} does not check:\n{e.format()}"
        return e.diagnostics
    if case.call is None:
        return graph.warnings
    import torch

    model = specgraph.build(graph).eval()
    args = [torch.zeros(case.call[name][1], dtype=getattr(torch, case.call[name][0] or t.dtype))
            for name, t in graph.inputs.items()]
    try:
        with torch.no_grad():
            model(*args)
    except specgraph.InputError as e:
        return e.diagnostics
    raise AssertionError(f"{case.path.name}: the call ran")


def relative(file: str | None) -> str | None:
    return None if file is None else Path(file).resolve().relative_to(CORPUS).as_posix()


def check_against(case: CorpusFile, found: list[tuple]) -> None:
    """``found``: (code, line, col, file, path, message, hint) of each diagnostic, in order."""
    shown = "\n".join(f"  {c} at {ln}:{col} file={f} path={p}: {m} (hint: {h})" for c, ln, col, f, p, m, h in found)
    assert [f[:5] for f in found] == [e.key() for e in case.expected], f"{case.path.name} gives:\n{shown}"
    for e, (*_, message, hint) in zip(case.expected, found):
        if e.message is not None:
            assert e.message in message, f"{case.path.name}: {e.code} says {message!r}"
        if e.hint is not None:
            assert hint is not None and e.hint in hint, f"{case.path.name}: {e.code} hints {hint!r}"


@pytest.mark.parametrize("name", NAMES)
def test_corpus_file_gives_exactly_its_expected_diagnostics(name):
    case = read_corpus_file(CORPUS / f"{name}.yaml")
    diags = diagnostics_of(case)
    for d in diags:
        assert d.location is not None, f"{name}: {d.code} has no location"
        assert d.severity == ("warning" if d.code.startswith("W") else "error")
    check_against(case, [(d.code, d.location.line, d.location.col, relative(d.location.file), d.path, d.message, d.hint)
                         for d in diags])


# A few through the command line too: `--format json` is what editors and CI read.
CLI_CASES = ["e101_unquoted_expression_in_flow", "e105_invalid_utf8", "e201_typo_op_param",
             "e302_typo_in_included_block", "e307_include_cycle", "e402_concat_spatial_mismatch",
             "e503_import", "e601_too_many_nodes", "w301_unused_input", "many_independent_errors"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_json_reports_the_same(name):
    case = read_corpus_file(CORPUS / f"{name}.yaml")
    args = ["check", str(case.path), "--format", "json"]
    for key, value in case.limits.items():
        args += ["--limit", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    errors = any(e.code.startswith("E") for e in case.expected)
    assert result.exit_code == (1 if errors else 0), result.output
    report = json.loads(result.stdout)
    assert report["ok"] is not errors
    for d in report["diagnostics"]:
        assert set(d) == {"code", "severity", "path", "file", "line", "col", "message", "details", "hint"}
    check_against(case, [(d["code"], d["line"], d["col"], relative(d["file"]), d["path"], d["message"], d["hint"])
                         for d in report["diagnostics"]])


def documented_codes() -> set[str]:
    return set(re.findall(r"^#### ([EW]\d{3})\b", DOCS.read_text(encoding="utf-8"), flags=re.M))


def test_corpus_is_large_and_covers_every_code_a_spec_file_can_give():
    cases = [read_corpus_file(p) for p in FILES]
    assert len(cases) >= 60, f"the corpus has {len(cases)} files"
    covered = {e.code for c in cases for e in c.expected}
    documented = documented_codes()
    assert set(NOT_FROM_A_SPEC_FILE) <= documented, sorted(set(NOT_FROM_A_SPEC_FILE) - documented)
    missing = documented - set(NOT_FROM_A_SPEC_FILE) - covered
    assert not missing, f"documented codes without a corpus file: {sorted(missing)}"
    assert not covered & set(NOT_FROM_A_SPEC_FILE), "a code listed as unreachable from a spec file is in the corpus"
    assert covered <= documented, f"undocumented codes in the corpus: {sorted(covered - documented)}"


def test_corpus_file_names_say_their_first_code():
    for path in FILES:
        first = read_corpus_file(path).expected[0].code.lower()
        assert path.stem.startswith(first) or path.stem.startswith(("many_", "block_")), path.name


def test_every_library_file_is_included_by_the_corpus():
    libs = sorted((CORPUS / "lib").glob("*.yaml"))
    for lib in libs:
        others = [p for p in FILES + libs if p != lib]
        includers = [p for p in others if lib.name in p.read_bytes().decode("utf-8", "replace")]
        assert includers, f"lib/{lib.name} is included by no corpus file"
