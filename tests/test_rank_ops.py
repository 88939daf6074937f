"""The 1-D and 3-D convolutions, pools and batch norm in specs: small nets built from YAML against
the same nets written in plain torch.nn (weights loaded strictly by the spec's names), their ONNX
exports in onnxruntime, and each new op against the torch.nn module of the same name and params.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import specgraph
from specgraph.ir.dims import evaluate
from specgraph.ir.tensor_type import TensorType
from specgraph.ops import get_op
from specgraph.testing import run_op
from specgraph.torch.export.formats import example_inputs, to_onnx

from export_cases import assert_outputs_close, randomize_norm_stats

# ---- a 1-D conv net over [N, C, L] -----------------------------------------------------------------

SEQUENCE_NET = """
specgraph: 1
name: tiny_conv1d
inputs:
  x: [N, 4, L]
graph:
  conv: {op: conv1d, out: 8, kernel: 5, stride: 2, padding: 2, bias: false}
  bn:   {op: batchnorm1d}
  relu: {op: relu}
  pool: {op: maxpool1d, kernel: 3, stride: 2, padding: 1}
  gap:  {op: adaptive_avgpool1d, size: 1}
  flat: {op: flatten}
  fc:   {op: linear, out: 3}
"""


class SequenceNet(nn.Module):
    """SEQUENCE_NET by hand: [N, 4, L] -> [N, 3]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, stride=2, padding=2, bias=False)
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.max_pool1d(torch.relu(self.bn(self.conv(x))), 3, 2, 1)
        return self.fc(torch.flatten(nn.AdaptiveAvgPool1d(1)(x), 1))


# ---- a 3-D net over [N, C, D, H, W]: down and back up ----------------------------------------------

VOLUME_NET = """
specgraph: 1
name: tiny_conv3d
inputs:
  x: [N, 2, D, H, W]
graph:
  conv: {op: conv3d, out: 6, kernel: 3, padding: 1}
  bn:   {op: batchnorm3d}
  relu: {op: relu}
  pool: {op: maxpool3d, kernel: 2}
  up:   {op: conv_transpose3d, out: 3, kernel: 2, stride: 2}
"""


class VolumeNet(nn.Module):
    """VOLUME_NET by hand: [N, 2, D, H, W] -> [N, 3, 2⌊D/2⌋, 2⌊H/2⌋, 2⌊W/2⌋]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm3d(6)
        self.up = nn.ConvTranspose3d(6, 3, 2, stride=2)

    def forward(self, x):
        return self.up(nn.MaxPool3d(2)(torch.relu(self.bn(self.conv(x)))))


NETS = [(SEQUENCE_NET, SequenceNet, [(2, 4, 37), (3, 4, 64)]),
        (VOLUME_NET, VolumeNet, [(2, 2, 6, 8, 10), (1, 2, 5, 7, 4)])]
NET_IDS = ["conv1d_net", "conv3d_net"]


def _pair(text, reference_cls):
    """The spec's model and the hand-written one, with the same random weights and statistics."""
    torch.manual_seed(0)
    reference = reference_cls()
    randomize_norm_stats(reference)
    model = specgraph.build(text)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model.eval(), reference.eval()


