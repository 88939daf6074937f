"""The summary's memory columns against what torch really does on CPU.

How the peak is measured: tests/peak_measure.py (the CPU allocator's running total, read from
the profiler's trace), during one eval-mode forward under ``no_grad``, the input tensors
(allocated before the call) added and the parameters (likewise) left out of both sides.

The prediction (specgraph/analysis/memory/) never runs torch: it walks the graph's inferred types.
The kernels' own models, op by op, are held to a tighter tolerance in test_memory_kernels.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import fx
from torch.utils._pytree import tree_flatten
from typer.testing import CliRunner

import specgraph
from specgraph.torch.build import TrainEvalModule
from specgraph.cli.app import app
from specgraph.analysis.memory.walk import SizeError, memory_report

from conftest import SPECS
from peak_measure import measured_peak, random_inputs as _inputs

CASES = [("lenet5", {}), ("resnet18", {}), ("googlenet", {}), ("unet_padded", {"size": 64})]
# Recurrent specs, with the sizes of their time dims: torch's lstm (oneDNN), gru (ATen's loop,
# bidirectional), and `scan` (specgraph's loop over a gate-level cell).
RECURRENT = [("lstm_forecaster", {}, {"T": 48}), ("bigru_classifier", {}, {"T": 40}), ("char_lstm", {}, {"T": 64}),
             ("seq2seq", {}, {"S": 20, "T": 24}), ("seq2seq_luong", {}, {"S": 20, "T": 24})]
# Attention and transposed convolutions: ViT (the fused attention fast path), the transformer
# encoder (post-norm; causal pre-norm), a causal char-level transformer (ids in, an
# embedding), U-Net with valid convolutions and FCN-32s (a 64x64 up-convolution, and fc6's
# 7x7 convolution on a 2x2 map, which oneDNN runs by im2col).
ATTENTION_AND_UPSAMPLING = [
    ("vit_b_16", {"image_size": 64, "num_layers": 2}, {}), ("transformer_encoder", {}, {"T": 64}),
    ("transformer_encoder", {"causal": True, "norm_first": True, "num_layers": 2}, {"T": 100}),
    ("char_transformer", {}, {"T": 64}), ("unet", {"size": 188}, {}), ("fcn_vgg16", {}, {"H": 64, "W": 64})]
TOLERANCE = 0.20  # oneDNN's scratch depends on the CPU's kernels; the model follows the ISA they run (AVX2, AVX-512)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; 1 thread also keeps the kernel choice fixed
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name, params):
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            graph = specgraph.check(SPECS / f"{name}.yaml", **params)
            cache[key] = graph, specgraph.build(graph).eval()
        return cache[key]

    return get


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("name,params,dims", [(*c, {}) for c in CASES] + RECURRENT + ATTENTION_AND_UPSAMPLING,
                         ids=[c[0] for c in CASES + RECURRENT] + ["vit_b_16", "transformer_encoder",
                                                                  "transformer_encoder_causal", "char_transformer",
                                                                  "unet", "fcn_vgg16"])
def test_inference_peak_within_20_percent_of_measured(built, name, params, dims, batch):
    graph, model = built(name, params)
    report = memory_report(graph, batch, dims, threads=torch.get_num_threads())
    assert not report.unmodelled  # every kernel's scratch is modelled: not a lower bound
    measured = measured_peak(model, _inputs(graph, report.sizes))
    assert abs(report.inference_peak - measured) <= TOLERANCE * measured, (
        f"{name} N={batch}: predicted {report.inference_peak}, measured {measured} "
        f"(ratio {report.inference_peak / measured:.3f}, peak at {report.peak_node})")


@pytest.mark.parametrize("name,params", CASES + [("char_lstm", {})], ids=[c[0] for c in CASES] + ["char_lstm"])
def test_param_bytes_equal_the_built_model(built, name, params):
    graph, model = built(name, params)
    report = memory_report(graph, 1, {"T": 4})
    assert report.param_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    for path, node in report.nodes.items():
        if node.param_bytes:
            sub = model.get_submodule(path)
            assert node.param_bytes == sum(p.numel() * p.element_size() for p in sub.parameters()), path


class _Recorder(fx.Interpreter):
    """Runs the generated forward node by node, keeping each node's output bytes."""

    def __init__(self, gm):
        super().__init__(gm)
        self.bytes: dict[str, int] = {}

    def run_node(self, n):
        result = super().run_node(n)
        self.bytes[n.name] = sum(t.numel() * t.element_size() for t in tree_flatten(result)[0]
                                 if isinstance(t, torch.Tensor))
        return result


