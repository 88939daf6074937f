"""Fused cells: a scan whose cell is exactly torch's RNN/LSTM/GRU step runs torch's kernel.

Each fused scan is compared with the unfused loop (the same module with ``fused`` off, the
path every other cell takes) on outputs and on the gradients of every parameter and input,
within 1e-5, and with torch's own layer; cells that differ in any way (tests/
test_cell_fusion_near_miss.py) keep their loop.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import specgraph
from specgraph.cli import app
from specgraph.ops.recurrent import GRU, LSTM, RNN
from specgraph.ops.torch_modules import FusedScan, Scan
from specgraph.torch.weights import from_torch
from conftest import ROOT, SPECS

CELLS = SPECS / "cells"
N, T, F, H = 4, 9, 6, 8
TOL = dict(atol=1e-5, rtol=1e-5)


def scan_spec(cell: str, *, states=("h", "c"), init: bool = False, reverse: bool = False, blocks: str = "",
              dtype: str = "float32", hidden: int = H, features: int = F, extra_inputs: str = "",
              scan_keys: str = "") -> str:
    """A spec scanning ``cell`` (from specs/cells unless ``blocks`` defines it) over x [N, T, F],
    its initial states from inputs h0 (c0) when ``init``; outputs the sequence and every state.
    ``extra_inputs`` are declared last, ``scan_keys`` added to the scan node."""
    include = "" if blocks else f'include: ["{CELLS / (cell + ".yaml")}"]'
    state_inputs = "".join(f"\n  {s}0: {{shape: [N, {hidden}], dtype: {dtype}}}" for s in states) if init else ""
    init_key = (", init: {" + ", ".join(f"{s}: {s}0" for s in states) + "}") if init else ""
    outputs = ", ".join(["rnn.out", *(f"rnn.{s}" for s in states)])
    return f"""
specgraph: 1
{include}
inputs:
  x: {{shape: [N, T, {features}], dtype: {dtype}}}{state_inputs}{extra_inputs}
{blocks}
graph:
  rnn: {{scan: {cell}, hidden: {hidden}, from: x, reverse: {str(reverse).lower()}{init_key}{scan_keys}}}
outputs: [{outputs}]
"""


def build(text: str):
    graph = specgraph.check(specgraph.load(text, include_root=str(ROOT)))
    return graph, specgraph.build(graph)


def random_inputs(graph, seed: int = 0, dtype=torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"N": N, "T": T}
    return [torch.randn([d if isinstance(d, int) else shapes[str(d)] for d in t.shape], generator=gen, dtype=dtype)
            for t in graph.inputs.values()]


def randomize(model, seed: int = 1) -> None:
    """Random weights and biases (torch's default init is small and symmetric: it hides bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def run(model, inputs, *, fused: bool, train: bool):
    """(outputs, parameter gradients, input gradients) of a random weighted sum of every output."""
    model.train(train)
    model.rnn.fused = fused
    for p in model.parameters():
        p.grad = None
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    outs = model(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(7)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return [o.detach() for o in outs], grads, [t.grad for t in inputs]


def assert_fused_equals_loop(model, inputs, train: bool, tol=TOL) -> None:
    got_out, got_grads, got_in = run(model, inputs, fused=True, train=train)
    want_out, want_grads, want_in = run(model, inputs, fused=False, train=train)
    for a, b in zip(got_out, want_out):
        torch.testing.assert_close(a, b, **tol)
    assert got_grads.keys() == want_grads.keys() and all(g is not None for g in want_grads.values())
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], **tol, msg=name)
    for a, b in zip(got_in, want_in):
        torch.testing.assert_close(a, b, **tol)


CELL_LAYERS = [("lstm_cell", LSTM, ("h", "c")), ("gru_cell", GRU, ("h",)), ("rnn_tanh_cell", RNN, ("h",))]


@pytest.mark.parametrize("cell,layer,states", CELL_LAYERS, ids=[c[0] for c in CELL_LAYERS])
def test_the_cells_of_specs_cells_are_fused_into_their_layer(cell, layer, states):
    graph, model = build(scan_spec(cell, states=states))
    fused = graph.node("rnn").params.fused
    assert fused is not None and fused.layer is layer and fused.params.hidden == H and fused.params.bias
    assert isinstance(model.rnn, FusedScan)
    assert [w.path for w in fused.weights] == ["x2h.weight", "h2h.weight", "x2h.bias", "h2h.bias"]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("init", [False, True], ids=["zeros", "init"])
