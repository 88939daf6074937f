"""Shared pieces of the fuzz tests: settings profiles, the outcome every input must have, and
structure-aware mutation of the specs in specs/.

Profiles (``SPECGRAPH_FUZZ``): ``ci`` (the default; derandomized, a few thousand examples in
all, no example database) and ``long`` (random, 100,000+ examples; ``make fuzz``).
``SPECGRAPH_FUZZ_EXAMPLES=N`` sets the total number of examples of the fuzz tests directly, and
``SPECGRAPH_SOUNDNESS_EXAMPLES=N`` the number of random networks (test_soundness.py) and of
random op applications (test_op_soundness.py), each.
Every test takes a fixed share of the total, so the total is what the profile says.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import re
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, event, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st

import specgraph
from specgraph import SpecError
from specgraph.ops import op_names

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# ---- profiles ------------------------------------------------------------------------------------

PROFILE = os.environ.get("SPECGRAPH_FUZZ", "ci")
TOTALS = {"ci": 3_000, "long": 100_000}  # examples of the fuzz tests (test_fuzz.py), all together
SOUNDNESS = {"ci": 300, "long": 50_000}  # random valid specs built and run (test_soundness.py, test_op_soundness.py)
# The promise: every input is answered within 2 s.  It is asserted on the CPU time of the
# checking thread, which other processes on a shared CI machine cannot inflate; hypothesis's
# wall-clock deadline (which also covers building and running the checked graph) guards hangs.
CHECK_SECONDS = 2.0
DEADLINE = timedelta(seconds=float(os.environ.get("SPECGRAPH_FUZZ_DEADLINE_S", 10)))

_COMMON = dict(deadline=DEADLINE, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                      HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
settings.register_profile("specgraph-ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("specgraph-long", derandomize=False, **_COMMON)
if PROFILE not in TOTALS:
    raise RuntimeError(f"SPECGRAPH_FUZZ={PROFILE!r}: expected one of {', '.join(TOTALS)}")


def total_examples() -> int:
    return int(os.environ.get("SPECGRAPH_FUZZ_EXAMPLES", TOTALS[PROFILE]))


def fuzz_settings(share: float | dict[str, float], total: int | None = None) -> settings:
    """Settings of one fuzz test that runs ``share`` of the profile's total examples (a share per
    profile: the long one leans towards the cheaper tests to fit its 100,000 in an hour)."""
    base = settings.get_profile(f"specgraph-{PROFILE}")
    if isinstance(share, dict):
        share = share[PROFILE]
    return settings(base, max_examples=max(1, round(share * (total if total is not None else total_examples()))))


def soundness_settings(share: float) -> settings:
    return fuzz_settings(share, int(os.environ.get("SPECGRAPH_SOUNDNESS_EXAMPLES", SOUNDNESS[PROFILE])))


# ---- the outcome every input must have ------------------------------------------------------------

_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks, as the loader counts lines
CODE = re.compile(r"[EW]\d{3}")


def text_lines(text: str) -> list[str]:
    lines = _BREAK.split(text.removeprefix("\ufeff"))
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def file_lines(path: Path) -> list[str]:
    return text_lines(path.read_bytes().decode("utf-8", "replace"))


def assert_located(err: SpecError, text: str | None = None, cwd: Path | None = None) -> None:
    """Every diagnostic has a stable code and, when located, a location inside an existing
    file (or inside ``text`` for ``<string>``); the error renders as text and as JSON."""
    assert err.diagnostics, "a SpecError carries at least one diagnostic"
    for d in err.diagnostics:
        assert CODE.fullmatch(d.code), d
        assert d.severity in ("error", "warning"), d
        loc = d.location
        if loc is None:
            continue
        if loc.file == "<string>":
            assert text is not None, f"{d.format()}\n(a diagnostic of a file points at '<string>')"
            lines = text_lines(text)
        else:
            path = Path(loc.file)
            if not path.is_absolute() and cwd is not None:
                path = cwd / path
            assert path.is_file(), f"{d.format()}\n(the file {loc.file} does not exist)"
            lines = file_lines(path)
        assert 1 <= loc.line <= len(lines), f"{d.format()}\n(line {loc.line} of a {len(lines)}-line text)"
        assert 1 <= loc.col <= len(lines[loc.line - 1]) + 1, f"{d.format()}\n(col {loc.col} past the line's end)"
    assert err.format()
    json.dumps([d.to_json() for d in err.diagnostics])


def record(what: str) -> None:
    """A statistics event (``--hypothesis-show-statistics``); ignored outside a test."""
    try:
        event(what)
    except InvalidArgument:
        pass


def check_outcome(call: Callable[[], Any], text: str | None = None, cwd: Path | None = None):
    """Run ``call``: within CHECK_SECONDS of CPU time it returns (the graph) or raises a
    located SpecError; nothing else.  Returns the graph, or None for a SpecError."""
    # The cyclic collector is paused while timing: in a long fuzz run, a full collection walks
    # every object hypothesis has accumulated, which is the test's weight, not the compiler's.
    gc_was_on = gc.isenabled()
    gc.disable()
    start = time.thread_time()
    try:
        result = call()
    except SpecError as err:
        result = None
        assert_located(err, text, cwd)
        record(f"error {err.diagnostics[0].code}")
    finally:
        spent = time.thread_time() - start
        if gc_was_on:
            gc.enable()
    assert spent < CHECK_SECONDS, f"took {spent:.2f} s of CPU time"
    return result


# ---- the language's vocabulary --------------------------------------------------------------------

OPS = op_names()
TOP_KEYS = ["specgraph", "name", "doc", "include", "params", "let", "inputs", "blocks", "graph", "outputs", "train"]
NODE_KEYS = ["op", "block", "seq", "scan", "from", "when", "repeat", "inline", "init", "reverse", "doc"]
BLOCK_KEYS = ["params", "let", "states", "inputs", "outputs", "nodes"]
PARAM_KEYS = ["out", "kernel", "stride", "padding", "dilation", "groups", "bias", "dim", "p", "size", "chunks",
              "names", "hidden", "shape", "dtype", "train_only", "start_dim", "end_dim", "ceil_mode", "mode",
              "scale", "pads", "dims", "num", "sizes", "eps", "momentum", "affine", "num_layers", "bidirectional",
              "batch_first", "type", "default", "cell", "emit", "padding_mode", "output_padding", "value"]
NAMES = ["x", "y", "h", "c", "image", "conv", "conv1", "bn", "relu", "pool", "fc", "out", "a", "b", "unit",
         "stem", "head", "N", "H", "W", "T", "C", "width", "depth", "index", "0", "1"]
WORDS = TOP_KEYS + NODE_KEYS + BLOCK_KEYS + PARAM_KEYS + NAMES + OPS
EXPRESSIONS = ["$width", "${width * 2}", "${x.channels}", "${x.shape[2]}", "${x.shape[9]}", "$N", "${1 // 0}",
               "${9**9**9**9}", "${depth - 1}", "${index}", "${", "$", "${undefined}", "${x.channels * 0}",
               "${[1] * 10**9}", "${'a' * 10**9}", "${max(1, 2)}", "${2 ** 63}", "${-1}", "${true and 3}"]
INTS = st.sampled_from([0, 1, 2, 3, 4, 7, 8, 64, -1, -7, 10**12, 2**63, 10**40]) | st.integers()
FLOATS = st.sampled_from([0.0, 0.5, -0.5, 1.0, 1e300, float("inf"), float("nan")]) | st.floats()
SCALARS = (st.none() | st.booleans() | INTS | FLOATS | st.sampled_from(WORDS + EXPRESSIONS)
           | st.text(max_size=12))
KEYS = st.sampled_from(WORDS) | st.text(max_size=8)


def yaml_values(keys=KEYS, leaves=SCALARS, max_leaves: int = 30):
    """Any YAML data: nested lists and mappings of scalars."""
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
                        max_leaves=max_leaves)


# Node templates: well-formed nodes most of the time, so that documents get past the schema
# into expansion and shape inference, where they then meet wrong values and references.
TEMPLATES = [
    {"op": "conv2d", "out": 8, "kernel": 3}, {"op": "conv2d", "out": 4, "kernel": 1, "stride": 2},
    {"op": "conv2d", "out": "$width", "kernel": 3, "padding": 1}, {"op": "relu"}, {"op": "batchnorm2d"},
    {"op": "maxpool2d", "kernel": 2}, {"op": "avgpool2d", "kernel": 3, "stride": 1, "padding": 1},
    {"op": "adaptive_avgpool2d", "size": 1}, {"op": "flatten"}, {"op": "linear", "out": 10},
    {"op": "linear", "out": "${width * 2}"}, {"op": "dropout", "p": 0.5}, {"op": "sigmoid"}, {"op": "identity"},
    {"op": "layernorm"}, {"op": "softmax"}, {"op": "add"}, {"op": "concat"}, {"op": "concat", "dim": 1},
    {"op": "mul"}, {"op": "chunk", "chunks": 2}, {"op": "lstm", "hidden": 8}, {"op": "embedding", "num": 10, "dim": 4},
    {"op": "$act"}, {"op": "interpolate", "scale": 2}, {"op": "upsample", "size": 7}, {"op": "reshape", "shape": [-1]},
    {"op": "permute", "dims": [0, 2, 1]}, {"op": "mean", "dim": 1}, {"block": "unit"}, {"block": "unit", "width": 4},
    {"block": "$blk"}, {"scan": "cell"}, {"seq": [{"op": "relu"}]}, {"seq": [{"op": "conv2d", "out": 4, "kernel": 1},
                                                                          {"block": "unit"}]}, {}]
EXTRAS = {"when": [True, False, "${width > 2}", "${x.channels == 3}", "$flag", 1],
          "repeat": [0, 1, 2, 3, "$depth", "${depth - 1}", -1, 2.0, "${10**6}"],
          "inline": [True, False], "doc": ["text", 1], "init": [{"h": "x"}, {"h": "nope"}],
          "kernel": [0, -1, 1, 3, [3, 1], [1, 2, 3], "3", 10**6], "out": [0, 1, 16, "$width", 2**40, 10**13],
          "stride": [1, 2, 0, 9], "padding": [0, 1, "same", "valid", 100, [1, 1]], "dim": [0, 1, -1, 5],
          "p": [0, 0.5, 1.5, -1], "groups": [1, 2, 3], "size": [1, 7, [7, 7]], "hidden": [8, 0],
          "bias": [True, "false"], "chunks": [2, 3, 0], "frob": [1]}
INPUT_SHAPES = [["N", 3, 32, 32], ["N", 3, "H", "W"], ["N", 8], ["N", "T", 8], ["N", 1, 7, 7], [1, 3, 224, 224],
                {"shape": ["N", "T"], "dtype": "int64"}, {"shape": ["N", 3, 16, 16], "dtype": "float16"},
                ["N", 3, 0, 32], ["N", -1], [], "N", {"shape": ["N", 4], "dtype": "int8"}, ["N", "${width}", 4]]


@st.composite
def spec_like_documents(draw) -> dict:
    """Documents shaped like specs: mostly well-formed nodes (op templates, blocks, seqs, scans)
    wired by references that may or may not exist, with some wrong keys and values mixed in."""
    pick = lambda items, label: draw(st.sampled_from(items), label=label)  # noqa: E731
    names = draw(st.lists(st.sampled_from(NAMES), min_size=3, max_size=8, unique=True), label="names")
    refs = names + [f"{n}.{port}" for n in names[:3] for port in ("out", "h", "c0")] + ["nope"]

    inputs = names[:draw(st.integers(1, 2), label="inputs")]

    def node_map(depth: int, size: int) -> dict:
        nodes = {}
        for name in draw(st.lists(st.sampled_from(names[len(inputs):] if depth == 0 else names), min_size=1,
                                  max_size=size, unique=True), label="nodes"):
            node = copy.deepcopy(pick(TEMPLATES, "template"))
            if "seq" in node and depth < 2 and draw(st.booleans(), label="nested seq"):
                node["seq"] = list(node_map(depth + 1, 3).values()) or node["seq"]
            if draw(st.integers(0, 3), label="from?") == 0:
                node["from"] = draw(st.lists(st.sampled_from(refs), min_size=1, max_size=3), label="from")
            elif draw(st.integers(0, 5), label="from name?") == 0:
                node["from"] = pick(refs, "from")
            if draw(st.integers(0, 2), label="extras?") == 0:
                for key in draw(st.lists(st.sampled_from(sorted(EXTRAS)), max_size=2, unique=True), label="extras"):
                    node[key] = pick(EXTRAS[key], key)
            nodes[name] = node
        return nodes

    doc: dict[str, Any] = {"specgraph": 1 if draw(st.integers(0, 19), label="version?") else pick([2, "1", None], "v")}
    params = {"width": 4, "depth": 2, "act": "relu", "flag": True, "blk": "unit"}
    doc["params"] = {k: v for k, v in params.items() if draw(st.integers(0, 5), label=f"param {k}")}
    good = draw(st.integers(0, 3), label="good shapes?")  # mostly inputs that are right
    doc["inputs"] = {name: pick(INPUT_SHAPES[:8] if good else INPUT_SHAPES, "shape") for name in inputs}
    if draw(st.booleans(), label="blocks"):
        unit: dict[str, Any] = {"nodes": node_map(1, 3) or {"r": {"op": "relu"}}}
        if draw(st.booleans(), label="unit params"):
            unit["params"] = {"width": pick(["int", 8, "float", {"type": "int", "default": 2}], "width decl")}
        doc["blocks"] = {"unit": unit}
        if draw(st.booleans(), label="cell"):
            doc["blocks"]["cell"] = {"params": {"hidden": 8}, "states": {"h": "$hidden"}, "inputs": ["x", "h"],
                                     "outputs": {"h": "h_new"}, "nodes": {
                                         "h_new": {"op": "linear", "out": "$hidden", "from": pick(["x", "h"], "in")}}}
    doc["graph"] = node_map(0, 6)
    if draw(st.booleans(), label="outputs"):
        doc["outputs"] = pick([refs[:2], refs[0], {"main": refs[0], "aux": {"from": refs[1], "train_only": True}}],
                              "outputs")
    if draw(st.integers(0, 4), label="noise?") == 0:  # a stray key or a wrong value at the top
        doc[pick(TOP_KEYS[1:] + ["graphs", "input"], "stray key")] = draw(yaml_values(max_leaves=4), label="stray")
    return doc


# ---- the spec tree, mirrored so that mutated files keep their includes ----------------------------

def spec_files() -> list[Path]:
    """Every spec under specs/ (relative paths), block libraries included."""
    return sorted(p.relative_to(SPECS) for p in SPECS.rglob("*.yaml"))


def root_specs() -> list[Path]:
    """The specs that are checked: everything but the block libraries of specs/lib."""
    return [p for p in spec_files() if p.parts[0] != "lib"]


def include_closure(rel: Path, seen: set[Path] | None = None) -> list[Path]:
    """``rel`` and every file it includes, transitively (relative to specs/)."""
    import yaml

    seen = set() if seen is None else seen
    if rel in seen or not (SPECS / rel).is_file():
        return []
    seen.add(rel)
    out = [rel]
    try:
        data = yaml.safe_load((SPECS / rel).read_text(encoding="utf-8"))
    except Exception:  # a spec being edited by someone else: mutate only the file itself
        return out
    includes = data.get("include", []) if isinstance(data, dict) else []
    for inc in includes if isinstance(includes, list) else []:
        target = Path(os.path.normpath(rel.parent / str(inc)))
        if not str(target).startswith(".."):
            out += include_closure(target, seen)
    return out


# Files that are no spec, next to the specs: mutated includes point at them.
NOT_SPECS = {"notes.txt": b"just some text: not: a spec\n", "list.json": b'[1, 2, 3]\n', "list.yaml": b"- a\n- b\n",
             "empty.yaml": b"", "latin1.yaml": b"specgraph: 1\nname: caf\xe9\n", "scalar.yaml": b"42\n",
             "lib/other.yaml": b"specgraph: 1\nblocks:\n  unit:\n    nodes:\n      r: {op: relu}\n"}
INCLUDE_TARGETS = sorted(NOT_SPECS) + ["missing.yaml", "../outside.yaml", "../../../../../../etc/passwd",
                                       "/etc/hostname", "lib", ".", "lib/../lib/resnet.yaml", ""]


class SpecTree:
    """A copy of specs/ in a scratch folder, plus files that are no spec; a mutated file is
    written in place of its original and restored after the check."""

    def __init__(self, root: Path):
        self.root = root
        self.specs = root / "specs"
        if not self.specs.exists():
            shutil.copytree(SPECS, self.specs)
            for name, data in NOT_SPECS.items():
                (self.specs / name).write_bytes(data)
            (root / "outside.yaml").write_text("specgraph: 1\nblocks: {}\n")
        self.originals = {rel: (self.specs / rel).read_bytes() for rel in spec_files()}

    def write(self, rel: Path, text: str) -> Path:
        path = self.specs / rel
        path.write_text(text, encoding="utf-8")
        return path

    def restore(self, rel: Path) -> None:
        (self.specs / rel).write_bytes(self.originals[rel])


# ---- structure-aware mutations -----------------------------------------------------------------

NUMBERS = [0, -1, 1, 2, 3, 10**12, 2**63, 10**100, 0.5, -0.0, 1e308, float("inf"), float("nan")]
OTHER_TYPES = [None, True, False, 0, 3, 2.5, "", "text", "$undefined", "${x.channels}", [], [1, 2], [[1]], {},
               {"a": 1}, {"op": "relu"}, "N", "relu"]
BAD_STRINGS = ["", " ", "${", "$", "${1 // 0}", "${9**9**9**9}", "${x.shape[99]}", "$nope", "${[0] * 10**9}",
               "a.b.c", "x.", ".x", "relu", "N", "H", "same", "conv2d", "lib/resnet.yaml", "é", "\u2028", "0"]


def _walk(data: Any, path: tuple = ()):
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, path + (i,))


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _is_node_map(path: tuple, value: Any) -> bool:
    return isinstance(value, dict) and (path == ("graph",) or (len(path) == 3 and path[0] == "blocks"
                                                                and path[2] == "nodes"))


def node_containers(data: Any) -> list[tuple]:
    """Paths of node mappings (the graph, blocks' nodes) and of seq lists."""
    out = []
    for path, value in _walk(data):
        if _is_node_map(path, value) or (path and path[-1] == "seq" and isinstance(value, list)):
            out.append(path)
    return out


def _names_in(data: Any) -> list[str]:
    """Every name a reference might use: nodes, inputs, blocks, params, with ports."""
    names: set[str] = set()
    for path, value in _walk(data):
        if isinstance(value, dict) and (_is_node_map(path, value) or path in (("inputs",), ("blocks",), ("params",))):
            names |= {k for k in value if isinstance(k, str)}
    names = sorted(names)
    return names + [f"{n}.{p}" for n in names[:8] for p in ("out", "h", "c", "i", "layer4")] + ["nope", "x", ""]


def _insert_at(mapping: dict, index: int, key: str, value: Any) -> dict:
    items = list(mapping.items())
    items.insert(index, (key, value))
    return dict(items)


def _replace_container(data: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _set(data, path, new)
    return data


class Mutator:
    """Applies one random structure-aware mutation to spec data; ``draw`` is hypothesis's."""

    # Weighted towards the mutations that keep a spec compiling more often than not, so that
    # shape inference and the builder see many variants too.
    KINDS = (["delete_key", "rename_key", "change_type", "unknown_op", "include"]
             + ["retarget", "duplicate_node", "swap_nodes", "other_op", "new_node", "string", "move_node"] * 2
             + ["number"] * 6)

    def __init__(self, draw, own_name: str = "self.yaml"):
        self.draw = draw
        self.own_name = own_name  # the mutated file's name, for an include of itself

    def pick(self, items, label: str):
        return self.draw(st.sampled_from(items), label=label)

    def __call__(self, data: Any) -> tuple[Any, str]:
        result = getattr(self, self.pick(self.KINDS, "mutation"))(data)
        if result is None:  # nothing of that kind in this document: change any value's type
            result = self.change_type(data)
        return result

    def sites(self, data, want: Callable[[tuple, Any], bool]) -> list[tuple]:
        return [p for p, v in _walk(data) if p and want(p, v)]

    def delete_key(self, data):
        sites = self.sites(data, lambda p, v: isinstance(_get(data, p[:-1]), dict))
        if not sites:
            return None
        path = self.pick(sites, "key")
        del _get(data, path[:-1])[path[-1]]
        return data, f"delete {path}"

    def rename_key(self, data):
        sites = self.sites(data, lambda p, v: isinstance(_get(data, p[:-1]), dict))
        if not sites:
            return None
        path = self.pick(sites, "key")
        old = path[-1]
        parent = _get(data, path[:-1])
        typo = str(old)[:-1] + "x" if old else "x"
        new = self.pick(sorted(set(WORDS[:60]) | {typo, str(old).upper(), "0", "a.b", "with space"}
                               | {k for k in parent if k != old}), "new key")
        renamed = {(new if k == old else k): v for k, v in parent.items() if not (k == new and k != old)}
        return _replace_container(data, path[:-1], renamed), f"rename {path} -> {new!r}"

    def change_type(self, data):
        sites = self.sites(data, lambda p, v: True)
        if not sites:
            return {"specgraph": 1}, "replace the document"
        path = self.pick(sites, "value")
        new = copy.deepcopy(self.pick(OTHER_TYPES, "new value"))
        _set(data, path, new)
        return data, f"set {path} = {new!r}"

    def retarget(self, data):
        def is_ref(p, v):
            return isinstance(v, str) and any(k in ("from", "outputs", "init", "include") for k in p if isinstance(k, str))
        sites = self.sites(data, is_ref)
        if not sites:
            return None
        path = self.pick(sites, "reference")
        new = self.pick(_names_in(data), "target")
        _set(data, path, new)
        return data, f"point {path} at {new!r}"

    def number(self, data):
        sites = self.sites(data, lambda p, v: isinstance(v, (int, float)) and not isinstance(v, bool))
        if not sites:
            return None
        path = self.pick(sites, "number")
        old = _get(data, path)
        new = self.pick(NUMBERS + ([old + 1, old - 1, old * 2, old // 2 if isinstance(old, int) else old / 2,
                                    float(old)] if abs(old) < 1e15 else []), "new number")
        _set(data, path, new)
        return data, f"set {path} = {new!r}"

    def _node_site(self, data):
        containers = node_containers(data)
        nonempty = [c for c in containers if _get(data, c)]
        return self.pick(nonempty, "nodes") if nonempty else None

    def duplicate_node(self, data):
        where = self._node_site(data)
        if where is None:
            return None
        nodes = _get(data, where)
        if isinstance(nodes, list):
            i = self.draw(st.integers(0, len(nodes) - 1), label="item")
            nodes.insert(self.draw(st.integers(0, len(nodes)), label="at"), copy.deepcopy(nodes[i]))
            return data, f"duplicate item {i} of {where}"
        name = self.pick(list(nodes), "node")
        new = self.pick([name + "_copy", name + "2", "x", "0"], "new name")
        at = self.draw(st.integers(0, len(nodes)), label="at")
        if new in nodes:
            return None
        return (_replace_container(data, where, _insert_at(nodes, at, new, copy.deepcopy(nodes[name]))),
                f"duplicate {where}.{name} as {new} at {at}")

    def swap_nodes(self, data):
        where = self._node_site(data)
        if where is None:
            return None
        nodes = _get(data, where)
        items = list(nodes.items()) if isinstance(nodes, dict) else list(nodes)
        i = self.draw(st.integers(0, len(items) - 1), label="i")
        j = self.draw(st.integers(0, len(items) - 1), label="j")
        items[i], items[j] = items[j], items[i]
        new = dict(items) if isinstance(nodes, dict) else items
        return _replace_container(data, where, new), f"swap nodes {i} and {j} of {where}"

    def _op_sites(self, data):
        return self.sites(data, lambda p, v: p[-1] == "op" and isinstance(v, str))

    def unknown_op(self, data):
        sites = self._op_sites(data)
        if not sites:
            return None
        path = self.pick(sites, "op")
        new = self.pick(["frobnicate", "conv", "Conv2d", "relu6", "", "$nope", "${'x' * 3}", "scan", "input"], "op")
        _set(data, path, new)
        return data, f"op at {path} = {new!r}"

    def other_op(self, data):
        sites = self._op_sites(data)
        if not sites:
            return None
        path = self.pick(sites, "op")
        new = self.pick(OPS, "op")
        _set(data, path, new)
        return data, f"op at {path} = {new!r}"

    def new_node(self, data):
        containers = node_containers(data)
        if not containers:
            return None
        where = self.pick(containers, "nodes")
        nodes = _get(data, where)
        node = {"op": self.pick(OPS + ["frobnicate"], "op")}
        for key in self.draw(st.lists(st.sampled_from(PARAM_KEYS[:12] + ["from", "when", "repeat"]), max_size=3,
                                      unique=True), label="params"):
            node[key] = self.pick([1, 3, 64, "x", True, "$width", [1, 2], "same", 0.5], f"value of {key}")
        at = self.draw(st.integers(0, len(nodes)), label="at")
        if isinstance(nodes, list):
            node.pop("from", None)
            nodes.insert(at, node)
            return data, f"insert {node} at {where}[{at}]"
        name = self.pick(["new", "extra", "x", "0", "fc"], "name")
        if name in nodes:
            return None
        return _replace_container(data, where, _insert_at(nodes, at, name, node)), f"insert {name}: {node} in {where}"

    def string(self, data):
        sites = self.sites(data, lambda p, v: isinstance(v, str))
        if not sites:
            return None
        path = self.pick(sites, "string")
        others = sorted({v for _, v in _walk(data) if isinstance(v, str) and len(v) < 40})
        new = self.pick(BAD_STRINGS + others, "new string")
        _set(data, path, new)
        return data, f"set {path} = {new!r}"

    def include(self, data):
        if not isinstance(data, dict):
            return None
        includes = data.get("include")
        entries = self.draw(st.lists(st.sampled_from(INCLUDE_TARGETS + [self.own_name]), min_size=1, max_size=2),
                            label="includes")
        data["include"] = (list(includes) if isinstance(includes, list) else []) + entries
        return data, f"include += {entries}"

    def move_node(self, data):
        maps = [c for c in node_containers(data) if isinstance(_get(data, c), dict)]
        sources = [c for c in maps if _get(data, c)]
        if not sources or len(maps) < 2:
            return None
        src, dst = self.pick(sources, "from"), self.pick(maps, "to")
        if src == dst:
            return None
        name = self.pick(list(_get(data, src)), "node")
        if name in _get(data, dst):
            return None
        node = _get(data, src).pop(name)
        at = self.draw(st.integers(0, len(_get(data, dst))), label="at")
        return _replace_container(data, dst, _insert_at(_get(data, dst), at, name, node)), f"move {src}.{name} to {dst}"


# ---- running a built model: the real shape of every node ------------------------------------------

def live_nodes(graph) -> set[str]:
    """Paths of the op nodes the eval-mode module computes (those reaching an eval output)."""
    return {p for p in graph.needed_by(graph.eval_outputs) if not graph.node(p).is_input}


def build_naming(graph, check_inputs: bool = True):
    """``specgraph.build(graph)`` without its fused gather-dots (and None: the built module's fx
    nodes carry their spec nodes in ``meta["specgraph"]``, so no names need recording; kept for the
    callers' signature).  Unfused, every node has a tensor whose shape can be compared with its
    inferred one; a fused gather-dot's inner nodes have none (on the meta device, or any device but
    the CPU, the fused call runs these same ops; tests/test_gather_dot.py checks the kernel)."""
    from specgraph.torch.build import build_module

    return build_module(graph, check_inputs=check_inputs, fuse=False), None


def observed_shapes(graph, model, args, asked=None) -> dict[tuple[str, str], tuple[int, ...]]:
    """(node path, port) -> the shape its tensor really has, from running ``model`` (built from
    ``graph``, in eval mode) on ``args`` through an fx Interpreter that records every node.

    Each fx node that computes a spec node carries it in ``meta["specgraph"]`` (a multi-output
    node's value is the tuple of its ports).  An op that emits no fx node (identity, a chunk into
    one piece: they promise IDENTITY_IN_EVAL or VIEW) hands its input on: its value is its input's."""
    import torch
    from torch import fx

    from specgraph.ir.traits import Trait
    from specgraph.torch.build import graph_modules, spec_node

    seen: dict[tuple[str, str], tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            made = spec_node(n)
            if made is not None:
                ports = list(made.outputs)
                values = [result] if len(ports) == 1 else list(result)
                for port, value in zip(ports, values):
                    if isinstance(value, torch.Tensor):
                        seen[(made.path, port)] = tuple(value.shape)
            return result

    Recorder(graph_modules(model)[0]).run(*args)
    for name, arg in zip(graph.inputs, args):
        seen[(name, "out")] = tuple(arg.shape)
    for node in graph.op_nodes():
        port = next(iter(node.outputs))
        if (node.path, port) not in seen and len(node.outputs) == 1 and node.inputs \
                and node.traits & {Trait.IDENTITY_IN_EVAL, Trait.VIEW}:
            source = (node.inputs[0].node, node.inputs[0].port)
            if source in seen:
                seen[(node.path, port)] = seen[source]
    for name in graph.inputs:
        seen.pop((name, "out"), None)
    return seen
