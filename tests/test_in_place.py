"""The default build runs activations and adds in place where their input has no other reader and
its producer's backward does not read it (ir/in_place.py), as torchvision's models do.  It must
train exactly like the out-of-place build: outputs, parameter and input gradients equal within
1e-5 for every spec of the folder, in train mode (dropout, batch statistics) with a backward pass
(autograd raises on any tensor it saved being overwritten); and the memory walk follows it."""

from __future__ import annotations

import pytest
import torch

import specgraph
from specgraph.analysis.memory.walk import memory_report
from specgraph.ir.in_place import in_place_nodes
from specgraph.torch.build import IN_PLACE_KEY, build_module, graph_modules
from specgraph.torch.export.formats import example_inputs
from export_cases import IDS, SEQ_DIMS, SMALL, SPECS, as_tuple, randomize_norm_stats, spec_id
from peak_measure import measured_peak, random_inputs


def in_place_fx_nodes(model) -> list[str]:
    return [n.name for gm in graph_modules(model) if gm is not None for n in gm.graph.nodes
            if n.meta.get(IN_PLACE_KEY)]


def _loss(outputs, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)  # a weight per element: no symmetric gradients
    return sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum()
               for o in as_tuple(outputs) if o.is_floating_point())


def _train_step(model, inputs):
    inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    torch.manual_seed(0)  # the same dropout masks in both builds
    out = model(*inputs)
    _loss(out).backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    return as_tuple(out), grads, [t.grad for t in inputs if t.requires_grad]


# smaller sizes for speed where a spec has params for them (the structure is unchanged)
TRAIN_SMALL = {"vit_b_16": {"image_size": 64, "num_layers": 2}}


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_in_place_build_trains_like_the_out_of_place_one(path):
    graph = specgraph.check(path, **{**SMALL.get(spec_id(path), {}), **TRAIN_SMALL.get(spec_id(path), {})})
    model = build_module(graph)
    reference = build_module(graph, in_place=False)
    randomize_norm_stats(model)
    reference.load_state_dict(model.state_dict(), strict=True)
    assert not in_place_fx_nodes(reference)
    expected = in_place_nodes(graph, graph.outputs) | in_place_nodes(graph, graph.eval_outputs)
    assert {n.meta["specgraph"].path for gm in graph_modules(model) if gm is not None
            for n in gm.graph.nodes if n.meta.get(IN_PLACE_KEY)} == expected
    if not expected:  # nothing runs in place: the two builds are the same program
        assert [gm.code for gm in graph_modules(model) if gm is not None] == \
            [gm.code for gm in graph_modules(reference) if gm is not None]
        return
    inputs = example_inputs(graph, model, dims=SEQ_DIMS)
    model.train()
    reference.train()
    got, got_grads, got_input_grads = _train_step(model, inputs)
    want, want_grads, want_input_grads = _train_step(reference, inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys() and got_grads
    for k in want_grads:
        torch.testing.assert_close(got_grads[k], want_grads[k], atol=1e-5, rtol=1e-5, msg=k)
    for g, w in zip(got_input_grads, want_input_grads):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    # batch norm's running statistics moved the same way
    for (k, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=k)


def test_torchvision_pattern_relu_after_batch_norm_and_the_residual_add():
    graph = specgraph.check("specs/resnet18.yaml")
    nodes = in_place_nodes(graph, graph.outputs)
    # after a batch norm, the block's add (overwriting bn2's output) and the relu after that add
    assert {"relu", "layer1.0.relu1", "layer1.0.add", "layer1.0.relu"} <= nodes
    model = specgraph.build(graph)
    assert "torch.relu_(bn1)" in model.code and "layer1_0_bn2.add_(maxpool)" in model.code
    # mobilenet_v3: hardswish after a batch norm and after the classifier's linear, the residual
    # add, and the SE gate's relu and hardsigmoid, each after a conv
    graph = specgraph.check("specs/mobilenet_v3_large.yaml")
    nodes = in_place_nodes(graph, graph.outputs)
    assert {"features.0.2", "classifier.1", "features.1.add", "features.11.block.2.activation",
            "features.11.block.2.scale_activation"} <= nodes
    assert len(in_place_fx_nodes(specgraph.build(graph))) == len(nodes) == 58


GUARDED = """
specgraph: 1
inputs: {x: [N, 4, 8, 8]}
graph:
  relu_in:  {op: relu, from: x}                   # a graph input: never overwritten
  conv:     {op: conv2d, out: 4, kernel: 3, padding: 1}
  relu_a:   {op: relu, from: conv}                # conv's output read twice: kept
  twice:    {op: add, from: [conv, relu_a]}       # conv's output read twice: kept
  sig:      {op: sigmoid, from: twice}            # after an add: overwrites it
  relu_b:   {op: relu, from: sig}                 # sigmoid's backward reads its output: kept
  conv2:    {op: conv2d, out: 4, kernel: 1, from: relu_b}
  wide:     {op: add, from: [conv2, relu_in]}     # same shape: overwrites conv2's output
  pooled:   {op: adaptive_avgpool2d, size: 1}
  grown:    {op: add, from: [pooled, wide]}       # pooled broadcasts into [N, 4, 8, 8]: kept
outputs: [grown, relu_a]
"""


def test_only_fresh_unsaved_single_reader_inputs_are_overwritten():
    graph = specgraph.check(GUARDED)
    assert in_place_nodes(graph, graph.outputs) == {"sig", "wide"}
    model = build_module(graph)
    reference = build_module(graph, in_place=False)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 8, 8)
    got, grads, _ = _train_step(model, [x])
    want, want_grads, _ = _train_step(reference, [x])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    for k in want_grads:
        torch.testing.assert_close(grads[k], want_grads[k])


