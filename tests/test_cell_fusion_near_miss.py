"""Cells that are almost torch's RNN/LSTM/GRU step, and so are not fused: each keeps its loop
(ops/cell_match.py says why) and computes its own function, checked against a plain-PyTorch
loop written here from the cell's equations, on random weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as fn

from specgraph.ops.torch_modules import FusedScan, Scan
from test_cell_fusion import CELLS, F, H, N, T, build, random_inputs, randomize, scan_spec

LSTM_NODES = (CELLS / "lstm_cell.yaml").read_text().split("    nodes:\n", 1)[1].split("\ngraph:")[0]
GRU_NODES = (CELLS / "gru_cell.yaml").read_text().split("    nodes:\n", 1)[1].split("\ngraph:")[0]


def lstm_block(nodes: str = LSTM_NODES, head: str = "") -> str:
    head = head or """    states: {h: $hidden, c: $hidden}
    inputs: [x, h, c]
    outputs: {h: h_new, c: c_new}"""
    return f"blocks:\n  cell:\n    params: {{hidden: int}}\n{head}\n    nodes:\n{nodes}\n"


def gru_block(nodes: str = GRU_NODES) -> str:
    return ("blocks:\n  cell:\n    params: {hidden: int}\n    states: {h: $hidden}\n    inputs: [x, h]\n"
            f"    outputs: {{h: h_new}}\n    nodes:\n{nodes}\n")


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def lstm_step(m, x, h, c, *, order="ifgo", gate=torch.sigmoid, forget_bias=0.0, squash=True, peephole=False):
    gates = dict(zip(order, (m.x2h(x) + m.h2h(h)).chunk(4, 1)))
    f = gates["f"] + forget_bias + (c if peephole else 0)
    c_new = torch.sigmoid(f) * c + gate(gates["i"]) * torch.tanh(gates["g"])
    h_new = torch.sigmoid(gates["o"]) * (torch.tanh(c_new) if squash else c_new)
    return h_new, c_new


def gru_step(m, x, h, *, cho=False, swapped=False):
    xr, xz, xn = m.x2h(x).chunk(3, 1)
    if cho:  # Cho et al. 2014: the reset gate scales h before W_hn
        hr, hz = m.h2h_rz(h).chunk(2, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + m.h2h_n(r * h))
    else:
        hr, hz, hn = m.h2h(h).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
    return (h + z * (n - h),) if swapped else (n + z * (h - n),)


CHO = """      x2h:       {op: linear, out: "${3 * hidden}", from: x}
      h2h_rz:    {op: linear, out: "${2 * hidden}", from: h}
      xs:        {op: chunk, chunks: 3, names: [r, z, n], from: x2h}
      hs:        {op: chunk, chunks: 2, names: [r, z], from: h2h_rz}
      r_sum:     {op: add, from: [xs.r, hs.r]}
      reset:     {op: sigmoid}
      z_sum:     {op: add, from: [xs.z, hs.z]}
      update:    {op: sigmoid}
      reset_h:   {op: mul, from: [reset, h]}                  # r * h, before the projection
      h2h_n:     {op: linear, out: $hidden}
      n_sum:     {op: add, from: [xs.n, h2h_n]}
      candidate: {op: tanh}
      step_back: {op: sub, from: [h, candidate]}
      blend:     {op: mul, from: [update, step_back]}
      h_new:     {op: add, from: [candidate, blend]}"""

NOT_TORCH = "its cell is not exactly torch's rnn, gru or lstm step"

# name -> (cell blocks, states, why not fused, the step it computes: (modules, x_t, *states) -> new states)
NEAR_MISSES = {
    "lstm_gate_order_ifog": (
        lstm_block(edit(edit(LSTM_NODES, "tanh, from: split.g", "tanh, from: split.o"),
                        "sigmoid, from: split.o", "sigmoid, from: split.g")),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c, order="ifog")),
    "lstm_forget_bias_term": (
        lstm_block(edit(LSTM_NODES, "      forget_gate: {op: sigmoid, from: split.f}",
                        "      f_plus:      {op: add, by: 1.0, from: split.f}\n      forget_gate: {op: sigmoid}")),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c, forget_bias=1.0)),
    "lstm_peephole_term": (
        lstm_block(edit(LSTM_NODES, "      forget_gate: {op: sigmoid, from: split.f}",
                        "      peep:        {op: add, from: [split.f, c]}\n      forget_gate: {op: sigmoid}")),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c, peephole=True)),
    "lstm_hardsigmoid_gate": (
        lstm_block(edit(LSTM_NODES, "input_gate:  {op: sigmoid", "input_gate:  {op: hardsigmoid")),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c, gate=fn.hardsigmoid)),
    "lstm_no_tanh_of_c": (
        lstm_block(edit(LSTM_NODES, "from: [output_gate, c_squash]", "from: [output_gate, c_new]")),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c, squash=False)),
    "lstm_bias_on_one_projection": (
        lstm_block(edit(LSTM_NODES, 'from: h}     # W_hh h + b_hh', 'bias: false, from: h}')),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c)),
    "lstm_emitting_c": (
        lstm_block(head="""    states: {c: $hidden, h: $hidden}
    inputs: [x, c, h]
    outputs: {c: c_new, h: h_new}"""),
        ("c", "h"), "it emits 'c' at each step where torch's layer emits h ('h')",
        lambda m, x, c, h: lstm_step(m, x, h, c)[::-1]),
    "lstm_dropout_in_the_cell": (
        lstm_block(edit(LSTM_NODES, "      h_new:       {op: mul, from: [output_gate, c_squash]}",
                        "      h_mul:       {op: mul, from: [output_gate, c_squash]}\n"
                        "      h_new:       {op: dropout, p: 0.3}"), ),
        ("h", "c"), NOT_TORCH, lambda m, x, h, c: lstm_step(m, x, h, c)),  # compared in eval mode
    "lstm_reading_a_context": (
        lstm_block(head="""    states: {h: $hidden, c: $hidden}
    context: [memory]
    inputs: [x, h, c, memory]
    outputs: {h: h_new, c: c_new}"""),
        ("h", "c"), "its cell reads a context", lambda m, x, h, c: lstm_step(m, x, h, c)),
    "gru_cho_form": (gru_block(CHO), ("h",), NOT_TORCH, lambda m, x, h: gru_step(m, x, h, cho=True)),
    "gru_update_gate_swapped": (
        gru_block(edit(edit(GRU_NODES, "from: [h, candidate]", "from: [candidate, h]"),
                       "from: [candidate, blend]", "from: [h, blend]")),
        ("h",), NOT_TORCH, lambda m, x, h: gru_step(m, x, h, swapped=True)),
    "rnn_sigmoid": (
        "blocks:\n  cell:\n    params: {hidden: int}\n    states: {h: $hidden}\n    inputs: [x, h]\n"
        "    outputs: {h: h_new}\n    nodes:\n      x2h: {op: linear, out: $hidden, from: x}\n"
        "      h2h: {op: linear, out: $hidden, from: h}\n      sum: {op: add, from: [x2h, h2h]}\n"
        "      h_new: {op: sigmoid}\n",
        ("h",), NOT_TORCH, lambda m, x, h: (torch.sigmoid(m.x2h(x) + m.h2h(h)),)),
}


def loop(step, cell, x, states, reverse):
    """The reference scan: ``step`` at each time step, its first new state emitted."""
    outs = []
    for t in (range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])):
        states = step(cell, x[:, t], *states)
        outs.append(states[0])
    outs = outs[::-1] if reverse else outs
    return torch.stack(outs, 1), states


@pytest.mark.parametrize("name", list(NEAR_MISSES))
def test_a_near_miss_is_not_fused_and_computes_its_own_function(name):
    blocks, states, why, step = NEAR_MISSES[name]
    context = "context" in name
    graph, model = build(scan_spec("cell", states=states, init=True, reverse=True, blocks=blocks,
                                   extra_inputs="\n  memory: [N, 3]" if context else "",
                                   scan_keys=", context: {memory: memory}" if context else ""))
    params = graph.node("rnn").params
    assert params.fused is None and params.not_fused == why
    assert type(model.rnn) is Scan and not isinstance(model.rnn, FusedScan)
    randomize(model)
    model.eval()
    inputs = random_inputs(graph)
    x, init = inputs[0], inputs[1:1 + len(states)]
    got = model(*inputs)
    want_out, want_states = loop(step, model.rnn.cell, x, init, reverse=True)
    torch.testing.assert_close(got[0], want_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(got[1:], want_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_scan_is_not_fused(dtype):
    graph, model = build(scan_spec("lstm_cell", dtype=dtype))
    assert graph.node("rnn").params.not_fused == f"torch's kernel rounds {dtype} differently from the cell's ops"
    assert type(model.rnn) is Scan
    x = torch.randn(N, T, F)
    out = model.to(getattr(torch, dtype))(x.to(getattr(torch, dtype)))[0]
    want = loop(lambda m, x, h, c: lstm_step(m, x, h, c), model.float().rnn.cell, x, [torch.zeros(N, H)] * 2, False)[0]
    torch.testing.assert_close(out.float(), want, atol=3e-2, rtol=3e-2)
