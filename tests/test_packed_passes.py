"""The packed oneDNN passes of optimize(model, "inference"): convolutions (prepack.py), linears
(packed_linear.py) and self-attention (packed_attention.py), with the activation and residual add
after them fused in (epilogue.py).  Each must compute what the same optimised model computes
with plain torch modules (prepack=False: the same folded weights) within 1e-5, over every spec
of the folder, and must never write into a tensor that something else still reads (a graph
input, or an operand read after the fused add)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import specgraph
from specgraph import optimize
from specgraph.torch.passes import prepack as _prepack
from specgraph.torch.passes.epilogue import WRITES_INTO
from specgraph.torch.passes.packed_attention import PackedSelfAttention
from specgraph.torch.passes.packed_linear import PackedLinear
from specgraph.torch.passes.prepack import PrepackedConv2d
from specgraph.ops.torch_modules import SpecMultiheadAttention
from specgraph.torch.export.formats import example_inputs
from export_cases import IDS, SEQ_DIMS, SPECS, as_tuple, load_case

pytestmark = pytest.mark.skipif(not _prepack.available(), reason="this torch has no oneDNN packed kernels")


def _close(got, want):
    got, want = as_tuple(got), as_tuple(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_packed_model_computes_what_the_unpacked_one_does(path):
    graph, model = load_case(path)  # batch norms with random statistics, eval mode
    packed = optimize(model, "inference")
    plain = optimize(model, "inference", prepack=False)
    report = packed.meta["specgraph_passes"]
    # every zero-padded conv2d and linear the graph calls (those inside a scan's cell stay plain)
    called = [plain.get_submodule(n.target) for n in plain.graph.nodes if n.op == "call_module"]
    assert len(report.prepacked) == sum(type(m) is nn.Conv2d and m.padding_mode == "zeros" for m in called)
    assert len(report.packed_linear) == sum(type(m) is nn.Linear for m in called)
    assert list(packed.state_dict()) == list(plain.state_dict())
    for n in (1, 2):  # a packed weight per input size
        inputs = example_inputs(graph, model, dims={**SEQ_DIMS, "N": n})
        kept = [t.clone() for t in inputs]
        with torch.no_grad():
            got = packed(*inputs)
            want = plain(*inputs)
        _close(got, want)
        for t, k in zip(inputs, kept):  # a fused add never writes into a graph input
            assert torch.equal(t, k)


def test_resnet50_fuses_each_blocks_add_and_relu_into_its_last_conv():
    graph, model = load_case(next(p for p in SPECS if p.stem == "resnet50"))
    packed = optimize(model, "inference")
    report = packed.meta["specgraph_passes"]
    assert "layer1.0.conv3+add+relu" in report.prepacked and "conv1+relu" in report.prepacked
    assert sum("+add" in p for p in report.prepacked) == 16  # one per bottleneck
    # the add writes into the identity's buffer where that is a downsample conv's fresh output
    fused = {n.target: n for n in packed.graph.nodes if n.op == "call_module"}
    assert fused["layer1.0.conv3"].meta.get(WRITES_INTO) == 1
    assert isinstance(packed.get_submodule("layer1.0.conv3"), PrepackedConv2d)


RESIDUAL_READ_LATER = """
specgraph: 1
inputs: {x: [N, 8, 16, 16]}
graph:
  stem:  {op: conv2d, out: 8, kernel: 3, padding: 1, from: x}
  conv:  {op: conv2d, out: 8, kernel: 3, padding: 1, from: stem}
  sum:   {op: add, from: [conv, stem]}          # stem is read again below: the add is kept
  relu:  {op: relu, from: sum}
  conv2: {op: conv2d, out: 8, kernel: 1, from: relu}
  skip:  {op: add, from: [conv2, x]}            # x is the caller's: never written into
  both:  {op: add, from: [skip, stem]}