@pytest.mark.parametrize("cell,layer,states", CELL_LAYERS, ids=[c[0] for c in CELL_LAYERS])
def test_fused_outputs_and_gradients_equal_the_unfused_scan(cell, layer, states, init, reverse, train):
    graph, model = build(scan_spec(cell, states=states, init=init, reverse=reverse))
    randomize(model)
    assert_fused_equals_loop(model, random_inputs(graph), train)


def test_fused_in_float64_equals_the_loop_to_rounding():
    graph, model = build(scan_spec("lstm_cell", init=True, dtype="float64"))
    model = model.double()
    randomize(model)
    assert_fused_equals_loop(model, random_inputs(graph, dtype=torch.float64), True, tol=dict(atol=1e-12, rtol=1e-12))


@pytest.mark.parametrize("cell,reference", [("lstm_cell", torch.nn.LSTM), ("gru_cell", torch.nn.GRU),
                                            ("rnn_tanh_cell", torch.nn.RNN)])
def test_fused_scan_equals_torch_layer_with_its_weights(cell, reference):
    """The outside reference: torch's module with the same (random) weights, gradients included."""
    states = ("h", "c") if cell == "lstm_cell" else ("h",)
    graph, model = build(scan_spec(cell, states=states, init=True))
    ref = reference(F, H, batch_first=True)
    randomize(ref)
    model.load_state_dict(from_torch(ref.state_dict(), "rnn.cell.", layer=0), strict=True)
    x, *init = random_inputs(graph)
    out, *final = model(x, *init)
    hx = tuple(s.unsqueeze(0) for s in init)
    want, want_state = ref(x, hx if len(hx) > 1 else hx[0])
    want_state = want_state if isinstance(want_state, tuple) else (want_state,)
    torch.testing.assert_close(out, want, **TOL)
    for a, b in zip(final, want_state):
        torch.testing.assert_close(a, b[0], **TOL)
    (out.sum() + sum(s.sum() for s in final)).backward()
    (want.sum() + sum(s.sum() for s in want_state)).backward()
    torch.testing.assert_close(model.rnn.cell.h2h.weight.grad, ref.weight_hh_l0.grad, **TOL)
    torch.testing.assert_close(model.rnn.cell.x2h.bias.grad, ref.bias_ih_l0.grad, **TOL)


def test_state_dict_keys_are_the_specs():
    _, fused = build(scan_spec("lstm_cell"))
    keys = list(fused.state_dict())
    assert keys == ["rnn.cell.x2h.weight", "rnn.cell.x2h.bias", "rnn.cell.h2h.weight", "rnn.cell.h2h.bias"]
    assert [name for name, _ in fused.named_parameters()] == keys  # each weight once, not also torch's


USER_LSTM = """
blocks:
  my_lstm:                            # states declared c first; h emitted through `out`
    params: {hidden: int}
    states: {c: $hidden, h: $hidden}
    inputs: [x_t, c, h]
    outputs: {c: cell_state, h: hidden_state, out: hidden_state}
    nodes:
      wx:     {op: linear, out: "${4 * hidden}", from: x_t}
      wh:     {op: linear, out: "${4 * hidden}", from: h}
      pre:    {op: add, from: [wh, wx]}
      same:   {op: identity}
      parts:  {op: chunk, chunks: 4, dim: -1, names: [a, b, cc, d]}
      a_s:    {op: sigmoid, from: parts.a}
      b_s:    {op: sigmoid, from: parts.b}
      cc_t:   {op: tanh, from: parts.cc}
      d_s:    {op: sigmoid, from: parts.d}
      old:    {op: mul, from: [c, b_s]}
      new:    {op: mul, from: [cc_t, a_s]}
      cell_state:   {op: add, from: [new, old]}
      squash:       {op: tanh, from: cell_state}
      hidden_state: {op: mul, from: [squash, d_s]}
"""


def test_a_users_cell_written_the_same_way_is_fused_whatever_its_names():
    """Other node, port and block names, operands in the other order, an identity, the states
    declared in another order: the same function, so the same kernel."""
    graph, model = build(scan_spec("my_lstm", states=("c", "h"), init=True, blocks=USER_LSTM))
    fused = graph.node("rnn").params.fused
    assert fused is not None and fused.layer is LSTM and fused.states == ("h", "c")
    randomize(model)
    inputs = random_inputs(graph)
    assert_fused_equals_loop(model, inputs, True)
    ref = torch.nn.LSTM(F, H, batch_first=True)
    cell = model.rnn.cell
    ref.load_state_dict({"weight_ih_l0": cell.wx.weight, "weight_hh_l0": cell.wh.weight, "bias_ih_l0": cell.wx.bias,
                         "bias_hh_l0": cell.wh.bias})
    x, c0, h0 = inputs
    out, c, h = model(x, c0, h0)
    want, (want_h, want_c) = ref(x, (h0[None], c0[None]))
    torch.testing.assert_close(out, want, **TOL)
    torch.testing.assert_close(h, want_h[0], **TOL)
    torch.testing.assert_close(c, want_c[0], **TOL)


