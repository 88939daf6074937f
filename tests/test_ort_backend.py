"""optimize(model, "inference", backend="onnxruntime"): the model exported to ONNX in memory and
run by an onnxruntime session behind a module called like the built one — equal to the built
module (and to torchvision) with random weights and random batch-norm statistics, the spec's
input and output order, dynamic batch and spatial sizes; what it cannot do refused with a code."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest
import torch
import torchvision

import specgraph
from specgraph import BackendError
from specgraph.torch.export.inputs import ExportError
from specgraph.ops import Op, OpParams, register_op
from specgraph.ops import registry

# Two inputs with shared symbolic dims, two outputs; batch norm, a residual add, pooling.
MULTI = """
specgraph: 1
inputs:
  image: [N, 3, H, W]
  extra: [N, 5]
graph:
  conv: {op: conv2d, out: 8, kernel: 3, padding: 1, bias: false}
  bn: {op: batchnorm2d}
  act: {op: relu}
  conv2: {op: conv2d, out: 8, kernel: 3, padding: 1}
  res: {op: add, from: [conv2, act]}
  pool: {op: adaptive_avgpool2d, size: 1}
  flat: {op: flatten}
  side: {op: linear, out: 8, from: extra}
  both: {op: add, from: [flat, side]}
  head: {op: linear, out: 4}
outputs:
  logits: head
  features: res
"""


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights (each tensor scaled by its fan-in, so that a deep net's outputs stay near 1)
    and random batch-norm affine parameters and running statistics (default inits hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")) or t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * (t[0].numel() ** -0.5))
    return model


def assert_equal_to_float_rounding(got: torch.Tensor, want: torch.Tensor) -> None:
    """Within 1e-5 of the reference, relative to its largest value (the sums of two runtimes'
    kernels are taken in different orders)."""
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * max(1.0, want.abs().max().item()))


@pytest.fixture(scope="module")
def multi():
    graph = specgraph.check(MULTI)
    model = randomize(specgraph.build(graph)).eval()
    return graph, model, specgraph.optimize(model, "inference", backend="onnxruntime", graph=graph)


def test_resnet18_equals_the_built_module_and_torchvision():
    ref = randomize(torchvision.models.resnet18(weights=None), seed=1).eval()
    graph = specgraph.check("specs/resnet18.yaml")
    built = specgraph.build(graph).eval()
    built.load_state_dict(ref.state_dict(), strict=True)
    fast = specgraph.optimize(built, backend="onnxruntime", graph=graph)
    assert built.training is False and type(built).__name__ != "OnnxRuntimeModule"  # left as it was
    for batch in (1, 3):  # the batch dim stays dynamic
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            got, want = fast(x), built(x)
            assert_equal_to_float_rounding(got, want)
            assert_equal_to_float_rounding(got, ref(x))
        assert isinstance(got, torch.Tensor) and got.shape == (batch, 1000)


def test_several_inputs_and_outputs_in_the_specs_order_at_several_sizes(multi):
    graph, model, fast = multi
    assert fast.input_names == ["image", "extra"] and fast.output_names == ["logits", "features"]
    assert [i.shape for i in fast.session.get_inputs()] == [["N", 3, "H", "W"], ["N", 5]]
    for n, h, w in ((2, 16, 16), (5, 9, 23)):  # batch and spatial sizes other than the export's
        image, extra = torch.randn(n, 3, h, w), torch.randn(n, 5)
        with torch.no_grad():
            got, want = fast(image, extra), model(image, extra)
        assert isinstance(got, tuple) and len(got) == 2
        for g, e in zip(got, want):
            assert_equal_to_float_rounding(g, e)
        assert got[1].shape == (n, 8, h, w)


def test_a_spec_or_a_graph_is_built_and_exported_without_a_graph_argument():
    fast = specgraph.optimize(MULTI, backend="onnxruntime")
    got = fast(torch.randn(1, 3, 8, 8), torch.randn(1, 5))
    assert [t.shape for t in got] == [(1, 4), (1, 8, 8, 8)]


def test_copies_and_pickles_reopen_the_session(multi):
    graph, model, fast = multi
    x = (torch.randn(2, 3, 12, 12), torch.randn(2, 5))
    want = fast(*x)
    for other in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
        for g, e in zip(other(*x), want):
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_the_inputs_are_checked_against_the_spec(multi):
    _, _, fast = multi
    with pytest.raises(specgraph.InputError) as info:
        fast(torch.randn(2, 3, 8, 8), torch.randn(3, 5))  # N is 2 and 3
    assert info.value.codes == ["E411"]


def test_training_mode_and_gradients_are_refused(multi):
    _, _, fast = multi
    image, extra = torch.randn(1, 3, 8, 8, requires_grad=True), torch.randn(1, 5)
    with pytest.raises(BackendError) as info:
        fast(image, extra)
    assert info.value.codes == ["E802"] and "requires grad" in str(info.value) and "torch.no_grad()" in str(info.value)
    assert info.value.diagnostics[0].location is not None  # at the input's declaration
    with torch.no_grad():
        fast(image, extra)  # no gradients asked for: served
    trained = copy.deepcopy(fast).train()
    with pytest.raises(BackendError) as info:
        trained(image.detach(), extra)
    assert info.value.codes == ["E802"] and "training mode" in str(info.value)


def test_another_device_is_refused(multi):
    graph, model, fast = multi
    with pytest.raises(BackendError) as info:
        fast(torch.randn(1, 3, 8, 8, device="meta"), torch.randn(1, 5))
    assert info.value.codes == ["E802"] and "is on meta" in str(info.value)
    with pytest.raises(BackendError) as info:
        specgraph.optimize(copy.deepcopy(model).to("meta"), backend="onnxruntime", graph=graph)
    assert info.value.codes == ["E802"] and "weights are on meta" in str(info.value)


def test_missing_onnxruntime_and_a_missing_graph_are_refused(multi, monkeypatch):
    graph, model, _ = multi
    with pytest.raises(BackendError) as info:
        specgraph.optimize(model, backend="onnxruntime")
    assert info.value.codes == ["E801"] and "graph=" in str(info.value)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(BackendError) as info:
        specgraph.optimize(model, backend="onnxruntime", graph=graph)
    assert info.value.codes == ["E801"] and "not installed" in str(info.value)


def test_an_op_the_onnx_export_refuses_is_refused(tmp_path):
    @register_op
    class BesselI0e(Op):
        """torch.special.i0e, which torch's ONNX exporter has no function for; [*] -> [*]."""

        name = "test_bessel_i0e"
        category = "activation"

        class Params(OpParams):
            pass

        def infer(self, p, inputs):
            return [inputs[0]]

        def emit(self, p, graph, args):
            return graph.call_function(torch.special.i0e, (args[0],))

    try:
        graph = specgraph.check("specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  y: {op: test_bessel_i0e}\n")
        with pytest.raises(BackendError) as info:
            specgraph.optimize(graph, backend="onnxruntime")
        message = info.value.diagnostics[0].message
        assert info.value.codes == ["E803"] and "No ONNX function found" in message and "bessel_i0e" in message
        # `export --onnx` says the same line, not the first line of torch's report ("Failed to
        # convert the exported program to an ONNX model. This is step 3/3 ...")
        with pytest.raises(ExportError) as failed:
            specgraph.export(graph, onnx=tmp_path / "model.onnx")
        assert str(failed.value).startswith(f"onnx export of {graph.name} failed: ")
        assert "No ONNX function found" in str(failed.value) and "bessel_i0e" in str(failed.value)
        assert "\n" not in str(failed.value)
    finally:
        registry.REGISTRY.unregister("test_bessel_i0e")


