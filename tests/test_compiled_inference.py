"""optimize(model, "inference", compile=True): the passes' graph compiled by torch.compile with
inductor's freezing computes what the plain build computes (random weights and random batch-norm
statistics), keeps the state_dict keys, compiles again for a new input shape, and refuses, with
a code, what frozen weights cannot serve: a call after the weights changed, training mode,
gradients; inputs that do not fit the spec are the spec's E411.

One model is compiled for the whole module (a compile costs seconds): a small conv net with
every kind of node the passes and inductor's freezing rewrite (batch norm after a conv, a
residual add, relu, max pool, dropout, a linear)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from typer.testing import CliRunner

import specgraph
from specgraph import BackendError, InputError
from specgraph.cli import app
from specgraph.torch.passes.compiled import CompiledInference
from export_cases import randomize_norm_stats

NET = """
specgraph: 1
name: small_resnet
inputs:
  image: [N, 3, 32, 32]
graph:
  stem: {op: conv2d, out: 16, kernel: 3, padding: 1, bias: false}
  bn: {op: batchnorm2d}
  act: {op: relu}
  pool: {op: maxpool2d, kernel: 2}
  conv1: {op: conv2d, out: 16, kernel: 3, padding: 1, bias: false}
  bn1: {op: batchnorm2d}
  res: {op: add, from: [bn1, pool]}
  act1: {op: relu}
  gap: {op: adaptive_avgpool2d, size: 1}
  flat: {op: flatten}
  drop: {op: dropout, p: 0.5}
  head: {op: linear, out: 10}
outputs:
  logits: head
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.yaml"
    path.write_text(NET)
    graph = specgraph.check(str(path))
    torch.manual_seed(0)
    model = specgraph.build(graph)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * p[0].numel() ** -0.5)
    randomize_norm_stats(model)
    model.eval()
    compiled = specgraph.optimize(model, "inference", compile=True)
    return path, graph, model, compiled


def test_compiled_model_matches_the_plain_build(net):
    _, _, model, compiled = net
    assert isinstance(compiled, CompiledInference) and not compiled.training
    report = compiled.meta["specgraph_passes"]
    assert report.compiled and len(report.folded) == 2 and report.dropped == ["drop"]
    assert not report.prepacked and not report.packed_linear  # inductor packs them itself
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    got = compiled(x)  # called with autograd on: the compiled graph runs under no_grad
    assert not got.requires_grad
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # a new batch size compiles again (shapes are static) and is as right
    x1 = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x1), model(x1), rtol=1e-5, atol=1e-5)


def test_state_dict_keys_are_the_optimised_graph_modules(net):
    _, _, model, compiled = net
    plain = specgraph.optimize(model, "inference", prepack=False)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    for (name, a), (_, b) in zip(compiled.state_dict().items(), plain.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_inputs_are_checked_against_the_spec(net):
    path, _, _, compiled = net
    with pytest.raises(InputError) as err:
        compiled(torch.randn(2, 4, 32, 32))
    assert err.value.diagnostics[0].code == "E411" and str(path) in str(err.value)


def test_changed_weights_are_refused_not_ignored(net):
    _, _, model, compiled = net
    x = torch.randn(2, 3, 32, 32)
    copied = pickle.loads(pickle.dumps(compiled))  # a copy compiles again, lazily, with its own weights
    deep = copy.deepcopy(compiled)
    assert list(deep.state_dict()) == list(compiled.state_dict())
    assert deep.head.weight.data_ptr() != compiled.head.weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(copied(x), model(x), rtol=1e-5, atol=1e-5)
        copied.head.weight.mul_(2.0)
    with pytest.raises(BackendError) as err:
        copied(x)
    assert err.value.diagnostics[0].code == "E802" and "weights changed" in str(err.value)
    with torch.no_grad():  # the original is untouched
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(deep(x), model(x), rtol=1e-5, atol=1e-5)
    deep.head.weight = torch.nn.Parameter(deep.head.weight.detach().clone())  # a replaced tensor, same values
    with pytest.raises(BackendError, match="weights changed"):
        deep(x)


def test_training_mode_and_gradients_are_refused(net):
    _, _, _, compiled = net
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    with pytest.raises(BackendError, match="computes no gradients"):
        compiled(x)
    compiled.train()
    try:
        with pytest.raises(BackendError, match="training mode"):
            compiled(x.detach())
    finally:
        compiled.eval()


def test_compile_is_torch_backend_only():
    with pytest.raises(ValueError, match="torch backend"):
        specgraph.optimize("specs/lenet5.yaml", "inference", backend="onnxruntime", compile=True)
    with pytest.raises(ValueError, match="prepack=True"):
        specgraph.optimize("specs/lenet5.yaml", "inference", compile=True, prepack=True)


def test_a_missing_cxx_compiler_is_refused_with_e801():
    from torch._inductor import config

    with config.patch({"cpp.cxx": ("no-such-compiler-xyz",)}), pytest.raises(BackendError) as err:
        specgraph.optimize("specs/lenet5.yaml", "inference", compile=True)
    assert err.value.diagnostics[0].code == "E801" and "C++ compiler" in str(err.value)


def test_cli_build_compile(net):
    path = net[0]
    result = CliRunner().invoke(app, ["build", str(path), "--optimize", "inference", "--compile"])
    assert result.exit_code == 0, result.output
    assert "CompiledInference" in result.output and "compiles" in result.output
    result = CliRunner().invoke(app, ["build", str(path), "--compile"])
    assert result.exit_code == 2 and "--optimize" in result.output
