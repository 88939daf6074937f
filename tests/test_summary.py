"""The summary's counts against torch's own: trainable parameters (``requires_grad``) and the
non-trainable state (buffers), MACs (torch's FlopCounterMode, and nn.LSTM's formula where it
counts none), blocks grouped to a depth (each block's parameters: its torch submodule's), the
shapes at a batch size, and the same in the JSON output and on the command line."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

import specgraph
from specgraph.analysis.summary import summarize
from specgraph.cli.app import app

from conftest import SPECS

COUNTED = [("lenet5", {}), ("resnet18", {}), ("googlenet", {}), ("unet_padded", {"size": 64}), ("char_lstm", {}),
           ("vit_b_16", {"image_size": 64, "num_layers": 2}), ("swin_t", {}), ("bigru_classifier", {})]

NORMS = """
specgraph: 1
inputs: {x: [N, 8, 16, 16], v: [N, 12]}
graph:
  a: {op: instancenorm2d, track_running_stats: true, affine: true}
  b: {op: batchnorm2d, track_running_stats: false}
  c: {op: batchnorm1d, from: v}
  d: {op: buffer, shape: [3, 5]}
outputs: [b, c, d]
"""


@pytest.mark.parametrize("name,params", COUNTED, ids=[c[0] for c in COUNTED])
def test_trainable_and_non_trainable_are_torchs_counts(name, params):
    graph = specgraph.check(SPECS / f"{name}.yaml", **params)
    s = summarize(graph)
    model = specgraph.build(graph)
    assert s.total_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert s.total_buffers == sum(b.numel() for b in model.buffers())


def test_buffers_follow_track_running_stats():
    graph = specgraph.check(NORMS)
    s = summarize(graph)
    model = specgraph.build(graph)
    assert s.total_buffers == sum(b.numel() for b in model.buffers()) == (2 * 8 + 1) + 0 + (2 * 12 + 1) + 15
    assert "parameters: 56 trainable, 57 non-trainable (buffers)" in str(s)


@pytest.mark.parametrize("name,params", [("lenet5", {}), ("resnet18", {}), ("googlenet", {}), ("unet_padded", {"size": 64})])
def test_macs_are_torchs_flop_count(name, params):
    # convolutions, transposed convolutions and linear layers: FlopCounterMode counts 2 FLOPs a MAC
    graph = specgraph.check(SPECS / f"{name}.yaml", **params)
    s = summarize(graph, 3)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        specgraph.build(graph).eval()(torch.randn(graph.inputs["image"].concrete(N=1)))
    assert s.total_macs == counter.get_total_flops() // 2
    assert s.batch_macs == 3 * s.total_macs


def lstm_macs(steps: int, features: int, hidden: int, layers: int) -> int:
    """nn.LSTM's multiply-accumulates: per step and layer, the four gates' W_ih x and W_hh h."""
    return steps * sum(4 * hidden * ((features if layer == 0 else hidden) + hidden) for layer in range(layers))


def test_recurrent_macs_at_the_time_dim_given():
    graph = specgraph.check(SPECS / "char_lstm.yaml")
    unsized = summarize(graph)
    assert next(r for r in unsized.nodes if r.path == "lstm").macs is None and unsized.total_macs is None
    s = summarize(graph, 8, {"T": 64})
    lstm = next(r for r in s.nodes if r.path == "lstm")
    module = specgraph.build(graph).get_submodule("lstm")
    assert lstm.macs == lstm_macs(64, module.input_size, module.hidden_size, module.num_layers)
    assert s.batch_macs == 8 * s.total_macs
    # a GRU and a scan over a gate-level cell: every step's work, T times
    for name, dims in (("bigru_classifier", "T"), ("seq2seq", "S")):
        g = specgraph.check(SPECS / f"{name}.yaml")
        sizes = {d: 20 for d in g.input_symbols if d != "N"}
        short, long = summarize(g, 1, sizes), summarize(g, 1, {d: 40 for d in sizes})
        for a, b in zip(short.nodes, long.nodes):
            assert a.macs is not None, (name, a.path)
            if a.op in ("gru", "scan"):
                assert b.macs == 2 * a.macs > 0, (name, a.path)


def test_depth_groups_rows_into_blocks_with_their_totals():
    graph = specgraph.check(SPECS / "resnet18.yaml")
    model = specgraph.build(graph)
    one, two = summarize(graph, depth=1), summarize(graph, depth=2)
    assert [r.path for r in one.rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                          "avgpool", "flatten", "fc"]
    modules = dict(model.named_modules())
    for s in (one, two):
        for r in s.rows:  # a row without a module (relu, flatten: a function call) holds nothing
            module = modules.get(r.path, torch.nn.Module())
            assert r.params == sum(p.numel() for p in module.parameters()), r.path
            assert r.buffers == sum(b.numel() for b in module.buffers()), r.path
        assert s.total_params == one.total_params == sum(p.numel() for p in model.parameters())
    layer1 = [r.path for r in two.rows if r.path.startswith("layer1")]
    assert layer1 == ["layer1", "layer1.0", "layer1.1"]
    assert next(r for r in two.rows if r.path == "layer1").macs == sum(
        r.macs for r in two.nodes if r.path.startswith("layer1."))
    assert "  layer1.0  block" in str(two)


def test_shapes_at_the_batch_size_given():
    graph = specgraph.check(SPECS / "resnet18.yaml")
    assert summarize(graph).nodes[-1].output == "[N, 1000]"
    s = summarize(graph, 8)
    assert s.nodes[-1].output == "[8, 1000]" and s.inputs["image"] == "[8, 3, 224, 224]"


def test_cli_json_carries_the_counts_depth_and_training():
    result = CliRunner().invoke(app, ["summary", str(SPECS / "lenet5.yaml"), "-b", "4", "--depth", "1", "--train",
                                      "--optimizer", "sgd", "--fit", "64MiB", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["trainable_params"] == data["total_params"] == 61_706 and data["non_trainable_params"] == 0
    assert data["batch_macs"] == {"batch_size": 4, "macs": 4 * data["total_macs"]}
    assert data["depth"] == 1 and [r["path"] for r in data["rows"]][:2] == ["c1", "c3"]
    assert data["rows"][0]["block"] and data["rows"][0]["params"] == 156
    assert data["nodes"][0]["output"] == "[4, 6, 28, 28]"
    training = data["training"]
    assert training["optimizer"] == "sgd" and training["optimizer_state_bytes"] == 4 * 61_706
    assert training["peak_bytes"] >= training["param_bytes"] + training["grad_bytes"]
    assert data["fit"]["budget_bytes"] == 64 << 20 and data["fit"]["largest_batch"] > 4


def test_cli_text_shows_the_training_step_and_the_fit():
    result = CliRunner().invoke(app, ["summary", str(SPECS / "char_lstm.yaml"), "-b", "8", "--dim", "T=64", "--train",
                                      "--fit", "1GiB"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "parameters: 886,880 trainable, 0 non-trainable (buffers)" in text
    assert "MACs at N=8:" in text and "?" not in text.split("total")[-1].split("\n")[0]
    assert "training step at T=64, N=8 (adam, precision 32, CPU)" in text
    assert "activations saved for backward" in text and "predicted peak" in text
    assert "largest batch whose training step fits in 1.0 GiB (adam, precision 32):" in text


@pytest.mark.parametrize("args,message", [
    (["--fit", "12XB"], "expected a size such as 24GiB"),
    (["--optimizer", "sgd"], "give --train or --fit too"),
    (["--precision", "bf16-mixed"], "give --train or --fit too"),
    (["--train", "--optimizer", "lion"], "expected adam, adamw or sgd"),
    (["--train", "--precision", "64"], "expected 32, bf16-mixed or 16-mixed"),
    (["--depth", "0"], "--depth"),
    (["--train"], "symbolic dims without a size: T (in tokens); give --dim T=INT"),
    (["--fit", "1GiB"], "symbolic dims without a size: T (in tokens); give --dim T=INT"),
])
def test_cli_training_options_are_checked(args, message):
    spec = "char_lstm" if "T=INT" in message else "lenet5"
    result = CliRunner().invoke(app, ["summary", str(SPECS / f"{spec}.yaml"), *args])
    assert result.exit_code == 2
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split()), result.output