def test_the_default_backend_is_torchs_and_an_unknown_one_is_refused(multi):
    _, model, _ = multi
    assert isinstance(specgraph.optimize(model), torch.fx.GraphModule)
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        specgraph.optimize(model, backend="tvm")


def test_a_dim_the_export_fixed_is_refused_at_another_size():
    """The time dim of a recurrent op is unrolled into the trace (export/inputs.py fixed_dims),
    so the session takes the example's 32 steps only."""
    graph = specgraph.check("specgraph: 1\ninputs: {x: [N, T, 3]}\ngraph:\n  r: {op: rnn, hidden: 4}\n"
                            "outputs: {y: r.out}\n")
    model = randomize(specgraph.build(graph)).eval()
    fast = specgraph.optimize(model, backend="onnxruntime", graph=graph)
    x = torch.randn(3, 32, 3)
    with torch.no_grad():
        assert_equal_to_float_rounding(fast(x), model(x))
    with pytest.raises(BackendError) as info:
        fast(torch.randn(3, 10, 3))
    d = info.value.diagnostics[0]
    assert d.code == "E802" and "dim 1 (T) is 10; the ONNX export fixed it at 32" in d.message
    assert d.location is not None and d.location.line == 2


def test_the_cli_builds_the_onnxruntime_module():
    from typer.testing import CliRunner

    from specgraph.cli.app import app

    r = CliRunner().invoke(app, ["build", "specs/lenet5.yaml", "--backend", "onnxruntime"])
    assert r.exit_code == 0, r.output
    assert "lenet5: built OnnxRuntimeModule over an onnxruntime session (CPUExecutionProvider" in r.output