@pytest.mark.parametrize("name,params,dims", [(*c, {}) for c in CASES] + [("char_lstm", {}, {"T": 12})],
                         ids=[c[0] for c in CASES] + ["char_lstm"])
def test_activation_bytes_equal_the_real_outputs(built, name, params, dims):
    graph, model = built(name, params)
    report = memory_report(graph, 3, dims)
    gm = model.eval_graph_module if isinstance(model, TrainEvalModule) else model
    recorder = _Recorder(gm)
    with torch.no_grad():
        recorder.run(*_inputs(graph, report.sizes))
    names = {n.name: n for n in gm.graph.nodes}
    checked = 0
    for path, node in report.nodes.items():
        fx_name = path.replace(".", "_") if path.replace(".", "_") in names else None
        module_node = next((n for n in gm.graph.nodes if n.op == "call_module" and n.target == path), None)
        key = module_node.name if module_node is not None else fx_name
        if key is None:  # identity emits no fx node; train-only nodes are not in the eval graph
            continue
        assert node.activation_bytes == recorder.bytes[key], path
        checked += 1
    assert checked >= len(report.nodes) // 2


INDEXING_SPECS = {  # ops whose scratch model is the bulk of the peak: Swin's window mask and shift, an int32 gather
    "shifted_window_mask": """
specgraph: 1
inputs: {x: [N, 56, 56, 4]}
graph:
  mask: {op: shifted_window_mask, window: 7, shift: 3}
""",
    "cyclic_shift": """
specgraph: 1
inputs: {x: [N, 56, 56, 4]}
graph:
  rolled: {op: cyclic_shift, window: 7, shift: 3}
""",
    "normalize": """
specgraph: 1
inputs: {x: [N, 64, 32, 8]}
graph:
  unit: {op: normalize, dim: -1}
""",
    "gather_int32": """
specgraph: 1
inputs: {x: [N, 64, 32], ids: {shape: [N, 64, 256], dtype: int32}, rows: {shape: [300], dtype: int64}}
graph:
  gathered: {op: gather, from: [x, ids], dim: 2}
  selected: {op: index_select, from: [gathered, rows], dim: 2}
""",
}


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("name", sorted(INDEXING_SPECS))
def test_indexing_and_window_mask_peaks_within_20_percent_of_measured(name, batch):
    graph = specgraph.check(INDEXING_SPECS[name])
    report = memory_report(graph, batch, {}, threads=torch.get_num_threads())
    assert not report.unmodelled
    measured = measured_peak(specgraph.build(graph).eval(), _inputs(graph, report.sizes))
    assert abs(report.inference_peak - measured) <= TOLERANCE * measured, (
        f"{name} N={batch}: predicted {report.inference_peak}, measured {measured}")


def test_views_share_storage_and_peak_counts_them_once():
    # flatten of a contiguous tensor is a view: its row is marked, it adds nothing to the total
    graph = specgraph.check(SPECS / "lenet5.yaml")
    report = memory_report(graph, 4)
    flatten = report.nodes["flatten"]
    assert flatten.activation_bytes == 4 * 400 * 4 and flatten.new_bytes == 0
    assert report.activation_bytes == sum(n.new_bytes for n in report.nodes.values())
    seen = {}

    class Keep(fx.Interpreter):
        def run_node(self, n):
            seen[n.name] = result = super().run_node(n)
            return result

    with torch.no_grad():
        Keep(specgraph.build(graph).eval()).run(torch.randn(4, 1, 28, 28))
    assert seen["flatten"].untyped_storage().data_ptr() == seen["c3_pool"].untyped_storage().data_ptr()