JOINT_LSTM = """
blocks:
  joint:                              # one projection of [x; h]: torch's W_ih, W_hh are its columns
    params: {hidden: int}
    states: {h: $hidden, c: $hidden}
    inputs: [x, h, c]
    outputs: {h: h_new, c: c_new}
    nodes:
      xh:    {op: concat, dim: 1, from: [x, h]}
      gates: {op: linear, out: "${4 * hidden}"}
      split: {op: chunk, chunks: 4, names: [i, f, g, o]}
      i_s:   {op: sigmoid, from: split.i}
      f_s:   {op: sigmoid, from: split.f}
      g_t:   {op: tanh, from: split.g}
      o_s:   {op: sigmoid, from: split.o}
      keep:  {op: mul, from: [f_s, c]}
      write: {op: mul, from: [i_s, g_t]}
      c_new: {op: add, from: [keep, write]}
      c_t:   {op: tanh, from: c_new}
      h_new: {op: mul, from: [o_s, c_t]}
"""

JOINT_RNN_RELU = """
blocks:
  joint:                              # relu over one projection of [h; x], without bias
    params: {hidden: int}
    states: {h: $hidden}
    inputs: [x, h]
    outputs: {h: h_new}
    nodes:
      hx:    {op: concat, from: [h, x]}
      pre:   {op: linear, out: $hidden, bias: false}
      h_new: {op: relu}
"""


@pytest.mark.parametrize("blocks,states,layer,columns", [
    (JOINT_LSTM, ("h", "c"), LSTM, [(0, F), (F, F + H)]),
    (JOINT_RNN_RELU, ("h",), RNN, [(H, H + F), (0, H)])], ids=["lstm_x_h", "rnn_relu_h_x_nobias"])
def test_a_joint_projection_is_relaid_into_torchs_weights(blocks, states, layer, columns):
    graph, model = build(scan_spec("joint", states=states, init=True, reverse=True, blocks=blocks))
    fused = graph.node("rnn").params.fused
    assert fused is not None and fused.layer is layer
    assert [w.columns for w in fused.weights[:2]] == columns
    assert fused.has_biases == (layer is LSTM)
    randomize(model)
    for train in (True, False):
        assert_fused_equals_loop(model, random_inputs(graph), train)


def test_a_cell_without_any_bias_is_torchs_bias_false_layer():
    blocks = (CELLS / "lstm_cell.yaml").read_text().split("blocks:\n", 1)[1].split("\ngraph:")[0]
    blocks = "blocks:\n" + blocks.replace('from: x}', 'bias: false, from: x}').replace('from: h}', 'bias: false, from: h}')
    graph, model = build(scan_spec("lstm_cell", init=True, blocks=blocks))
    fused = graph.node("rnn").params.fused
    assert fused is not None and not fused.params.bias and not fused.has_biases
    randomize(model)
    assert_fused_equals_loop(model, random_inputs(graph), True)


@pytest.mark.parametrize("cell,states", [("lstm_cell", ("h", "c")), ("gru_cell", ("h",))])
def test_the_fused_scan_compiles_as_one_graph_and_trains(cell, states):
    """Through AOTAutograd (what inductor differentiates with): in training the compiled lstm
    scan runs oneDNN's kernel as one custom op (tests/test_fused_scan_compile.py), the gru scan
    its loop; without grad both run torch's kernel."""
    graph, model = build(scan_spec(cell, states=states, init=True, reverse=True))
    randomize(model)
    inputs = random_inputs(graph)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(*inputs)
    sum(o.sum() for o in got).backward()
    got_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    want = model(*inputs)
    sum(o.sum() for o in want).backward()
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL)
    for n, p in model.named_parameters():
        torch.testing.assert_close(got_grads[n], p.grad, **TOL, msg=n)
    with torch.no_grad():
        for a, b in zip(compiled(*inputs), want):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_an_unmatched_cell_loop_compiles_without_graph_breaks(reverse):
    """The layer-normalised LSTM has no torch kernel: its loop is captured whole by Dynamo, in
    training (forward and backward) as in eval."""
    graph, model = build(scan_spec("layernorm_lstm_cell", init=True, reverse=reverse))
    assert isinstance(model.rnn, Scan) and not isinstance(model.rnn, FusedScan)
    randomize(model)
    inputs = random_inputs(graph)
    model.train()
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*inputs)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    got = compiled(*[t.clone().requires_grad_() for t in inputs])
    sum(o.sum() for o in got).backward()
    got_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    want = model(*inputs)
    sum(o.sum() for o in want).backward()
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    for n, p in model.named_parameters():
        torch.testing.assert_close(got_grads[n], p.grad, msg=n)