@pytest.mark.parametrize("text,reference_cls,shapes", NETS, ids=NET_IDS)
def test_net_equals_the_plain_torch_composition(text, reference_cls, shapes):
    model, reference = _pair(text, reference_cls)
    assert list(model.state_dict()) == list(reference.state_dict())
    graph = specgraph.check(text)
    for shape in shapes:  # the symbolic dims at two sizes, odd ones included
        x = torch.randn(shape)
        with torch.no_grad():
            got, want = model(x), reference(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        sizes = dict(zip(["N", "C", "D", "H", "W"] if len(shape) == 5 else ["N", "C", "L"], shape))
        declared = graph.outputs[0].value.type.concrete(**{k: v for k, v in sizes.items() if k != "C"})
        assert tuple(declared) == tuple(got.shape)


def test_symbolic_shapes_follow_the_window_arithmetic():
    graph = specgraph.check(VOLUME_NET)
    types = {n.path: n.out for n in graph.op_nodes()}
    pool, up = types["pool"].shape, types["up"].shape
    assert (str(pool[0]), pool[1]) == ("N", 6)
    for i, name in enumerate("DHW"):
        for size in range(2, 12):  # ⌊S/2⌋ and 2·⌊S/2⌋, exactly, at every size
            assert evaluate(pool[2 + i], {name: size}) == size // 2
            assert evaluate(up[2 + i], {name: size}) == 2 * (size // 2)
    assert str(specgraph.check(SEQUENCE_NET).outputs[0].value.type) == "[N, 3]"


@pytest.mark.parametrize("text,reference_cls,shapes", NETS, ids=NET_IDS)
def test_net_exports_to_onnx_and_runs_in_onnxruntime(text, reference_cls, shapes, tmp_path):
    model, reference = _pair(text, reference_cls)
    graph = specgraph.check(text)
    traced = example_inputs(graph, model, dims={"L": 32, "D": 6, "H": 8, "W": 10})
    file = to_onnx(model, graph, tmp_path / "net.onnx", traced)
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    # every symbolic dim stays dynamic, named as in the spec (maxpool1d's L too: see ops/pool.py)
    assert session.get_inputs()[0].shape == [str(d) if not isinstance(d, int) else d
                                            for d in graph.inputs["x"].shape]
    for shape in [tuple(traced[0].shape), *shapes]:  # the traced size, and others
        x = torch.randn(shape)
        got = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            assert_outputs_close([torch.from_numpy(np.asarray(g)) for g in got], reference(x))


def test_fold_batchnorm_into_conv1d_and_conv3d_keeps_the_outputs():
    for text, reference_cls, shapes in NETS:
        model, reference = _pair(text, reference_cls)
        optimized = specgraph.optimize(model)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in optimized.modules())
        x = torch.randn(shapes[0])
        with torch.no_grad():
            torch.testing.assert_close(optimized(x), reference(x), atol=1e-4, rtol=1e-4)


# ---- each new op against torch.nn's module of the same params --------------------------------------

def _nn_conv(cls, c_in, p):
    return cls(c_in, p["out"], p["kernel"], **{k: v for k, v in p.items() if k not in ("out", "kernel")})


MODULE_CASES = [
    ("conv1d", {"out": 6, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "groups": 2}, (2, 4, 19),
     lambda p: _nn_conv(nn.Conv1d, 4, p)),
    ("conv1d", {"out": 4, "kernel": 4, "padding": "same", "padding_mode": "reflect"}, (2, 3, 11),
     lambda p: _nn_conv(nn.Conv1d, 3, p)),
    ("conv3d", {"out": 4, "kernel": [3, 1, 2], "stride": [1, 2, 1], "padding": [1, 0, 1], "bias": False},
     (1, 2, 5, 7, 6), lambda p: _nn_conv(nn.Conv3d, 2, p)),
    ("conv3d", {"out": 4, "kernel": 3, "padding": 1, "padding_mode": "circular", "groups": 2}, (1, 2, 4, 5, 6),
     lambda p: _nn_conv(nn.Conv3d, 2, p)),
    ("conv_transpose1d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
     (2, 6, 9), lambda p: _nn_conv(nn.ConvTranspose1d, 6, p)),
    ("conv_transpose3d", {"out": 2, "kernel": [2, 3, 3], "stride": [2, 1, 2], "dilation": [1, 2, 1]},
     (1, 3, 3, 4, 5), lambda p: _nn_conv(nn.ConvTranspose3d, 3, p)),
    ("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}, (2, 3, 14),
     lambda p: nn.MaxPool1d(3, 2, 1, 2, ceil_mode=True)),
    ("maxpool3d", {"kernel": [2, 3, 3], "stride": [1, 2, 2], "padding": [1, 1, 0]}, (1, 2, 5, 7, 8),
     lambda p: nn.MaxPool3d((2, 3, 3), (1, 2, 2), (1, 1, 0))),
    ("avgpool1d", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False, "ceil_mode": True},
     (2, 3, 10), lambda p: nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
    ("avgpool3d", {"kernel": 3, "stride": 2, "padding": 1}, (1, 2, 5, 6, 7), lambda p: nn.AvgPool3d(3, 2, 1)),
    ("adaptive_avgpool1d", {"size": 4}, (2, 3, 10), lambda p: nn.AdaptiveAvgPool1d(4)),
    ("adaptive_avgpool3d", {"size": [1, 2, 3]}, (1, 2, 5, 6, 7), lambda p: nn.AdaptiveAvgPool3d((1, 2, 3))),
    ("adaptive_maxpool1d", {"size": 3}, (2, 3, 10), lambda p: nn.AdaptiveMaxPool1d(3)),
    ("adaptive_maxpool3d", {"size": 2}, (1, 2, 5, 6, 7), lambda p: nn.AdaptiveMaxPool3d(2)),
    ("batchnorm3d", {"eps": 1e-3, "momentum": 0.2}, (2, 3, 2, 3, 4), lambda p: nn.BatchNorm3d(3, eps=1e-3, momentum=0.2)),
]


@pytest.mark.parametrize("op_name,params,shape,reference", MODULE_CASES,
                         ids=[f"{c[0]}{list(c[2])}" for c in MODULE_CASES])
def test_op_computes_what_the_torch_module_computes(op_name, params, shape, reference):
    torch.manual_seed(0)
    op = get_op(op_name)
    p = op.Params.model_validate(params)
    want_module = reference(params).eval()
    randomize_norm_stats(want_module)
    built = op.build(p, [TensorType(shape)])
    if built is not None:  # same class and state_dict keys as torch's own module
        assert type(built) is type(want_module)
        built.load_state_dict(want_module.state_dict(), strict=True)
    x = torch.randn(shape)
    with torch.no_grad():
        got = run_op(op, p, [TensorType(shape)], [x])[1][0] if built is None else built.eval()(x)
        torch.testing.assert_close(got, want_module(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op_name,params,shape", [(c[0], c[1], c[2]) for c in MODULE_CASES if c[0].startswith("conv")],
                         ids=[f"{c[0]}{list(c[2])}" for c in MODULE_CASES if c[0].startswith("conv")])
def test_macs_are_what_torch_counts(op_name, params, shape):
    from torch.utils.flop_counter import FlopCounterMode

    op = get_op(op_name)
    p = op.Params.model_validate(params)
    types = [TensorType((1, *shape[1:]))]
    module = op.build(p, types).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.randn(types[0].shape))
    assert op.macs(p, types, op.infer(p, types)) == counter.get_total_flops() // 2  # torch counts 2 flops a MAC


# ---- errors, located in the spec -------------------------------------------------------------------

def test_rank_errors_are_located_with_their_codes():
    text = """specgraph: 1
inputs:
  x: [N, 2, 8, 8]
  seq: [N, 4, 3]
graph:
  vol:  {op: conv3d, out: 4, kernel: 3, from: x}
  pool: {op: maxpool1d, kernel: 5, from: seq}
  up:   {op: conv_transpose1d, out: 4, kernel: 2, stride: 2, output_padding: 2, from: seq}
"""
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(text)
    found = {(d.code, d.path, d.location.line): d.message for d in info.value.diagnostics}
    assert found == {
        ("E410", "vol", 6): "conv3d expects a rank-5 input [N, C, D, H, W], found a rank-4 tensor [N, 2, 8, 8]",
        ("E404", "pool", 7): "maxpool1d would give output size 0 on dim 2 of input [N, 4, 3]",
        ("E404", "up", 8): "output_padding 2 must be smaller than stride or dilation",
    }
