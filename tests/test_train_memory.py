"""The memory of a training step, predicted without memory, against a real training step on CPU.

The prediction (``specgraph.api.training_memory``) runs the forward and backward passes on fake
tensors (meta storage; specgraph/torch/train_memory.py) and adds the optimizer's state and step
(specgraph/analysis/training.py).  The reference is the step a training loop runs — gradients
zeroed to None, forward, the task's loss (cross-entropy), backward, the optimizer's step — after
a first step made the optimizer's state, its peak read from the CPU allocator through the
profiler (tests/peak_measure.py), plus what was allocated before it: the parameters, buffers,
optimizer state and the batch.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten

import specgraph
from specgraph import api
from specgraph.analysis.training import largest_batch, parse_bytes
from specgraph.torch.train_memory import training_step

from conftest import SPECS
from peak_measure import allocator_peak, random_inputs, tensor_bytes

TOLERANCE = 0.15
# name, params, other dims, two batch sizes
NETS = [("lenet5", {}, {}, (8, 64)),
        ("resnet18", {"num_classes": 10}, {}, (4, 16)),
        ("unet_padded", {"size": 64}, {}, (4, 16)),
        ("char_lstm", {}, {"T": 64}, (8, 32)),
        ("vit_b_16", {"image_size": 64, "num_layers": 4, "num_classes": 10}, {}, (8, 32))]
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "sgd": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _first(out):
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()][0]


def measured_step(graph, sizes, optimizer="adam", precision="32") -> tuple[int, int]:
    """(the peak bytes of a real training step, the bytes autograd saved in it)."""
    torch.manual_seed(0)
    model = specgraph.build(graph).train()
    inputs = random_inputs(graph, sizes)
    with torch.no_grad():
        out = _first(model(*inputs))
    if out.dim() == 3:  # [N, T, vocab]: a language model's targets, one per step
        target = torch.randint(0, out.shape[-1], out.shape[:-1])
        loss_of = lambda o: F.cross_entropy(o.float().flatten(0, 1), target.flatten())  # noqa: E731
    else:  # classes on dim 1 (per pixel for a segmentation)
        target = torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]))
        loss_of = lambda o: F.cross_entropy(o.float(), target)  # noqa: E731
    del out
    opt = OPTIMIZERS[optimizer](model.parameters())
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)

    def forward():
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return loss_of(_first(model(*inputs)))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        del loss
        opt.step()

    peak = allocator_peak(step)
    state = sum(tensor_bytes(v for v in s.values() if isinstance(v, torch.Tensor)) for s in opt.state.values())
    before = tensor_bytes(model.parameters()) + tensor_bytes(model.buffers()) + state + tensor_bytes(inputs) \
        + tensor_bytes([target])
    # what autograd saves, in a forward of its own (hooks change when saved tensors are let go)
    held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers(), *inputs]}
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    return peak + before, sum(b for ptr, b in saved.items() if ptr not in held)


@pytest.fixture(scope="module")
def graphs():
    cache = {}

    def get(name, params):
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = specgraph.check(SPECS / f"{name}.yaml", **params)
        return cache[key]

    return get


CASES = [(name, params, dims, batch) for name, params, dims, batches in NETS for batch in batches]


@pytest.mark.parametrize("name,params,dims,batch", CASES, ids=[f"{c[0]}-N{c[3]}" for c in CASES])
def test_training_peak_within_15_percent_of_a_real_step(graphs, name, params, dims, batch):
    graph = graphs(name, params)
    predicted = api.training_memory(graph, batch, dims=dims, threads=1)
    measured, saved = measured_step(graph, {"N": batch, **dims})
    assert abs(predicted.peak - measured) <= TOLERANCE * measured, (
        f"{name} N={batch}: predicted {predicted.peak}, measured {measured}, ratio {predicted.peak / measured:.3f} "
        f"(during the {predicted.peak_phase})")
    # what autograd saves: the same tensors as on the CPU (oneDNN's LSTM workspace: its fitted size)
    assert abs(predicted.saved_bytes - saved) <= 0.03 * saved, (predicted.saved_bytes, saved)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_optimizers_state_and_step(graphs, optimizer):
    # vit's parameters outweigh its activations at this size: the optimizer's step is the peak
    graph = graphs("vit_b_16", {"image_size": 64, "num_layers": 4, "num_classes": 10})
    predicted = api.training_memory(graph, 8, optimizer=optimizer)
    measured, _ = measured_step(graph, {"N": 8}, optimizer)
    assert predicted.state_bytes == (1 if optimizer == "sgd" else 2) * predicted.param_bytes
    assert abs(predicted.peak - measured) <= TOLERANCE * measured, (predicted.peak, measured)


def test_bf16_mixed_precision(graphs):
    graph = graphs("resnet18", {"num_classes": 10})
    predicted = api.training_memory(graph, 8, precision="bf16-mixed")
    measured, _ = measured_step(graph, {"N": 8}, precision="bf16-mixed")
    full = api.training_memory(graph, 8)
    assert predicted.saved_bytes < 0.8 * full.saved_bytes  # autocast saves bf16 activations
    assert abs(predicted.peak - measured) <= TOLERANCE * measured, (predicted.peak, measured)


def test_the_parts_of_a_training_step(graphs):
    graph = graphs("lenet5", {})
    model = specgraph.build(graph)
    m = api.training_memory(graph, 16)
    params = tensor_bytes(model.parameters())
    assert m.param_bytes == m.grad_bytes == params and m.state_bytes == 2 * params
    assert m.input_bytes == 16 * 28 * 28 * 4
    assert m.peak == max(m.forward_peak, m.backward_peak, m.step_peak) > m.param_bytes + m.state_bytes + m.saved_bytes
    step = training_step(graph, {"N": 16})
    assert step.after_backward == step.resident + step.grad_bytes  # the gradients and nothing else left


def test_largest_batch_is_exact():
    for peak in (lambda n: 1000 + 37 * n, lambda n: 5000 if n < 20 else 5000 + 300 * (n - 20),
                 lambda n: 100 * n + (n // 7) * 900, lambda n: 7 * n * n):
        for budget in (900, 1037, 5000, 6000, 123_456):
            brute = max((n for n in range(1, 3001) if peak(n) <= budget), default=0)
            assert largest_batch(peak, budget, limit=3000) == brute, (budget, brute)
    assert largest_batch(lambda n: n, 10**9, limit=64) == 64


def test_largest_training_batch_fits_and_one_more_does_not(graphs):
    graph = graphs("lenet5", {})
    budget = 64 << 20
    batch = api.largest_training_batch(graph, budget)
    assert batch > 1
    assert api.training_memory(graph, batch).peak <= budget < api.training_memory(graph, batch + 1).peak


def test_sizes_are_read_with_their_units():
    assert parse_bytes("24GiB") == 24 << 30 and parse_bytes("1.5 GB") == 1_500_000_000
    assert parse_bytes("512mib") == 512 << 20 and parse_bytes("4096") == 4096
    for bad in ("12XB", "GiB", "-1GiB", "0.1B", ""):
        with pytest.raises(ValueError):
            parse_bytes(bad)


class _ReadsItsData(torch.nn.Module):
    def forward(self, x):
        return x * float(x.abs().max().item())  # a value read from the data: no run without it


def test_an_op_that_reads_its_data_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from specgraph import Op, register_op
    from specgraph.analysis.memory import no_scratch
    from specgraph.cli.app import app
    from specgraph.ops.registry import REGISTRY
    from specgraph.torch.train_memory import TrainingRunError

    cls = type("DataScale", (Op,), {"name": "data_scale", "infer": lambda self, p, inputs: [inputs[0]],
                                    "build": lambda self, p, inputs: _ReadsItsData(),
                                    "num_params": lambda self, p, inputs: 0})
    register_op(cls)
    no_scratch(cls)
    try:
        path = tmp_path / "reads.yaml"
        path.write_text("specgraph: 1\ninputs: {x: [N, 8]}\ngraph:\n  fc: {op: linear, out: 4}\n  s: {op: data_scale}\n")
        with pytest.raises(TrainingRunError, match="cannot be run without memory.*local_scalar_dense"):
            api.training_memory(path, 2)
        result = CliRunner().invoke(app, ["summary", str(path), "--train"])
        assert result.exit_code == 1 and "error: the training step cannot be run without memory" in result.output
        assert "Traceback" not in result.output
    finally:
        REGISTRY.unregister("data_scale")


def test_a_spec_without_parameters_has_no_backward_pass():
    graph = specgraph.check("specgraph: 1\ninputs: {x: [N, 8, 16]}\ngraph:\n  a: {op: relu}\n  b: {op: softmax, dim: -1}\n")
    m = api.training_memory(graph, 4)
    assert m.param_bytes == m.state_bytes == m.saved_bytes == 0
    assert m.backward_peak == m.input_bytes and m.peak == m.forward_peak
