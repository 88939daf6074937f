"""The activations and element-wise math ops no spec of the folder uses, through every back-end:
one spec with all of them, equal to torch's functions, through ONNX (onnxruntime, N and T
dynamic), TorchScript, torch.export, the standalone Python source and optimize()."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

import specgraph
from specgraph.torch.export.formats import example_inputs, to_onnx, to_torchscript
from specgraph.torch.export.python import python_source

SPEC = """
specgraph: 1
name: every_pointwise
inputs:
  x: {shape: [N, 8, T]}
graph:
  relu6:       {op: relu6, from: x}
  hardtanh:    {op: hardtanh, min_val: -0.5, max_val: 0.5, from: x}
  hardswish:   {op: hardswish, from: x}
  hardsigmoid: {op: hardsigmoid, from: x}
  softplus:    {op: softplus, beta: 2.0, from: x}
  mish:        {op: mish, from: x}
  prelu:       {op: prelu, channelwise: true, from: x}
  neg:         {op: neg, from: x}
  square:      {op: pow, exponent: 2, from: x}
  magnitude:   {op: abs, from: x}
  positive:    {op: add, by: 1.0, from: magnitude}
  sqrt:        {op: sqrt, from: positive}
  rsqrt:       {op: rsqrt, from: positive}
  log:         {op: log, from: positive}
  exp:         {op: exp, from: hardtanh}
  clamp:       {op: clamp, min: -1.0, max: 1.0, from: x}
  third:       {op: div, by: 3.0, from: x}
  less:        {op: sub, from: [x, relu6]}
  halved:      {op: mul, by: 0.5, from: x}
  unit:        {op: normalize, dim: 1, from: x}
  all:         {op: concat, dim: 1, from: [relu6, hardtanh, hardswish, hardsigmoid, softplus, mish, prelu, neg, square,
                                           sqrt, rsqrt, log, exp, clamp, third, less, halved, unit]}
  gated:       {op: glu, dim: 1, from: x}
outputs: [all, gated]
"""


def reference(model, x):
    m = x.abs() + 1
    parts = [F.relu6(x), F.hardtanh(x, -0.5, 0.5), F.hardswish(x), F.hardsigmoid(x), F.softplus(x, beta=2.0),
             F.mish(x), F.prelu(x, model.prelu.weight), -x, x ** 2, m.sqrt(), m.rsqrt(), m.log(),
             F.hardtanh(x, -0.5, 0.5).exp(), x.clamp(-1, 1), x / 3, x - F.relu6(x), x * 0.5, F.normalize(x, dim=1)]
    return torch.cat(parts, 1), F.glu(x, 1)


def built():
    graph = specgraph.check(SPEC)
    model = specgraph.build(graph).eval()
    with torch.no_grad():
        model.prelu.weight.copy_(torch.linspace(0.05, 0.4, 8))  # not torch's 0.25 everywhere
    return graph, model


def test_every_pointwise_op_equals_torch():
    graph, model = built()
    assert [str(o.value.type) for o in graph.outputs] == ["[N, 144, T]", "[N, 4, T]"]
    x = torch.randn(3, 8, 11) * 4
    with torch.no_grad():
        for got, want in zip(model(x), reference(model, x)):
            torch.testing.assert_close(got, want)


def test_every_pointwise_op_exports(tmp_path):
    graph, model = built()
    x = torch.randn(1, 8, 5) * 4  # other sizes than the trace's: N and T are dynamic in ONNX
    with torch.no_grad():
        want = model(x)
    file = to_onnx(model, graph, tmp_path / "m.onnx", example_inputs(graph, model, dims={"N": 2, "T": 7}))
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})
    for g, w in zip(got, want):
        torch.testing.assert_close(torch.from_numpy(np.asarray(g)), w, atol=1e-4, rtol=1e-4)

    assert to_torchscript(model, graph, tmp_path / "m.pt", (x,)) == "script"
    for g, w in zip(torch.jit.load(str(tmp_path / "m.pt"))(x), want):
        torch.testing.assert_close(g, w)

    exported = torch.export.export(model, (x,)).module()
    for g, w in zip(exported(x), want):
        torch.testing.assert_close(g, w)

    namespace: dict = {}
    exec(compile(python_source(model), "generated", "exec"), namespace)
    generated = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]()
    generated.load_state_dict(model.state_dict(), strict=True)
    for g, w in zip(generated.eval()(x), want):
        torch.testing.assert_close(g, w)

    fast = specgraph.optimize(model, "inference", graph=graph)  # activations of a fresh tensor run in place
    for g, w in zip(fast(x), want):
        torch.testing.assert_close(g, w)