THROUGH_DROPOUT = """
specgraph: 1
inputs: {x: [N, 4, 8, 8]}
graph:
  conv:     {op: conv2d, out: 4, kernel: 3, padding: 1}
  scaled:   {op: mul, by: 0.5}
  dropped:  {op: drop_path, p: 0.3}               # the product itself in eval mode, fresh in training
  block:    {op: add, from: [dropped, x]}         # overwrites the product through the drop_path
  relu:     {op: relu}
  kept:     {op: dropout, p: 0.2, from: relu}     # relu's backward reads its output: kept
  sum2:     {op: add, from: [kept, conv]}
  conv2:    {op: conv2d, out: 4, kernel: 1, from: sum2}
  shared:   {op: dropout, p: 0.2}                 # conv2's output is read twice: kept
  sum3:     {op: add, from: [shared, conv2]}
outputs: [sum3]
"""


def test_an_add_overwrites_a_fresh_tensor_through_a_dropout_like_node():
    graph = specgraph.check(THROUGH_DROPOUT)
    assert in_place_nodes(graph, graph.outputs) == {"block", "relu"}
    model = build_module(graph)
    assert "dropped.add_(x)" in model.code
    reference = build_module(graph, in_place=False)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 8, 8)
    for train in (True, False):
        model.train(train)
        reference.train(train)
        got, grads, x_grads = _train_step(model, [x])
        want, want_grads, want_x_grads = _train_step(reference, [x])
        for g, w in zip(got + tuple(x_grads), want + tuple(want_x_grads)):
            torch.testing.assert_close(g, w)
        for k in want_grads:
            torch.testing.assert_close(grads[k], want_grads[k])


SUM_OF_TWO = """
specgraph: 1
inputs: {x: [N, 64, 64, 64]}
graph:
  a:    {op: batchnorm2d, from: x}
  b:    {op: batchnorm2d, from: x}
  sum:  {op: add, from: [a, b]}
  relu: {op: relu}
"""


def test_the_memory_walk_counts_an_in_place_add_as_no_new_storage():
    # the add is the peak: out of place it holds x, a, b and the sum at once; in place x, a and b
    torch.set_num_threads(1)
    graph = specgraph.check(SUM_OF_TWO)
    report = memory_report(graph, 4, threads=1)
    assert report.nodes["sum"].new_bytes == report.nodes["relu"].new_bytes == 0
    activation = 4 * 64 * 64 * 64 * 4
    assert report.nodes["sum"].live_bytes == 2 * activation + report.input_bytes == report.inference_peak
    measured = measured_peak(specgraph.build(graph).eval(), random_inputs(graph, report.sizes))
    out_of_place = measured_peak(build_module(graph, in_place=False).eval(), random_inputs(graph, report.sizes))
    assert out_of_place - measured >= 0.9 * activation  # the build really saves one activation
    assert abs(report.inference_peak - measured) <= 0.05 * measured
