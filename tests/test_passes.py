"""Graph passes: optimize(model, "inference") — batch norm folded, dropout dropped, channels_last —
computes what the plain build computes in eval mode, for every spec of the folder."""

from __future__ import annotations

import pytest
import torch
from torch import fx
from torch import nn
from typer.testing import CliRunner

import specgraph
from specgraph.torch.export.formats import eval_module, example_inputs
from specgraph import optimize
from specgraph.torch.passes.optimize import PassReport, fold_batchnorm
from export_cases import IDS, SEQ_DIMS, SPECS, as_tuple, assert_outputs_close, load_case, randomize_norm_stats


def kinds(model: nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules()}


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_optimized_model_matches_plain_build(path):
    graph, model = load_case(path)  # batch norms with random statistics, eval mode
    optimized = optimize(model, "inference", graph=graph)
    report: PassReport = optimized.meta["specgraph_passes"]
    assert not optimized.training
    # what the passes promise: no dropout left, every batch norm after a conv/linear gone
    assert not kinds(optimized) & {"Dropout", "Dropout2d", "AlphaDropout", "VariationalDropout"}
    remaining = [name for name, m in optimized.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(report.folded) + len(remaining) == sum(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in eval_module(model).modules())
    assert report.channels_last == any(isinstance(m, nn.Conv2d) for m in model.modules())

    inputs = example_inputs(graph, model, dims={**SEQ_DIMS, "N": 1})
    with torch.no_grad():
        want = model(*inputs)
        got = optimized(*inputs)
    assert_outputs_close(got, want)
    for g, w in zip(as_tuple(got), as_tuple(want)):
        assert g.is_contiguous() or not w.is_contiguous()  # channels_last stays inside


def test_resnet50_is_folded_and_channels_last():
    graph, model = load_case(next(p for p in SPECS if p.stem == "resnet50"))
    optimized = optimize(model, "inference", graph=graph)
    report = optimized.meta["specgraph_passes"]
    assert len(report.folded) == 53 and ("layer1.0.conv1", "layer1.0.bn1") in report.folded
    assert "BatchNorm2d" not in kinds(optimized)
    assert optimized.get_submodule("layer1.0.conv1").weight.is_contiguous(memory_format=torch.channels_last)
    assert "bn1" in dict(model.named_children())  # the input model is left as it was
    assert "layer1_0_bn1" not in optimized.code


def test_dropout_is_dropped_from_vgg16_and_training_outputs_from_googlenet():
    vgg = optimize("specs/vgg16.yaml", num_classes=10)
    assert vgg.meta["specgraph_passes"].dropped == ["classifier.2", "classifier.5"]  # torchvision's names
    googlenet = optimize("specs/googlenet.yaml", aux_logits=True)
    assert isinstance(googlenet, torch.fx.GraphModule)
    assert not any(name.startswith("aux") for name, _ in googlenet.named_children())
    assert googlenet(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


CONV_TWO_USERS = """
specgraph: 1
inputs: {x: [N, 3, 16, 16]}
graph:
  conv: {op: conv2d, out: 8, kernel: 3, padding: 1}
  bn:   {op: batchnorm2d}
  skip: {op: add, from: [bn, conv]}
"""


def test_batchnorm_is_not_folded_when_the_conv_output_is_used_elsewhere():
    graph = specgraph.check(CONV_TWO_USERS)
    model = specgraph.build(graph)
    randomize_norm_stats(model)
    model.eval()
    optimized = optimize(model, graph=graph)
    assert optimized.meta["specgraph_passes"].folded == []
    x = torch.randn(2, 3, 16, 16)
    assert_outputs_close(optimized(x), model(x))


def test_batchnorm_without_running_stats_is_not_folded():
    spec = CONV_TWO_USERS.replace("bn:   {op: batchnorm2d}", "bn:   {op: batchnorm2d, track_running_stats: false}")
    spec = spec.replace("from: [bn, conv]", "from: [bn, bn]")
    model = specgraph.build(spec).eval()
    optimized = optimize(model)
    assert optimized.meta["specgraph_passes"].folded == []
    x = torch.randn(2, 3, 16, 16)
    assert_outputs_close(optimized(x), model(x))


LINEAR_BN = """
specgraph: 1
inputs: {x: SHAPE}
graph:
  fc: {op: linear, out: 6}
  bn: {op: batchnorm1d}
"""


def test_linear_batchnorm1d_is_folded_only_on_2d_features():
    graph = specgraph.check(LINEAR_BN.replace("SHAPE", "[N, 5]"))
    model = specgraph.build(graph)
    randomize_norm_stats(model)
    model.eval()
    x = torch.randn(4, 5)
    assert optimize(model, graph=graph).meta["specgraph_passes"].folded == [("fc", "bn")]
    assert_outputs_close(optimize(model, graph=graph)(x), model(x))
    # the built module carries its spec nodes: no Graph needed
    assert optimize(model).meta["specgraph_passes"].folded == [("fc", "bn")]
    # a GraphModule made by other means has no ranks to show: not folded (still correct)
    traced = fx.symbolic_trace(torch.nn.Sequential(model.fc, model.bn).eval())
    assert optimize(traced).meta["specgraph_passes"].folded == []
    # [N, 6, 6]: batchnorm1d normalises dim 1, the linear's features are dim 2 — never folded
    graph3 = specgraph.check(LINEAR_BN.replace("SHAPE", "[N, 6, 5]"))
    model3 = specgraph.build(graph3)
    randomize_norm_stats(model3)
    model3.eval()
    optimized = optimize(model3, graph=graph3)
    assert optimized.meta["specgraph_passes"].folded == []
    x3 = torch.randn(4, 6, 5)
    assert_outputs_close(optimized(x3), model3(x3))


def test_fold_batchnorm_alone_and_unknown_mode():
    graph, model = load_case(next(p for p in SPECS if p.stem == "resnet18"), check_inputs=False)  # run at 64×64
    gm = eval_module(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = gm(x)
    import copy

    folded = copy.deepcopy(gm)
    assert len(fold_batchnorm(folded)) == 20
    with torch.no_grad():
        assert_outputs_close(folded(x), want)
    with pytest.raises(ValueError, match="unknown optimisation mode"):
        optimize(model, "training")


def test_cli_build_optimize_saves_the_folded_weights(tmp_path):
    from specgraph.cli.app import app

    out = tmp_path / "r18.pt"
    result = CliRunner().invoke(app, ["build", "specs/resnet18.yaml", "--optimize", "inference", "--save", str(out),
                                      "--set", "num_classes=10"])
    assert result.exit_code == 0, result.output
    state = torch.load(out)
    assert "conv1.bias" in state and not any(".bn" in k or k.startswith("bn") for k in state)
    optimized = optimize("specs/resnet18.yaml", num_classes=10)
    optimized.load_state_dict(state, strict=True)
    result = CliRunner().invoke(app, ["build", "specs/resnet18.yaml", "--optimize", "speed"])
    assert result.exit_code == 2


# --- prepacked oneDNN convolutions --------------------------------------------------------------

ROOT_SPECS = __import__("pathlib").Path(__file__).resolve().parent.parent / "specs"


def _resnet18_pair():
    model = specgraph.build(str(ROOT_SPECS / "resnet18.yaml"), check_inputs=False).eval()  # run at 64×64
    randomize_norm_stats(model)
    packed = optimize(model, "inference")
    plain = optimize(model, "inference", prepack=False)
    return model, packed, plain


def test_convs_are_prepacked_with_relu_fused_and_keys_kept():
    from specgraph.torch.passes.prepack import PrepackedConv2d

    _, packed, plain = _resnet18_pair()
    report = packed.meta["specgraph_passes"]
    convs = [n for n, m in plain.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(p.split("+")[0] for p in report.prepacked) == sorted(convs)  # all 20 of them
    # relu after conv1 and after each block's first conv; each block's last conv takes its add and
    # the relu after it; the downsample convs feed an add as its other operand
    assert sum(p.endswith("+relu") for p in report.prepacked) == 1 + 8 + 8
    assert sum(p.endswith("+add+relu") for p in report.prepacked) == 8
    assert not any(isinstance(m, nn.Conv2d) for m in packed.modules())
    assert sum(isinstance(m, PrepackedConv2d) for m in packed.modules()) == len(convs)
    assert list(packed.state_dict()) == list(plain.state_dict())
    assert not plain.meta["specgraph_passes"].prepacked


def test_prepacked_model_follows_batch_size_weights_and_autograd():
    model, packed, plain = _resnet18_pair()
    with torch.no_grad():
        for n in (1, 3, 1):  # one packed weight per input size, reused when the size comes back
            x = torch.randn(n, 3, 64, 64)
            torch.testing.assert_close(packed(x), plain(x), atol=1e-4, rtol=1e-4)
        # new weights: the packed copies are stale and must be remade
        state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in plain.state_dict().items()}
        packed.load_state_dict(state)
        plain.load_state_dict(state)
        x = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(packed(x), plain(x), atol=1e-4, rtol=1e-4)
    # with autograd recording, the plain kernels run and gradients flow
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    packed(x).sum().backward()
    want = x.grad.clone()
    x.grad = None
    plain(x).sum().backward()
    torch.testing.assert_close(x.grad, want, atol=1e-4, rtol=1e-4)
    # a deep copy packs its own weights
    import copy

    clone = copy.deepcopy(packed)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), plain(x), atol=1e-4, rtol=1e-4)


def test_small_maps_at_batch_1_run_on_the_packed_kernel():
    # resnet18 at 64×64: layer4's maps are 2×2 (512×2×2 values, under aten's size rule for its
    # native kernel, which would run them on one thread at batch 1); every conv with more than one
    # output pixel is packed, and the outputs stay the plain kernels'
    from specgraph.torch.passes.prepack import PrepackedConv2d

    _, packed, plain = _resnet18_pair()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(packed(x), plain(x), atol=1e-4, rtol=1e-4)
    entries = [e for m in packed.modules() if isinstance(m, PrepackedConv2d) for e in m._packed.values()]
    assert len(entries) == 20 and any(e[2][2:] == (2, 2) for e in entries)
    assert all(e[1] is not None for e in entries)


def test_export_of_an_optimized_model_holds_plain_convs(tmp_path):
    written = specgraph.export(ROOT_SPECS / "lenet5.yaml", python=tmp_path / "m.py", optimize="inference")
    source = written["python"].read_text()
    assert "mkldnn" not in source and "Prepacked" not in source and "Conv2d(" in source


def test_activations_after_a_fresh_tensor_run_in_place():
    # MobileNetV3's hardswish after its folded convs and the SE gate's hardsigmoid overwrite their
    # input, as torchvision's inplace=True modules do; the outputs stay the plain build's
    import torch.nn.functional as F

    graph, model = load_case(next(p for p in SPECS if p.stem == "mobilenet_v3_large"))
    # prepacked, most of them are fused into the convs before them instead
    fused = optimize(model, "inference").meta["specgraph_passes"].prepacked
    assert sum(p.endswith("+hardswish") for p in fused) >= 10 and any(p.endswith("+hardsigmoid") for p in fused)
    optimized = optimize(model, "inference", graph=graph, prepack=False)
    in_place = {n.target for n in optimized.graph.nodes if n.op == "call_function" and n.kwargs.get("inplace")}
    assert {F.hardswish, F.hardsigmoid} <= in_place
    assert not any(n.target is F.hardswish and not n.kwargs.get("inplace") and n.args[0].op == "call_module"
                   and len(n.args[0].users) == 1 for n in optimized.graph.nodes)  # every one that may, does
    x = example_inputs(graph, model, dims={"N": 2})
    with torch.no_grad():
        assert_outputs_close(optimized(*x), model(*x))


@pytest.mark.parametrize("prepack", [False, True], ids=["plain", "prepacked"])
def test_a_channels_last_model_pickles_and_copies(prepack):
    # Unpickling a GraphModule traces its code again: the layout helpers, which look at the
    # tensor's rank, are recorded as calls by the tracer the pass names (gm._tracer_cls).
    import copy
    import pickle

    graph, model = load_case(next(p for p in SPECS if p.stem == "resnet18"), num_classes=5)
    optimized = optimize(model, "inference", graph=graph, prepack=prepack)
    assert optimized.meta["specgraph_passes"].channels_last
    inputs = example_inputs(graph, model, dims={"N": 1})
    with torch.no_grad():
        want = optimized(*inputs)
        for other in (pickle.loads(pickle.dumps(optimized)), copy.deepcopy(optimized)):
            torch.testing.assert_close(other(*inputs), want, rtol=0, atol=0)
            assert other.get_submodule("conv1").weight.is_contiguous(memory_format=torch.channels_last)
