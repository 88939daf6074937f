"""A fused lstm scan under torch.compile in training still runs torch's oneDNN lstm kernel
(ops/lstm_kernel_op.py), not the loop of small ops per step the compiler would otherwise make
of it, with outputs and gradients equal to eager's within 1e-5."""

from __future__ import annotations

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

from specgraph.ops.torch_modules import FusedScan
from test_cell_fusion import TOL, build, random_inputs, randomize, scan_spec

aten = torch.ops.aten
PER_STEP = {aten.sigmoid.default, aten.tanh.default, aten.mm.default, aten.addmm.default}  # what an unrolled step does


def recording_backend(graphs: dict[str, list[torch.fx.GraphModule]]):
    """AOTAutograd (what inductor differentiates with) that keeps the forward and backward graphs
    it hands to its compilers and runs them as they are."""
    def keep(kind):
        def compiler(gm, example_inputs):
            graphs.setdefault(kind, []).append(gm)
            return make_boxed_func(gm.forward)
        return compiler
    return aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward"))


def calls(gm: torch.fx.GraphModule) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def loss_and_grads(model, inputs, run=None):
    """(outputs, gradients of every parameter of ``model`` and every input) of a random weighted
    sum of the outputs of ``run`` (default: the model itself; else its compiled form)."""
    for p in model.parameters():
        p.grad = None
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    outs = (model if run is None else run)(*inputs)
    gen = torch.Generator().manual_seed(7)
    sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    grads.update({f"input {i}": t.grad.clone() for i, t in enumerate(inputs)})
    return [o.detach() for o in outs], grads


def assert_same(got, want):
    (got_outs, got_grads), (want_outs, want_grads) = got, want
    for a, b in zip(got_outs, want_outs, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], **TOL, msg=name)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_a_compiled_fused_lstm_scan_trains_through_the_kernel(reverse, bias):
    blocks = ""
    if not bias:  # the cell without biases: zeros stand in for torch's, as in eager
        from test_cell_fusion import CELLS
        blocks = "blocks:\n" + (CELLS / "lstm_cell.yaml").read_text().split("blocks:\n", 1)[1].split("\ngraph:")[0] \
            .replace("from: x}", "bias: false, from: x}").replace("from: h}", "bias: false, from: h}")
    graph, model = build(scan_spec("lstm_cell", init=True, reverse=reverse, blocks=blocks))
    assert isinstance(model.rnn, FusedScan) and len(model.rnn.weights) == (4 if bias else 2)
    randomize(model)
    model.train()
    inputs = random_inputs(graph)
    want = loss_and_grads(model, inputs)
    graphs: dict[str, list[torch.fx.GraphModule]] = {}
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=recording_backend(graphs))
    assert_same(loss_and_grads(model, inputs, compiled), want)
    (forward,), (backward,) = graphs["forward"], graphs["backward"]
    assert calls(forward).count(torch.ops.specgraph.mkldnn_lstm_layer.default) == 1
    assert calls(backward).count(aten.mkldnn_rnn_layer_backward.default) == 1
    for gm in (forward, backward):
        assert not PER_STEP & set(calls(gm)), gm.code  # no step of the recurrence outside the kernel
    torch.testing.assert_close(compiled(*inputs)[0], model(*inputs)[0], **TOL)  # the graph is reused


def test_inductor_runs_the_kernel_with_eager_gradients():
    """The benchmark's compiler: inductor keeps the op whole and its gradients are eager's."""
    graph, model = build(scan_spec("lstm_cell", init=True))
    randomize(model)
    inputs = random_inputs(graph)
    want = loss_and_grads(model, inputs)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*inputs)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    assert_same(loss_and_grads(model, inputs, torch.compile(model, fullgraph=True)), want)


def test_without_grad_and_off_cpu_float32_it_keeps_the_old_paths():
    """Only a CPU float32 lstm in training takes the custom op: float64 runs the loop (oneDNN's
    layer is float32), a gru the loop, no-grad torch's kernel in the graph."""
    for cell, states, dtype in [("lstm_cell", ("h", "c"), torch.float64), ("gru_cell", ("h",), torch.float32)]:
        graph, model = build(scan_spec(cell, states=states, init=True, dtype=str(dtype).split(".")[1]))
        x = random_inputs(graph, dtype=dtype)[0]
        assert model.rnn._compiled_lstm_layer(x, model.rnn.flat_weights()) is None
    graph, model = build(scan_spec("lstm_cell", init=True))
    x = random_inputs(graph)[0]
    assert model.rnn._compiled_lstm_layer(x, model.rnn.flat_weights()) is torch.ops.specgraph.mkldnn_lstm_layer


@pytest.mark.parametrize("sizes", [(9, 4, 6, 8), (1, 1, 1, 1), (17, 3, 5, 12)])
def test_the_workspace_size_the_compiler_is_told_is_onednns(sizes):
    from specgraph.ops.lstm_kernel_op import mkldnn_lstm_layer, workspace_bytes
    steps, batch, features, hidden = sizes
    x, h = torch.randn(steps, batch, features), torch.randn(1, batch, hidden)
    weights = [torch.randn(4 * hidden, features), torch.randn(4 * hidden, hidden), *torch.randn(2, 4 * hidden)]
    for reverse in (False, True):
        assert mkldnn_lstm_layer(x, h, h, *weights, reverse)[3].numel() == workspace_bytes(*sizes)
