"""Gate-level cells equal torch's cells, and `scan:` over them equals torch's sequence layers."""

from __future__ import annotations

import pytest
import torch

import specgraph
from specgraph.torch.weights import from_torch
from conftest import ROOT, SPECS

CELLS = SPECS / "cells"
torch.set_default_dtype(torch.float32)


def scan_spec(cell: str, hidden: int, features: int, extra_graph: str = "", outputs: str = "[rnn.out, rnn.h]",
              init: str = "") -> specgraph.Spec:
    text = f"""
specgraph: 1
include: ["{CELLS / (cell + '.yaml')}"]
inputs:
  x: [N, T, {features}]
{init}
graph:
  rnn: {{scan: {cell}, hidden: {hidden}, from: x}}
{extra_graph}
outputs: {outputs}
"""
    return specgraph.load(text, include_root=str(ROOT))


@pytest.mark.parametrize("cell,reference", [
    ("rnn_tanh_cell", torch.nn.RNNCell), ("lstm_cell", torch.nn.LSTMCell), ("gru_cell", torch.nn.GRUCell)])
def test_cell_equals_torch_cell(cell, reference):
    torch.manual_seed(0)
    ours = specgraph.build(CELLS / f"{cell}.yaml", input_size=10, hidden=20)
    ref = reference(10, 20)
    ours.load_state_dict(from_torch(ref.state_dict(), prefix="step."), strict=True)
    x, h, c = torch.randn(5, 10), torch.randn(5, 20), torch.randn(5, 20)
    if cell == "lstm_cell":
        got = ours(x, h, c)
        want = ref(x, (h, c))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    else:
        torch.testing.assert_close(ours(x, h), ref(x, h), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "loop"])
@pytest.mark.parametrize("cell,reference", [
    ("rnn_tanh_cell", torch.nn.RNN), ("lstm_cell", torch.nn.LSTM), ("gru_cell", torch.nn.GRU)])
def test_scan_equals_torch_layer(cell, reference, fused):
    """Both ways a scan of these cells runs: torch's kernel (fused, the default) and the loop."""
    torch.manual_seed(0)
    model = specgraph.build(scan_spec(cell, hidden=16, features=7))
    model.rnn.fused = fused
    ref = reference(7, 16, batch_first=True)
    model.load_state_dict(from_torch(ref.state_dict(), prefix="rnn.cell.", layer=0), strict=True)
    x = torch.randn(3, 11, 7)
    out, h = model(x)
    want_out, want_state = ref(x)
    want_h = want_state[0] if cell == "lstm_cell" else want_state
    torch.testing.assert_close(out, want_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, want_h[0], atol=1e-5, rtol=1e-5)
    # gradients flow through the loop the same way
    out.sum().backward()
    want_out.sum().backward()
    torch.testing.assert_close(model.rnn.cell.h2h.weight.grad, ref.weight_hh_l0.grad, atol=1e-4, rtol=1e-4)


def test_reverse_scan_joined_with_forward_equals_bidirectional_lstm():
    torch.manual_seed(0)
    text = f"""
specgraph: 1
include: ["{CELLS / 'lstm_cell.yaml'}"]
inputs: {{x: [N, T, 6]}}
graph:
  fwd: {{scan: lstm_cell, hidden: 9, from: x}}
  bwd: {{scan: lstm_cell, hidden: 9, from: x, reverse: true}}
  both: {{op: concat, dim: 2, from: [fwd.out, bwd.out]}}
outputs: [both, fwd.h, bwd.h]
"""
    model = specgraph.build(specgraph.load(text, include_root=str(ROOT)))
    ref = torch.nn.LSTM(6, 9, batch_first=True, bidirectional=True)
    sd = ref.state_dict()
    weights = {**from_torch(sd, "fwd.cell.", layer=0), **from_torch(sd, "bwd.cell.", layer=0, reverse=True)}
    model.load_state_dict(weights, strict=True)
    x = torch.randn(4, 13, 6)
    out, h_fwd, h_bwd = model(x)
    want, (h_n, _) = ref(x)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack([h_fwd, h_bwd]), h_n, atol=1e-5, rtol=1e-5)


