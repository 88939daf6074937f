"""Fuzzing: whatever the input, checking a spec ends in a graph or in a SpecError whose every
location lies inside an existing file, within 2 s (of CPU time; hypothesis's wall-clock deadline
guards hangs, see tests/fuzzing.py), and never in any other exception.  A spec that checks also builds, and runs (on torch's "meta" device, where
tensors have shapes but no data) with every node's real shape equal to the inferred one.

Inputs: (a) random YAML documents, both arbitrary and shaped like specs out of the language's
own words; (b) structure-aware mutations of every spec in specs/ (its block libraries included,
through the specs that include them): delete or rename a key, change a value's type, point a
reference elsewhere, change a number, duplicate, swap or move nodes, change or insert ops,
break includes.  The mutated file is written into a copy of specs/ so its includes resolve.

CI runs a few thousand examples (derandomized); ``make fuzz`` runs 100,000+ (``SPECGRAPH_FUZZ=long``,
see tests/fuzzing.py).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st

import specgraph
from specgraph.ir import dims
from specgraph.expand.expander import expand

from fuzzing import (SPECS, SpecTree, Mutator, build_naming, check_outcome, record, fuzz_settings, include_closure, live_nodes,
                     observed_shapes, root_specs, spec_files, spec_like_documents, yaml_values)

ROOTS = root_specs()
CLOSURES = {rel: include_closure(rel) for rel in ROOTS}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> SpecTree:
    tree = SpecTree(tmp_path_factory.mktemp("fuzz"))
    # Warm up outside the deadline: the first build imports torch, the first run of an op on
    # the meta device loads its kernels.
    for rel in ROOTS:
        try:
            spec = specgraph.load(str(tree.specs / rel))
            graph = concrete_graph(spec, specgraph.check(spec))
        except specgraph.SpecError:  # a spec someone is editing
            continue
        if graph is not None:
            runs_on_meta(graph)
    return tree


def dump(data, draw) -> str:
    return yaml.dump(data, Dumper=DUMPER, sort_keys=False, allow_unicode=draw(st.booleans(), label="unicode"),
                     default_flow_style=draw(st.sampled_from([False, None, True]), label="flow"), width=100)


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ORIGINALS: dict[Path, object] = {}


def original(rel: Path):
    if rel not in ORIGINALS:
        ORIGINALS[rel] = yaml.load((SPECS / rel).read_text(encoding="utf-8"), Loader=LOADER)
    return copy.deepcopy(ORIGINALS[rel])


# ---- a spec that checks also builds and runs, every node with its inferred shape -------------------

def concrete_graph(spec, graph):
    """The spec (whose checked graph is ``graph``) checked again with its symbolic input dims
    made concrete: N=2, H and W 64 or 224, any other (a sequence length) 3; None when the spec
    fits neither size."""
    for size in (64, 224):
        shapes = {}
        for name, t in graph.inputs.items():
            if any(isinstance(d, dims.Sym) and d.opaque is not None for d in t.shape):
                return None
            sizes = {s: {"N": 2, "H": size, "W": size}.get(s, 3)
                     for d in t.shape if isinstance(d, dims.Sym) for s in d.symbols}
            shapes[name] = t.with_shape(t.concrete(**sizes))
        try:
            return expand(spec, input_shapes=shapes, suggest_sizes=False)
        except specgraph.SpecError:
            continue
    return None


def runs_on_meta(graph) -> None:
    """Build ``graph`` (concrete) on the meta device and run it: every live node's real shape
    equals its inferred one."""
    import torch

    live = live_nodes(graph)
    if len(live) > 400 or any(getattr(graph.node(p).params, "num_layers", 1) > 4 for p in live):
        record("not run: too large for the meta device's (slow, Python) recurrent kernels")
        return
    floats = {t.dtype for t in graph.inputs.values() if "float" in t.dtype}
    if len(floats) > 1:
        record("not run: inputs of several float dtypes")
        return
    with torch.device("meta"):
        model, renamed = build_naming(graph)
        model.eval()
        if floats and floats != {"float32"}:  # modules are built in float32; the user converts them
            model = model.to(getattr(torch, floats.pop()))
        args = [torch.empty(t.concrete(), dtype=getattr(torch, t.dtype)) for t in graph.inputs.values()]
    seen = observed_shapes(graph, model, args, renamed)
    record("builds and runs with the inferred shapes")
    for path in live:
        for port, t in graph.node(path).outputs.items():
            assert (path, port) in seen, f"node {path}.{port} was not observed in the built module"
            assert seen[(path, port)] == t.concrete(), f"{path}.{port}: inferred {t}, real {list(seen[path, port])}"


# ---- (a) random YAML documents -----------------------------------------------------------------------

@fuzz_settings({"ci": 0.15, "long": 0.30})
@given(doc=yaml_values(), data=st.data())
def test_random_yaml_documents(doc, data):
    text = dump(doc, data.draw)
    graph = check_outcome(lambda: specgraph.check(text), text)
    assert graph is None or len(graph) > 0


@fuzz_settings({"ci": 0.25, "long": 0.35})
@given(doc=spec_like_documents(), data=st.data())
def test_documents_made_of_the_languages_words(doc, data, tree):
    text = dump(doc, data.draw)
    note(text)
    graph = check_outcome(lambda: specgraph.check(text), text)
    if graph is not None:
        record("checks")
        concrete = check_outcome(lambda: concrete_graph(specgraph.load(text), graph), text)
        if concrete is not None:
            runs_on_meta(concrete)


# ---- (b) structure-aware mutations of the specs in specs/ ----------------------------------------------

@st.composite
def mutated_spec(draw) -> tuple[Path, Path, str]:
    """(spec to check, file mutated, its mutated text), both relative to specs/."""
    root = draw(st.sampled_from(ROOTS), label="spec")
    target = draw(st.sampled_from(CLOSURES[root] or [root]), label="mutated file")
    data = original(target)
    mutate = Mutator(draw, own_name=target.name)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]), label="mutations")):
        data, what = mutate(data)
        note(what)
    return root, target, dump(data, draw)


@fuzz_settings({"ci": 0.60, "long": 0.35})
@given(case=mutated_spec())
def test_mutated_specs(case, tree):
    root, target, text = case
    tree.write(target, text)
    path = str(tree.specs / root)
    try:
        graph = check_outcome(lambda: specgraph.check(path), cwd=Path.cwd())
        if graph is not None:
            record("checks")
            concrete = check_outcome(lambda: concrete_graph(specgraph.load(path), graph), cwd=Path.cwd())
            if concrete is not None:
                runs_on_meta(concrete)
    finally:
        tree.restore(target)


def test_every_spec_is_fuzzed():
    """Every spec and library in specs/ is a mutation target (the list is read, not written)."""
    targets = {t for closure in CLOSURES.values() for t in closure}
    assert set(spec_files()) <= targets, set(spec_files()) - targets
    assert any(t.parts[0] == "lib" for t in targets) and any(t.parts[0] == "cells" for t in targets)