outputs: [both]
"""


def test_a_fused_add_never_overwrites_an_operand_read_later_or_an_input():
    graph = specgraph.check(RESIDUAL_READ_LATER)
    model = specgraph.build(graph).eval()
    packed = optimize(model, "inference")
    report = packed.meta["specgraph_passes"]
    assert report.prepacked == ["stem", "conv", "conv2+add"]
    calls = {n.target: n for n in packed.graph.nodes if n.op == "call_module"}
    assert WRITES_INTO not in calls["conv2"].meta  # fused, but into a new buffer
    x = torch.randn(2, 8, 16, 16)
    kept = x.clone()
    with torch.no_grad():
        _close(packed(x), optimize(model, "inference", prepack=False)(x))
    assert torch.equal(x, kept)


@pytest.mark.parametrize("activation", [None, "relu", "gelu", "hardswish", "residual"])
def test_packed_linear_matches_f_linear_and_falls_back_where_it_must(activation):
    from specgraph.torch.passes.epilogue import NONE, PostOp

    torch.manual_seed(0)
    linear = nn.Linear(24, 16)
    post = {None: NONE, "relu": PostOp("relu"), "gelu": PostOp("gelu", (), "none"),
            "hardswish": PostOp("hardswish"), "residual": NONE}[activation]
    functions = {None: lambda y: y, "relu": F.relu, "gelu": F.gelu, "hardswish": F.hardswish, "residual": None}
    packed = PackedLinear(linear, post, residual=activation == "residual")
    x, other = torch.randn(3, 5, 24), torch.randn(3, 5, 16)

    def want(x, other=other):
        y = F.linear(x, linear.weight, linear.bias)
        return y + other if activation == "residual" else functions[activation](y)

    args = (other,) if activation == "residual" else ()
    with torch.no_grad():
        _close(packed(x, *args), want(x))
        _close(packed(x[:1], *(a[:1] for a in args)), want(x[:1], other[:1]))  # another row count: packed again
        _close(packed(x.transpose(0, 1).contiguous().transpose(0, 1), *args), want(x))  # non-contiguous
        linear.weight.add_(0.1)  # a changed weight: the packed copy is remade
        _close(packed(x, *args), want(x))
    # autograd recording: the plain kernel, gradients flow
    xg = x.clone().requires_grad_()
    packed(xg, *args).sum().backward()
    w = x.clone().requires_grad_()
    want(w).sum().backward()
    _close(xg.grad, w.grad)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_packed_self_attention_matches_multihead_attention(batch_first, causal, residual):
    torch.manual_seed(0)
    attention = SpecMultiheadAttention(32, 4, batch_first=batch_first, causal=causal).eval()
    packed = PackedSelfAttention(attention, residual=residual)
    x = torch.randn(2, 7, 32) if batch_first else torch.randn(7, 2, 32)
    other = torch.randn_like(x)
    args = (other,) if residual else ()
    with torch.no_grad():
        want = attention(x) + other if residual else attention(x)
        _close(packed(x, *args), want)
    assert set(dict(packed.named_parameters())) == set(dict(attention.named_parameters()))
    with torch.enable_grad():  # recording autograd: the module's own forward
        _close(packed(x, *args), want)


def test_vit_attention_and_mlp_are_packed_with_their_adds():
    graph, model = load_case(next(p for p in SPECS if p.stem == "vit_b_16"), image_size=64, num_layers=2)
    packed = optimize(model, "inference")
    report = packed.meta["specgraph_passes"]
    assert len(report.packed_attention) == 2 and all(p.endswith("+add") for p in report.packed_attention)
    assert sum(p.endswith("+gelu") for p in report.packed_linear) == 2  # each MLP's first linear
    assert sum(p.endswith("+add") for p in report.packed_linear) == 2  # each MLP's second, into the residual
    x = example_inputs(graph, model, dims={"N": 2})
    with torch.no_grad():
        _close(packed(*x), optimize(model, "inference", prepack=False)(*x))


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_a_1x1_conv_on_a_1x1_map_runs_as_a_linear_equal_to_conv2d(residual, layout):
    """The squeeze-and-excitation gates: one pixel, a 1×1 kernel (prepack.py runs F.linear)."""
    from specgraph.torch.passes.epilogue import NONE, PostOp

    torch.manual_seed(0)
    conv = nn.Conv2d(40, 24, 1).to(memory_format=torch.channels_last)
    packed = PrepackedConv2d(conv, NONE if residual else PostOp("hardsigmoid"), residual=residual)
    for n in (1, 3):
        x = torch.randn(n, 40, 1, 1).to(memory_format=layout)
        other = torch.randn(n, 24, 1, 1)
        with torch.no_grad():
            y = F.conv2d(x, conv.weight, conv.bias)
            want = y + other if residual else F.hardsigmoid(y)
            got = packed(x, other) if residual else packed(x)
        assert got.shape == want.shape == (n, 24, 1, 1)
        _close(got, want)
        assert packed._packed[(x.shape, torch.get_num_threads())][1] is None  # not handed to oneDNN
