"""Hostile input: every attack on the compiler ends in a clear SpecError, within 2 s of CPU time
and under 300 MB, and each limit that stops a hostile spec can be raised for a genuine one.

Each case runs `specgraph.check` in a fresh subprocess that reports the outcome, the CPU time
of the check and the process's peak resident memory (VmHWM: the interpreter and imports
included, C allocations included).  CPU time rather than wall time, so that a busy CI machine
does not fail the test; a wall-clock timeout still catches hangs.  The 2 s are a quiet 2-core
EPYC's: a machine slower at a legitimate check measured beside the cases gets as much more.  The YAML-level details
(tags, depth, UTF-8 positions) are tested in test_loader.py and the expression limits in
test_expr.py; here each attack goes through the whole pipeline, as a user's file would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from textwrap import dedent

import pytest
from typer.testing import CliRunner

import specgraph
from specgraph import Limits, SpecError
from specgraph.cli.app import app

from fuzzing import assert_located

ROOT = Path(__file__).resolve().parent.parent
CPU_SECONDS = 2.0
PEAK_MB = 300
SAFETY_NET = 4 << 30  # address-space cap of the child, so that a regression cannot take the machine down

CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
import specgraph
from specgraph import Limits, SpecError
target, limits = sys.argv[1], json.loads(sys.argv[2])
start = time.process_time()
try:
    graph = specgraph.check(specgraph.load(target, limits=Limits(**limits)))
    out = {"ok": True, "nodes": len(graph)}
except SpecError as e:
    out = {"codes": e.codes, "text": e.format(),
           "diagnostics": [d.to_json() for d in e.diagnostics]}
except BaseException as e:
    out = {"crash": f"{type(e).__name__}: {e}"[:2000]}
out["cpu"] = time.process_time() - start
try:  # this process's own peak: ru_maxrss would include the forking parent's (a pytest with torch)
    with open("/proc/self/status") as fh:
        out["peak_mb"] = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
except OSError:
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_check(path: Path, **limits: int) -> dict:
    """check(path) in a subprocess: its outcome, CPU seconds and peak memory."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(limits), str(SAFETY_NET)],
                          capture_output=True, text=True, timeout=120, cwd=path.parent)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "crash" not in result, result["crash"]
    return result


def assert_bounded(result: dict, cpu_seconds: float = CPU_SECONDS) -> None:
    assert result["cpu"] < cpu_seconds, f"{result['cpu']:.2f} s of CPU time (ceiling {cpu_seconds:.2f} s)"
    assert result["peak_mb"] < PEAK_MB, f"{result['peak_mb']:.0f} MB at peak"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(dedent(content), encoding="utf-8")
    return path


HEADER = "specgraph: 1\ninputs:\n  x: [N, 8]\n"
LAUGHS = "lol: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))