def test_a_symbolic_dim_without_a_size_is_a_clear_error():
    graph = specgraph.check(SPECS / "char_lstm.yaml")
    with pytest.raises(SizeError, match=r"T \(in tokens\); give --dim T=INT"):
        memory_report(graph, 8)
    s = specgraph.summary(SPECS / "char_lstm.yaml")  # no size asked for: the table, with a note
    assert s.memory is None and "--dim T=INT" in s.memory_note


def test_cli_summary_batch_size_shows_memory_columns_and_totals():
    result = CliRunner().invoke(app, ["summary", str(SPECS / "lenet5.yaml"), "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "param bytes" in text and "activations (N=8)" in text
    assert "memory at N=8: parameters 241.0 KiB" in text  # 61,706 float32 weights
    report = memory_report(specgraph.check(SPECS / "lenet5.yaml"), 8)
    assert f"predicted inference peak (eval, no_grad, CPU): {report.inference_peak / 1024:.1f} KiB" in text
    assert "(view)" in text  # the flatten


def test_cli_summary_json_has_the_memory_fields():
    result = CliRunner().invoke(app, ["summary", str(SPECS / "resnet18.yaml"), "-b", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    mem = data["memory"]
    assert mem["sizes"] == {"N": 2}
    assert mem["param_bytes"] == 4 * data["total_params"]
    assert mem["inference_peak_bytes"] > mem["input_bytes"] == 2 * 3 * 224 * 224 * 4
    fc = next(n for n in data["nodes"] if n["path"] == "fc")
    assert fc["activation_bytes"] == 2 * 1000 * 4 and fc["param_bytes"] == 4 * 513_000
    assert math.isclose(sum(n["param_bytes"] for n in data["nodes"]), mem["param_bytes"])


def test_cli_summary_missing_dim_is_a_usage_error():
    result = CliRunner().invoke(app, ["summary", str(SPECS / "char_lstm.yaml"), "--batch-size", "2"])
    assert result.exit_code == 2
    assert "--dim T=INT" in result.output
    ok = CliRunner().invoke(app, ["summary", str(SPECS / "char_lstm.yaml"), "-b", "2", "--dim", "T=16"])
    assert ok.exit_code == 0, ok.output
    assert "not modelled" not in ok.output  # the lstm's scratch is modelled: the peak is no lower bound


SPEC_WITH_USER_OP = """
specgraph: 1
name: user_memory
inputs:
  x: [N, 64]
graph:
  fc: {op: linear, out: 256}
  act: {op: %s}
  out: {op: linear, out: 10}
"""


def _user_op(tmp_path, name, scratch=None, **attrs):
    from specgraph import Op, register_op
    from specgraph.analysis.memory import register_scratch

    cls = type(name.title().replace("_", ""), (Op,), {"name": name, "infer": lambda self, p, inputs: [inputs[0]], **attrs})
    register_op(cls)
    if scratch is not None:
        register_scratch(cls)(scratch)
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC_WITH_USER_OP % name)
    return memory_report(specgraph.check(path), 4)


def test_a_user_op_declares_its_memory_with_traits_and_a_scratch_model(tmp_path):
    from specgraph.ir.traits import Trait
    from specgraph.ops.registry import REGISTRY

    nothing = lambda op, p, ins, outs, ctx: 0  # noqa: E731
    try:
        unknown = _user_op(tmp_path, "mem_unknown")  # no scratch model: the peak is a lower bound
        assert unknown.unmodelled == ["act"] and unknown.nodes["act"].scratch_bytes == 0
        plain = _user_op(tmp_path, "mem_plain", scratch=nothing)
        assert not plain.unmodelled
        assert plain.nodes["act"].new_bytes == 4 * 256 * 4 and plain.nodes["act"].scratch_bytes == 0
        viewing = _user_op(tmp_path, "mem_inplace", scratch=nothing, traits=frozenset({Trait.IDENTITY_IN_EVAL}))
        assert viewing.nodes["act"].new_bytes == 0 and viewing.nodes["act"].activation_bytes == 4 * 256 * 4
        scratchy = _user_op(tmp_path, "mem_scratch",
                            scratch=lambda op, p, ins, outs, ctx: 3 * outs[0].nbytes + ctx.param_bytes)
        assert scratchy.nodes["act"].scratch_bytes == 3 * 4 * 256 * 4
        assert scratchy.inference_peak == plain.inference_peak + 3 * 4 * 256 * 4
    finally:
        for name in ("mem_plain", "mem_inplace", "mem_scratch", "mem_unknown"):
            REGISTRY.unregister(name)


def test_every_builtin_op_has_a_scratch_model():
    from specgraph.analysis.memory import scratch_model
    from specgraph.ops import all_ops

    # ops other tests register (tests/test_user_ops.py) stay in the registry: only ours count
    assert not [name for name, op in all_ops().items()
                if type(op).__module__.startswith("specgraph.") and scratch_model(op) is None]


def test_a_model_that_cannot_say_makes_the_peak_a_lower_bound(monkeypatch):
    # einsum of three operands follows opt_einsum's order where torch has opt_einsum: not replayed
    from specgraph.analysis.memory.kernels import contraction

    graph = specgraph.check("specgraph: 1\ninputs: {a: [N, 8, 16], b: [N, 16, 4], c: [N, 4, 8]}\n"
                            "graph:\n  e: {op: einsum, equation: 'bij,bjk,bkl->bil', from: [a, b, c]}\n")
    assert not memory_report(graph, 2).unmodelled
    real = contraction.importlib.util.find_spec
    monkeypatch.setattr(contraction.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "opt_einsum" else real(name, *a))
    assert memory_report(graph, 2).unmodelled == ["e"]


def test_the_channel_block_follows_the_isa(monkeypatch):
    from specgraph.analysis.memory import machine

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert machine.detect().channel_block == 8 and machine.detect().onednn_isa == "avx2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    want = 16 if machine._from_flags() == "avx512" else 8  # a cap never raises what the CPU has
    assert machine.detect().channel_block == want


def test_recurrent_scratch_is_the_bulk_of_an_lstm_peak():
    # oneDNN reorders the weights on every call: at batch 1 they dominate char_lstm's peak
    report = memory_report(specgraph.check(SPECS / "char_lstm.yaml"), 1, {"T": 32})
    lstm = report.nodes["lstm"]
    assert report.peak_node == "lstm" and lstm.scratch_bytes > 10 * lstm.new_bytes


@pytest.mark.parametrize("batch", [8, 4096])
def test_a_fused_gather_dot_is_predicted_as_it_runs(batch):
    # skip-gram's scores run as one kernel that writes only the scores (ops/gather_dot_*.py): its
    # gathers and [N, K, dim] product are never made, and the walk does not count them (it did,
    # predicting 66x the measured peak at batch 4096)
    from specgraph.ops.gather_dot_kernel import unavailable

    graph = specgraph.check(SPECS / "skipgram_ns.yaml")
    report = memory_report(graph, batch, threads=1)
    model = specgraph.build(graph).eval()
    measured = measured_peak(model, _inputs(graph, report.sizes))
    assert abs(report.inference_peak - measured) <= TOLERANCE * measured, (report.inference_peak, measured)
    if unavailable() is None:  # a C compiler: fused, and the inner nodes hold nothing
        assert "gather_dot(" in model.code
        assert all(report.nodes[p].new_bytes == 0 for p in ("embed", "query", "outputs", "product"))