def test_summary_and_diagram_say_which_scans_were_fused():
    text = f"""
specgraph: 1
include: ["{CELLS / 'lstm_cell.yaml'}", "{CELLS / 'layernorm_lstm_cell.yaml'}"]
inputs: {{x: [N, 12, 5]}}
graph:
  fast: {{scan: lstm_cell, hidden: 6, from: x}}
  slow: {{scan: layernorm_lstm_cell, hidden: 6, from: fast.out}}
outputs: [slow.out]
"""
    graph = specgraph.check(specgraph.load(text, include_root=str(ROOT)))
    summary = specgraph.summary(graph)
    assert summary.runs_as == {
        "fast": "fused: torch's lstm 6 kernel runs the whole sequence (lstm_cell is exactly its step)",
        "slow": "not fused, runs layernorm_lstm_cell step by step: its cell is not exactly torch's rnn, gru or lstm "
                "step"}
    assert "fast: fused: torch's lstm 6 kernel" in str(summary) and summary.to_json()["runs_as"] == summary.runs_as
    source = specgraph.render(graph).source
    assert "lstm_cell over T, fused: lstm 6" in source and "layernorm_lstm_cell over T<" in source
    result = CliRunner().invoke(app, ["summary", str(SPECS / "lstm_forecaster.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rnn: fused: torch's lstm 64 kernel runs the whole sequence" in result.output


@pytest.mark.parametrize("cell,states,init,reverse,blocks", [
    ("lstm_cell", ("h", "c"), False, False, ""), ("lstm_cell", ("h", "c"), True, True, ""),
    ("gru_cell", ("h",), False, True, ""), ("joint", ("h", "c"), False, False, JOINT_LSTM)],
    ids=["lstm", "lstm_init_reverse", "gru_reverse", "joint_lstm"])
def test_the_memory_model_follows_the_fused_kernel(cell, states, init, reverse, blocks):
    """The predicted inference peak of a fused scan is torch's kernel's (oneDNN for the float32
    lstm, ATen's loop for the gru), within the 20% of tests/test_memory.py."""
    from specgraph.analysis.memory.walk import memory_report
    from peak_measure import measured_peak, random_inputs
    from test_memory import TOLERANCE

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        graph, model = build(scan_spec(cell, states=states, init=init, reverse=reverse, blocks=blocks, hidden=64,
                                       features=16))
        report = memory_report(graph, 8, {"T": 40}, threads=1)
        measured = measured_peak(model.eval(), random_inputs(graph, report.sizes))
    finally:
        torch.set_num_threads(before)
    assert abs(report.inference_peak - measured) <= TOLERANCE * measured, (report.inference_peak, measured)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("cell,states,blocks", [("joint", ("h", "c"), JOINT_LSTM), ("gru_cell", ("h",), "")],
                         ids=["joint_lstm", "gru"])
def test_fused_scans_export_to_every_format(cell, states, blocks, tmp_path):
    """ONNX (run in onnxruntime), torch.export, TorchScript and the Python source of a fused scan
    (reversed, from given states; the joint lstm's weights cut by columns and a zero bias)."""
    import onnxruntime as ort

    from specgraph.torch.export.formats import export_program, to_onnx, to_torchscript
    from specgraph.torch.export.python import python_source
    from test_export import generated_class, import_source

    graph, model = build(scan_spec(cell, states=states, init=True, reverse=True, blocks=blocks))
    randomize(model)
    model.eval()
    inputs = tuple(random_inputs(graph))
    with torch.no_grad():
        want = model(*inputs)
    session = ort.InferenceSession(str(to_onnx(model, graph, tmp_path / "m.onnx", inputs)),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
    for a, b in zip(got, want):
        torch.testing.assert_close(torch.from_numpy(a), b, **TOL)
    exported = export_program(model, graph, inputs).module()
    to_torchscript(model, graph, tmp_path / "m.pt", inputs)
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    generated = generated_class(import_source(python_source(model), tmp_path, f"fused_{cell}"))()
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for other in (exported, scripted, generated.eval()):
            for a, b in zip(other(*inputs), want):
                torch.testing.assert_close(a, b, **TOL)