def test_scan_initial_state_from_other_nodes_and_symbolic_time():
    """seq2seq's bridge: a decoder scan starts from the encoder's final states."""
    text = f"""
specgraph: 1
include: ["{CELLS / 'lstm_cell.yaml'}"]
inputs: {{src: [N, S, 5], tgt: [N, T, 5]}}
graph:
  encoder: {{scan: lstm_cell, hidden: 8, from: src}}
  decoder: {{scan: lstm_cell, hidden: 8, from: tgt, init: {{h: encoder.h, c: encoder.c}}}}
outputs: [decoder.out]
"""
    graph = specgraph.check(specgraph.load(text, include_root=str(ROOT)))
    assert str(graph.node("encoder").outputs["out"]) == "[N, S, 8]"
    assert str(graph.node("decoder").outputs["out"]) == "[N, T, 8]"
    model = specgraph.build(graph)
    ref = torch.nn.LSTM(5, 8, batch_first=True)
    ref_dec = torch.nn.LSTM(5, 8, batch_first=True)
    model.load_state_dict({**from_torch(ref.state_dict(), "encoder.cell.", 0),
                           **from_torch(ref_dec.state_dict(), "decoder.cell.", 0)}, strict=True)
    src, tgt = torch.randn(2, 7, 5), torch.randn(2, 3, 5)
    _, state = ref(src)
    want, _ = ref_dec(tgt, state)
    torch.testing.assert_close(model(src, tgt), want, atol=1e-5, rtol=1e-5)


def test_layernorm_lstm_cell_scans_and_normalises():
    spec = scan_spec("layernorm_lstm_cell", hidden=12, features=4, outputs="[rnn.out]")
    model = specgraph.build(spec)
    out = model(torch.randn(2, 5, 4))
    assert out.shape == (2, 5, 12)
    assert "rnn.cell.c_norm.weight" in model.state_dict()


def test_scan_hoists_the_input_projection_out_of_the_loop():
    model = specgraph.build(scan_spec("lstm_cell", hidden=8, features=3))
    scan = model.rnn
    assert "x2h" in scan.cell.pre.code and "x2h" not in scan.cell.step.code
    assert "h2h" in scan.cell.step.code


def test_scan_errors():
    bad = f"""
specgraph: 1
include: ["{CELLS / 'lstm_cell.yaml'}"]
inputs: {{x: [N, 5], h0: [N, 4]}}
graph:
  rnn: {{scan: lstm_cell, hidden: 8, from: x, init: {{h: h0}}}}
"""
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(specgraph.load(bad, include_root=str(ROOT)))
    assert info.value.diagnostics[0].code == "E410"  # not a [N, T, F] sequence
    bad = bad.replace("[N, 5]", "[N, T, 5]")
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(specgraph.load(bad, include_root=str(ROOT)))
    assert info.value.diagnostics[0].code == "E408" and "'c' is missing" in info.value.diagnostics[0].message


def test_a_dead_node_of_the_cell_is_neither_hoisted_nor_built():
    """Found by `make fuzz`: a cell node computed from x_t that reaches no output (a duplicated
    projection) was hoisted, but the built cell had no module for it."""
    text = """
specgraph: 1
inputs: {x: [N, T, 4]}
blocks:
  cell:
    params: {hidden: int}
    states: {h: $hidden}
    inputs: [x, h]
    outputs: {h: h_new}
    nodes:
      x2h:   {op: linear, out: $hidden, from: x}
      spare: {op: linear, out: $hidden, from: x}
      h2h:   {op: linear, out: $hidden, from: h}
      h_new: {op: add, from: [x2h, h2h]}
graph:
  rnn: {scan: cell, hidden: 4}
outputs: [rnn.out]
"""
    graph = specgraph.check(text)
    model = specgraph.build(graph)
    assert "spare" not in model.rnn.code
    x = torch.randn(2, 5, 4)
    h = torch.zeros(2, 4)
    want = []
    for t in range(5):
        h = model.rnn.cell.x2h(x[:, t]) + model.rnn.cell.h2h(h)
        want.append(h)
    torch.testing.assert_close(model(x), torch.stack(want, 1))


def test_a_cell_node_reading_the_step_input_directly_stays_per_step():
    """x_t used both by a hoisted projection and by a per-step node (here a peephole-like
    product with the state): the loop receives x_t as well as the hoisted values."""
    text = f"""
specgraph: 1
inputs: {{x: [N, T, 4]}}
blocks:
  cell:
    params: {{hidden: int}}
    states: {{h: $hidden}}
    inputs: [x, h]
    outputs: {{h: h_new}}
    nodes:
      x2h:   {{op: linear, out: $hidden, from: x}}
      mix:   {{op: mul, from: [x, h]}}
      h_new: {{op: add, from: [x2h, mix]}}
graph:
  rnn: {{scan: cell, hidden: 4}}
outputs: [rnn.out]
"""
    model = specgraph.build(text)
    x = torch.randn(2, 5, 4)
    h = torch.zeros(2, 4)
    want = []
    for t in range(5):
        h = model.rnn.cell.x2h(x[:, t]) + x[:, t] * h
        want.append(h)
    torch.testing.assert_close(model(x), torch.stack(want, 1))