def fifty_megabytes(path: Path) -> Path:
    """A real 50 MB file (not sparse): a valid spec followed by comment lines."""
    line = b"# " + b"x" * 97 + b"\n"
    with open(path, "wb") as fh:
        fh.write(HEADER.encode() + b"graph:\n  fc: {op: linear, out: 4}\n")
        for _ in range(50 * 1024 * 1024 // len(line)):
            fh.write(line)
    return path


# name -> (file content, or a function making the file; the codes expected)
CASES = {
    "billion laughs": (HEADER + LAUGHS + "graph:\n  fc: {op: linear, out: 4}\n", {"E104"}),
    "100k-deep list": (HEADER + "graph:\n  fc: " + "[" * 100_000 + "\n", {"E104"}),
    "100k-deep mapping": (HEADER + "graph: " + "{a: " * 100_000 + "\n", {"E104"}),
    "python object tag": (HEADER + "graph:\n  fc: !!python/object/apply:os.system ['touch PWNED']\n", {"E103"}),
    "python name tag": (HEADER + "name: !!python/name:os.system\ngraph:\n  fc: {op: linear, out: 4}\n", {"E103"}),
    "50 MB file": (fifty_megabytes, {"E104"}),
    "expression bomb": (HEADER + 'graph:\n  fc: {op: linear, out: "${9**9**9**9}"}\n', {"E505"}),
    "huge repeat": (HEADER + "graph:\n  fc: {op: relu, repeat: 1000000000}\n", {"E603"}),
    "gigantic input dims": ("specgraph: 1\ninputs:\n  x: [N, 3, 100000000000, 100000000000]\n"
                            "graph:\n  conv: {op: conv2d, out: 8, kernel: 3}\n", {"E602"}),
    "gigantic linear": (HEADER + "graph:\n  fc: {op: linear, out: 10000000000000}\n", {"E602"}),
    "gigantic embedding table": ("specgraph: 1\ninputs:\n  ids: {shape: [N, 4], dtype: int64}\n"
                                 "graph:\n  e: {op: embedding, num: 9223372036854775808, dim: 8}\n", {"E602"}),
    # Found by `make fuzz`: the weight count once listed one entry per layer.
    "an lstm of 10**12 layers": ("specgraph: 1\ninputs:\n  x: [N, 16, 8]\n"
                                 "graph:\n  lstm: {op: lstm, hidden: 256, num_layers: 1000000000000}\n", {"E602"}),
    "invalid UTF-8": (b"specgraph: 1\nname: caf\xe9\n", {"E105"}),
    "empty file": ("", {"E106"}),
    "a list, not a mapping": ("- specgraph: 1\n- graph: {}\n", {"E106"}),
    "graph is a list": (HEADER + "graph: [{op: relu}, {op: relu}]\n", {"E203"}),
    "params is a list": (HEADER + "params: [1]\ngraph:\n  r: {op: relu}\n", {"E203"}),
    "a node is a list": (HEADER + "graph:\n  r: [op, relu]\n", {"E203"}),
    # 1,000 repeats of a block of 50 nodes that `when: false` switches off: no graph node is
    # ever made, yet each costs time; the node limit counts them.
    "repeated switched-off block": (HEADER + "blocks:\n  b:\n    nodes:\n"
                                    + "".join(f"      r{i}: {{op: relu, when: false}}\n" for i in range(50))
                                    + "graph:\n  s: {block: b, repeat: 100000}\n", {"E601"}),
    "200k nodes by repeat": (HEADER + "blocks:\n  b:\n    nodes:\n      r: {op: relu, repeat: 1000}\n"
                             "graph:\n  s: {block: b, repeat: 200}\n", {"E601"}),
    # Issue 14: cheap to write, costly to evaluate; the work of all evaluations is one budget
    "60 list-building expressions in a 100-repeat block": (HEADER + "blocks:\n  b:\n    nodes:\n" + "".join(
        f'      r{i}: {{op: dropout, p: "${{len([0] * 99999) * 0}}"}}\n' for i in range(60))
        + "graph:\n  s: {block: b, repeat: 100}\n", {"E505"}),
    "a comprehension over a huge range": (HEADER + 'graph:\n  fc: {op: linear, out: "${len([i for i in range(10**12)])}"}\n',
                                           {"E505"}),
    "comprehensions in a 100-repeat block": (HEADER + "blocks:\n  b:\n    nodes:\n" + "".join(
        f'      r{i}: {{op: dropout, p: "${{len([[j] for j in range(99999)]) * 0}}"}}\n' for i in range(20))
        + "graph:\n  s: {block: b, repeat: 100}\n", {"E505"}),
    "a recursive block that doubles": (HEADER + "blocks:\n  b:\n    params: {d: int}\n    nodes:\n"
                                       "      r: {op: relu}\n"
                                       '      a: {block: b, d: "${d - 1}", when: "${d > 0}"}\n'
                                       '      c: {block: b, d: "${d - 1}", when: "${d > 0}"}\n'
                                       "graph:\n  s: {block: b, d: 40}\n", {"E601"}),
    "blocks 100 levels deep": (HEADER + "blocks:\n" + "".join(
        f"  b{i}:\n    nodes:\n      inner: {{block: b{i + 1}}}\n" for i in range(100))
        + "  b100:\n    nodes:\n      r: {op: relu}\n" + "graph:\n  top: {block: b0}\n", {"E604"}),
    # a recursion without end through a block that uses the other six times (inception_v3's
    # conv_bn with a Mixed block moved into it): refused at the first E604, not after expanding
    # every sibling down to the depth limit
    "wide recursion without end": (HEADER + "blocks:\n  unit:\n    nodes:\n      fc: {op: linear, out: 8}\n"
                                   "      mixed: {block: wide}\n  wide:\n    nodes:\n"
                                   + "".join(f"      b{i}: {{block: unit, from: x}}\n" for i in range(6))
                                   + "      out: {op: concat, from: [b0, b1, b2, b3, b4, b5]}\n"
                                   "graph:\n  top: {block: unit}\n", {"E604"}),
}


# The 2 s ceiling is this 2-core EPYC's, quiet: a slower CPU, or one that the suite's other worker
# shares (its caches and cores inflate even a process's CPU time), raises it by as much as it
# slows a legitimate check measured beside the cases: 1,000 instances of a one-relu block, 0.10 s
# here quiet. Visiting the 20,000-node limit costs 1.3 s here quiet and up to 2.3 s under load.
REFERENCE = (HEADER + "blocks:\n  b:\n    nodes:\n      r: {op: relu}\n"
             "graph:\n  s: {block: b, repeat: 1000}\n")
REFERENCE_QUIET_CPU = 0.10


def ceiling(reference_cpu: float) -> float:
    return CPU_SECONDS * max(1.0, reference_cpu / REFERENCE_QUIET_CPU)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, float]:
    """REFERENCE's file and its CPU time now (the lower of two)."""
    path = write(tmp_path_factory.mktemp("reference") / "spec.yaml", REFERENCE)
    results = [run_check(path) for _ in range(2)]
    assert all(r.get("ok") for r in results), results
    return path, min(r["cpu"] for r in results)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Every case, run two at a time (each in its own process)."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for i, (name, (content, _)) in enumerate(CASES.items()):
        path = folder / f"case{i}" / "spec.yaml"
        path.parent.mkdir()
        paths[name] = content(path) if callable(content) else write(path, content)
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(paths, pool.map(run_check, paths.values())))
    return {name: (paths[name], results[name]) for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_refused_fast_and_small(name, outcomes, reference):
    path, result = outcomes[name]
    assert "codes" in result, f"{name}: checked fine ({result})"
    assert set(result["codes"]) == CASES[name][1], result["text"]
    reference_path, reference_cpu = reference
    limit = ceiling(reference_cpu)
    if result["cpu"] >= limit:
        # Timed once more, alone, and the lower time kept (as test_bounded_cost does): the cases run
        # two at a time beside the suite's other worker, and shared caches and cores inflate even a
        # process's CPU time; noise only adds time, so a check that really costs more fails twice.
        # The reference is timed again beside it: the load may have changed since.
        result = {**result, "cpu": min(result["cpu"], run_check(path)["cpu"])}
        limit = ceiling(max(reference_cpu, run_check(reference_path)["cpu"]))
    assert_bounded(result, limit)
    for d in result["diagnostics"]:
        assert d["hint"] or d["code"] not in ("E104", "E601", "E602", "E603", "E604"), d
    err = SpecError([specgraph.Diagnostic(d["code"], d["message"], specgraph.Location(d["file"], d["line"], d["col"])
                                          if d["file"] else None) for d in result["diagnostics"]])
    assert_located(err, cwd=path.parent)
    assert not (path.parent / "PWNED").exists()


def test_limit_hints_name_the_flag(outcomes):
    """Every limit error says how to raise the limit."""
    for name in ("billion laughs", "50 MB file", "huge repeat", "gigantic linear", "200k nodes by repeat",
                 "blocks 100 levels deep", "100k-deep list"):
        hints = " ".join(d["hint"] or "" for d in outcomes[name][1]["diagnostics"])
        assert "--limit" in hints or "limit" in hints.lower(), (name, hints)


# ---- each limit can be raised so that a genuine large spec passes ------------------------------------

DEEP_BLOCKS = ("blocks:\n" + "".join(f"  b{i}:\n    nodes:\n      inner: {{block: b{i + 1}}}\n" for i in range(100))
               + "  b100:\n    nodes:\n      r: {op: relu}\n")
EXPR_600 = "${max(" + ", ".join(["1"] * 600) + ")}"  # 600+ syntax-tree nodes, 2 levels deep


def big_comment_file(path: Path) -> Path:
    """A genuine 9 MB spec (one over the 8 MiB default): a short spec and a long comment."""
    line = "# " + "x" * 97 + "\n"
    path.write_text(HEADER + "graph:\n  r: {op: relu}\n" + line * (9 * 1024 * 1024 // len(line)), encoding="utf-8")
    return path


@pytest.mark.parametrize("limit, spec, code, defaults, raised", [
    ("max_graph_nodes", HEADER + "graph:\n  r: {op: relu, repeat: 30000}\n", "E601", {}, {"max_graph_nodes": 40_000}),
    ("max_repeat", HEADER + "graph:\n  r: {op: relu, repeat: 150}\n", "E603", {"max_repeat": 100},
     {"max_repeat": 200}),
    ("max_block_depth", HEADER + DEEP_BLOCKS + "graph:\n  top: {block: b0}\n", "E604", {}, {"max_block_depth": 200}),
    ("max_dim", "specgraph: 1\ninputs:\n  x: [1, 1]\ngraph:\n  fc: {op: linear, out: 2000000000000}\n", "E602", {},
     {"max_dim": 2**42}),
    ("max_numel", "specgraph: 1\ninputs:\n  x: [N, 2048, 1024, 1024, 1024, 1024]\ngraph:\n  r: {op: relu}\n", "E602",
     {}, {"max_numel": 2**52}),
    ("max_yaml_depth", HEADER + "params:\n  deep: " + "[" * 80 + "]" * 80 + "\ngraph:\n  r: {op: relu}\n", "E104", {},
     {"max_yaml_depth": 100}),
    ("max_yaml_aliases", HEADER + "params:\n  a: &a 1\n  b: [" + ", ".join(["*a"] * 20) + "]\ngraph:\n  r: {op: relu}\n",
     "E104",
     {"max_yaml_aliases": 10}, {"max_yaml_aliases": 20}),
    ("max_yaml_nodes", HEADER + "params:\n  many: [" + ", ".join(["1"] * 2000) + "]\ngraph:\n  r: {op: relu}\n", "E104",
     {"max_yaml_nodes": 1000}, {"max_yaml_nodes": 3000}),
    ("max_expr_nodes", HEADER + f'graph:\n  fc: {{op: linear, out: "{EXPR_600}"}}\n', "E505", {},
     {"max_expr_nodes": 1000}),
    ("max_file_bytes", big_comment_file, "E104", {}, {"max_file_bytes": 10 * 1024 * 1024}),
])
def test_each_limit_can_be_raised_for_a_genuine_spec(tmp_path, limit, spec, code, defaults, raised):
    """The limit refuses the spec (at its default, or at a lowered value where the default is far
    above what a quick test can reach) and, raised, lets it check."""
    path = spec(tmp_path / "net.yaml") if callable(spec) else write(tmp_path / "net.yaml", spec)
    with pytest.raises(SpecError) as info:
        specgraph.check(specgraph.load(str(path), limits=Limits(**defaults)))
    assert info.value.codes == [code], info.value.format()
    if code != "E505":  # expression limits give no hint (yet): see the report of issue 3
        assert limit in (info.value.diagnostics[0].hint or ""), info.value.format()
    graph = specgraph.check(specgraph.load(str(path), limits=Limits(**{**defaults, **raised})))
    assert len(graph) >= 2


def test_200k_nodes_complete_with_raised_limits(tmp_path):
    """200,000 nodes by nested repeats: refused quickly by default (see the cases above); with the
    limits raised, checked in a few seconds (the time grows linearly)."""
    path = write(tmp_path / "big.yaml", CASES["200k nodes by repeat"][0])
    result = run_check(path, max_graph_nodes=300_000)
    assert result.get("nodes") == 200_001, result
    assert result["cpu"] < 30, result["cpu"]


def test_cli_limit_flag_raises_a_limit(tmp_path):
    path = write(tmp_path / "deep.yaml", HEADER + DEEP_BLOCKS + "graph:\n  top: {block: b0}\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["check", str(path)])
    assert refused.exit_code == 1 and "error[E604]" in refused.output and "Traceback" not in refused.output
    ok = runner.invoke(app, ["check", str(path), "--limit", "max_block_depth=200"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["check", str(path), "--limit", "max_nonsense=3"])
    assert bad.exit_code == 2


def test_console_script_limit_flag(tmp_path):
    exe = Path(sys.executable).with_name("specgraph")
    if not exe.exists():
        pytest.skip("the specgraph console script is not installed")
    path = write(tmp_path / "wide.yaml", HEADER + "graph:\n  r: {op: relu, repeat: 30000}\n")
    refused = subprocess.run([str(exe), "check", str(path)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "E601" in refused.stderr and "Traceback" not in refused.stderr
    ok = subprocess.run([str(exe), "check", str(path), "--limit", "max_graph_nodes=40000"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr


# ---- includes -------------------------------------------------------------------------------------------

LIB = "specgraph: 1\nblocks:\n  unit:\n    nodes:\n      r: {op: relu}\n"


def main_including(path: Path, *includes: str) -> Path:
    return write(path, HEADER + f"include: {json.dumps(list(includes))}\ngraph:\n  u: {{block: unit}}\n")


@pytest.mark.parametrize("name, content, words", [
    ("notes.txt", "just some text, no spec\n", "a spec is a YAML mapping"),
    ("list.json", '[1, 2, 3]\n', "a spec is a YAML mapping"),
    ("list.yaml", "- a\n- b\n", "a spec is a YAML mapping"),
    ("settings.yaml", "name: settings\nversion: 3\n", "specgraph: 1"),
    ("empty.yaml", "", "empty"),
    ("latin1.yaml", b"specgraph: 1\nname: caf\xe9\n", "UTF-8"),
])
def test_include_of_a_file_that_is_no_spec(tmp_path, name, content, words):
    write(tmp_path / name, content)
    main = main_including(tmp_path / "main.yaml", name)
    with pytest.raises(SpecError) as info:
        specgraph.check(str(main))
    assert "E306" in info.value.codes, info.value.format()
    d = next(d for d in info.value.diagnostics if d.code == "E306")
    assert (d.location.line, d.location.col) == (4, 11) and name in d.message
    assert words in " ".join(d.details), d.format()
    assert_located(info.value)


def test_include_of_a_directory(tmp_path):
    (tmp_path / "lib").mkdir()
    main = main_including(tmp_path / "main.yaml", "lib")
    with pytest.raises(SpecError) as info:
        specgraph.check(str(main))
    assert "E306" in info.value.codes and "directory" in " ".join(info.value.diagnostics[0].details)


def test_include_loops(tmp_path):
    """A file including itself, and a loop of three files: E307, and no hang."""
    main_including(tmp_path / "self.yaml", "self.yaml")
    with pytest.raises(SpecError) as info:
        specgraph.check(str(tmp_path / "self.yaml"))
    assert info.value.codes == ["E307"] and "self.yaml -> self.yaml" in info.value.diagnostics[0].message
    write(tmp_path / "a.yaml", 'specgraph: 1\ninclude: ["b.yaml"]\n')
    write(tmp_path / "b.yaml", 'specgraph: 1\ninclude: ["c.yaml"]\n')
    write(tmp_path / "c.yaml", 'specgraph: 1\ninclude: ["a.yaml"]\n' + LIB.split("\n", 1)[1])
    main_including(tmp_path / "main.yaml", "a.yaml")
    with pytest.raises(SpecError) as info:
        specgraph.check(str(tmp_path / "main.yaml"))
    assert info.value.codes == ["E307"]
    assert info.value.diagnostics[0].message == "include cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml"


def test_include_depth_limit(tmp_path):
    """A chain of 30 includes (no loop) passes the include-depth limit only when it is raised."""
    for i in range(30):
        write(tmp_path / f"l{i}.yaml", f'specgraph: 1\ninclude: ["l{i + 1}.yaml"]\n')
    write(tmp_path / "l30.yaml", LIB)
    main = main_including(tmp_path / "main.yaml", "l0.yaml")
    with pytest.raises(SpecError) as info:
        specgraph.check(str(main))
    assert info.value.codes == ["E104"] and "max_include_depth" in info.value.diagnostics[0].hint
    assert len(specgraph.check(specgraph.load(str(main), limits=Limits(max_include_depth=40)))) == 2


def test_include_escaping_the_folder_tree_and_include_root(tmp_path):
    """`../` out of the spec's folder is refused, so is an absolute path; --include-root (or
    include_root=) widens the tree that includes may reach, and only that far."""
    write(tmp_path / "project" / "lib" / "blocks.yaml", LIB)
    write(tmp_path / "secret.yaml", LIB)
    main = main_including(tmp_path / "project" / "specs" / "net.yaml", "../lib/blocks.yaml")
    for target in ("../lib/blocks.yaml", "../../../../../../etc/x.yaml", str(tmp_path / "secret.yaml")):
        main_including(main, target)
        with pytest.raises(SpecError) as info:
            specgraph.check(str(main))
        assert info.value.codes == ["E306"], info.value.format()
        d = info.value.diagnostics[0]
        assert "outside the spec's folder tree" in d.message and "--include-root" in d.hint
    main_including(main, "../lib/blocks.yaml")
    graph = specgraph.check(specgraph.load(str(main), include_root=str(tmp_path / "project")))
    assert "u.r" in graph
    main_including(main, "../../secret.yaml")  # still outside the widened root
    with pytest.raises(SpecError) as info:
        specgraph.load(str(main), include_root=str(tmp_path / "project"))
    assert info.value.codes == ["E306"]
    main_including(main, "../lib/blocks.yaml")
    runner = CliRunner()
    assert runner.invoke(app, ["check", str(main)]).exit_code == 1
    ok = runner.invoke(app, ["check", str(main), "--include-root", str(tmp_path / "project")])
    assert ok.exit_code == 0, ok.output


def test_limits_are_documented():
    """Every limit is in the resource-limits table of docs/errors.md, with the code it gives."""
    from dataclasses import fields

    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    table = text[text.index("## Resource limits"):]
    for f in fields(Limits):
        assert f"`{f.name}`" in table, f"{f.name} is not in docs/errors.md's resource limits"
    assert "--limit NAME=VALUE" in table and "Limits(" in table
    assert "--include-root" in (ROOT / "specgraph" / "cli" / "app.py").read_text(encoding="utf-8")
