"""The layout, contraction and attention ops in one network, against the same computation
written in plain PyTorch, and through every export (ONNX in onnxruntime, torch.export, Python)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

import specgraph
from specgraph.torch.export.python import python_source

SPEC = """
specgraph: 1
inputs:
  x: [N, 8, 6, 6]
  keep: {shape: [N, 1, 1, 1], dtype: bool}
graph:
  shuffled: {op: channel_shuffle, groups: 2, from: x}
  up:       {op: pixel_shuffle, factor: 2}                  # [N, 2, 12, 12]
  down:     {op: pixel_unshuffle, factor: 2}                # [N, 8, 6, 6]
  rolled:   {op: roll, shifts: [1, -2], dims: [2, 3]}
  chosen:   {op: where, from: [keep, rolled, x]}
  tokens:   {op: flatten, start_dim: 2}                     # [N, 8, 36]
  seq:      {op: transpose, dim0: 1, dim1: 2}               # [N, 36, 8]
  normed:   {op: rmsnorm, eps: 1.0e-6}
  heads:    {op: unflatten, dim: 2, sizes: [2, 4]}          # [N, 36, 2, 4]
  q:        {op: transpose, dim0: 1, dim1: 2}               # [N, 2, 36, 4]
  attended: {op: scaled_dot_product_attention, from: [q, q, q], causal: true}
  scores:   {op: matmul, from: [attended, q_t]}
  q_t:      {op: transpose, from: q, dim0: -1, dim1: -2}    # [N, 2, 4, 36]
  first:    {op: slice, from: scores, dim: -1, start: 1, stop: 33, step: 2}   # [N, 2, 36, 16]
outputs: [first]
"""


def reference(model, x, keep):
    y = torch.channel_shuffle(x, 2)
    y = F.pixel_unshuffle(F.pixel_shuffle(y, 2), 2)
    y = torch.roll(y, (1, -2), (2, 3))
    y = torch.where(keep, y, x)
    y = y.flatten(2).transpose(1, 2)
    y = F.rms_norm(y, (8,), model.normed.weight, 1e-6)
    q = y.unflatten(2, (2, 4)).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    return (a @ q.transpose(-1, -2))[..., 1:33:2]


def test_layout_ops_equal_plain_torch_and_every_export(tmp_path):
    graph = specgraph.check(SPEC)
    assert str(graph.node("first").out) == "[N, 2, 36, 16]"
    model = specgraph.build(graph).eval()
    with torch.no_grad():
        model.normed.weight.copy_(torch.rand(8) + 0.5)
    x, keep = torch.randn(3, 8, 6, 6), torch.rand(3, 1, 1, 1) > 0.5
    with torch.no_grad():
        want = reference(model, x, keep)
        torch.testing.assert_close(model(x, keep), want, atol=1e-5, rtol=1e-5)
    written = specgraph.export(graph, model=model, onnx=tmp_path / "m.onnx", exported=tmp_path / "m.pt2",
                               python=tmp_path / "m.py")
    session = ort.InferenceSession(str(written["onnx"]))
    got = session.run(None, {"x": x.numpy(), "keep": keep.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
    program = torch.export.load(str(written["exported"])).module()
    torch.testing.assert_close(program(x, keep), want, atol=1e-5, rtol=1e-5)
    namespace: dict = {}
    exec(compile(python_source(model), "m.py", "exec"), namespace)
    generated = namespace[type(model).__name__]()  # the file's class is named as the built module's
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(generated.eval()(x, keep), want, atol=1e-5, rtol=1e-5)
