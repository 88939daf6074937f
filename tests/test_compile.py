"""Compiler friendliness: torch.export captures every spec of the folder, its symbolic dims
dynamic, and the program's outputs equal the module's; recurrent specs fix their sequence
length (the documented set below). torch.compile(fullgraph=True) is tested in test_specs.py."""

from __future__ import annotations

import pytest
import torch

import specgraph
from specgraph.torch.export.formats import (dynamic_dims, dynamic_shapes, eval_module, export_program, fixed_dims,
                              save_program)
from export_cases import (IDS, RECURRENT_FIXED_DIMS, SPECS, alternate_inputs, assert_outputs_close, load_case,
                          spec_id, trace_inputs)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_torch_export(path):
    name = spec_id(path)
    graph, model = load_case(path)
    program = export_program(model, graph, trace_inputs(graph, model))
    fixed = set(RECURRENT_FIXED_DIMS.get(name, {}))
    want_dynamic = {k: [str(d) for d in t.shape if not isinstance(d, int) and not fixed & d.symbols]
                    for k, t in graph.inputs.items()}
    assert dynamic_dims(program, graph) == want_dynamic
    exported = program.module()
    module = eval_module(model)
    inputs = alternate_inputs(graph, model)  # other sizes than the trace's, where dynamic
    with torch.no_grad():
        assert_outputs_close(exported(*inputs), module(*inputs), atol=1e-5, rtol=1e-5)


def test_recurrent_specs_are_the_documented_ones():
    found = {spec_id(p): set(fixed_dims(specgraph.check(p))) for p in SPECS}
    assert {k: v for k, v in found.items() if v} == {k: set(v) for k, v in RECURRENT_FIXED_DIMS.items()}


@pytest.mark.parametrize("stem", ["lenet5", "cbow", "lstm_forecaster"])
def test_exported_program_file_roundtrip(stem, tmp_path):
    graph, model = load_case(next(p for p in SPECS if p.stem == stem))
    file = save_program(export_program(model, graph, trace_inputs(graph, model)), tmp_path / "model.pt2")
    loaded = torch.export.load(str(file)).module()
    inputs = alternate_inputs(graph, model)
    with torch.no_grad():
        assert_outputs_close(loaded(*inputs), eval_module(model)(*inputs), atol=1e-5, rtol=1e-5)


def test_symbolic_dims_of_several_inputs_share_one_dim():
    graph = specgraph.check("specs/cbow_ns.yaml")
    shapes = dynamic_shapes(graph)
    assert shapes[0][0] is shapes[1][0]  # context and words: one batch N
