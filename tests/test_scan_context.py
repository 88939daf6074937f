"""`scan:` with context: read-only tensors of the outer graph that every step reads whole
(an encoder's outputs for attention). seq2seq_luong against a plain-PyTorch Luong decoder,
the cell nodes hoisted once out of the loop, the located errors, and the exports."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import specgraph
from specgraph.torch.export.formats import (dynamic_dims, example_inputs, export_program, to_onnx,
                                            to_torchscript)
from specgraph.torch.export.python import python_source
from conftest import SPECS

LUONG = SPECS / "seq2seq_luong.yaml"
SMALL = {"src_vocab": 20, "tgt_vocab": 25, "embed": 6, "hidden": 10}


class LuongReference(nn.Module):
    """Luong et al. (2015), global dot attention with input feeding, written in plain torch."""

    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int, hidden: int):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, embed)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed)
        self.cell = nn.LSTMCell(embed + hidden, hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)  # W_c
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        enc, (h, c) = self.encoder(self.src_embed(src))  # enc [N, S, H]
        h, c = h[0], c[0]
        att = torch.zeros_like(h)  # h~_0
        logits = []
        for t in range(tgt.shape[1]):
            h, c = self.cell(torch.cat([self.tgt_embed(tgt[:, t]), att], 1), (h, c))
            alpha = torch.softmax(torch.einsum("nsh,nh->ns", enc, h), dim=1)  # over the source positions
            context = torch.einsum("ns,nsh->nh", alpha, enc)
            att = torch.tanh(self.combine(torch.cat([context, h], 1)))
            logits.append(self.out(att))
        return torch.stack(logits, 1)


# reference parameter -> the built model's parameter of the same weight
NAMES = {"src_embed.weight": "src_embed.weight", "tgt_embed.weight": "tgt_embed.weight",
         **{f"encoder.{k}_l0": f"encoder.{k}_l0" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
         "cell.weight_ih": "decoder.cell.x2h.weight", "cell.bias_ih": "decoder.cell.x2h.bias",
         "cell.weight_hh": "decoder.cell.h2h.weight", "cell.bias_hh": "decoder.cell.h2h.bias",
         "combine.weight": "decoder.cell.combine.weight", "out.weight": "logits.weight", "out.bias": "logits.bias"}


def luong_pair():
    torch.manual_seed(0)
    model = specgraph.build(LUONG, **SMALL)
    ref = LuongReference(**SMALL)
    ours = model.state_dict()
    assert set(ours) == set(NAMES.values())
    ref.load_state_dict({k: ours[v].clone() for k, v in NAMES.items()}, strict=True)
    return model, ref


def test_luong_shapes_keep_both_sequence_lengths_symbolic():
    graph = specgraph.check(LUONG)
    decoder = graph.node("decoder")
    assert str(decoder.outputs["out"]) == "[N, T, 512]"
    assert [str(v.type) for v in decoder.inputs] == ["[N, T, 256]", "[N, 512]", "[N, 512]", "[N, S, 512]"]
    cell = decoder.params.cell
    assert str(cell.inputs["enc"]) == "[N, S, 512]"
    assert str(cell.node("scores").outputs["out"]) == "[N, S, 1]"
    assert str(graph.outputs[0].value.type) == "[N, T, 8000]"


@pytest.mark.parametrize("s,t", [(7, 4), (3, 9)])
def test_seq2seq_luong_equals_plain_pytorch(s, t):
    model, ref = luong_pair()
    src, tgt = torch.randint(0, 20, (3, s)), torch.randint(0, 25, (3, t))
    got, want = model(src, tgt), ref(src, tgt)
    assert got.shape == (3, t, 25)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # gradients flow through the loop, the attention and the bridge the same way
    weights = torch.randn(3, t, 25)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    params = dict(model.named_parameters())
    for name in ("combine.weight", "cell.weight_hh", "encoder.weight_hh_l0", "src_embed.weight"):
        torch.testing.assert_close(params[NAMES[name]].grad, ref.get_parameter(name).grad, atol=1e-5, rtol=1e-4)


def test_the_diagram_draws_the_context_edge_into_the_scan():
    source = specgraph.render(LUONG).source
    assert 'encoder -> decoder [label="out: N×S×512"' in source  # the encoder's out port, whole: S, not T
    assert 'tgt_embed -> decoder [label="N×T×256"' in source and 'enc_h -> decoder [label="N×512"' in source


def test_the_context_is_passed_once_not_stacked_over_time():
    model, _ = luong_pair()
    scan = model.decoder
    assert scan.contexts == 1 and scan.init_index == [0, 1]  # h and c from the encoder, att at zeros
    seen = []
    step = scan.cell.__dict__["step"]
    scan.cell.__dict__["step"] = lambda *args: seen.append(args[-1]) or step(*args)
    try:
        model(torch.randint(0, 20, (2, 5)), torch.randint(0, 25, (2, 3)))
    finally:
        scan.cell.__dict__["step"] = step
    assert len(seen) == 3 and all(e.shape == (2, 5, 10) for e in seen)
    assert all(e.data_ptr() == seen[0].data_ptr() for e in seen)  # one tensor, read whole at every step


# ---- a cell node reading only the context: hoisted once, with a symbolic S --------------------

GENERAL = """
specgraph: 1
inputs: {{x: [N, {t}, 4], memory: [N, {s}, 6]}}
blocks:
  general_step:
    doc: "Luong's 'general' score: h_t^T W_a enc_s, with W_a enc computed once"
    params: {{hidden: int}}
    states: {{h: $hidden}}
    context: [enc]
    inputs: [x, h, enc]
    outputs: {{h: h_new, out: out}}
    nodes:
      x2h:     {{op: linear, out: $hidden, from: x}}
      h2h:     {{op: linear, out: $hidden, from: h}}
      gates:   {{op: add, from: [x2h, h2h]}}
      h_new:   {{op: tanh}}
      keys:    {{op: linear, out: $hidden, bias: false, from: enc}}   # [N, S, hidden]
      query:   {{op: unsqueeze, dim: 2, from: h_new}}
      scores:  {{op: matmul, from: [keys, query]}}                   # [N, S, 1]
      weights: {{op: softmax, dim: 1}}
      glimpse: {{op: mul, from: [weights, enc]}}                     # [N, S, 6]
      read:    {{op: sum, dim: 1}}                                   # [N, 6]
      out:     {{op: concat, dim: 1, from: [read, h_new]}}
graph:
  dec: {{scan: general_step, hidden: 8, from: x, context: {{enc: memory}}}}
outputs: [dec.out, dec.h]
"""


def general_reference(model, x, memory):
    cell = model.dec.cell
    h = x.new_zeros(x.shape[0], 8)
    outs = []
    for t in range(x.shape[1]):
        h = torch.tanh(cell.x2h(x[:, t]) + cell.h2h(h))
        alpha = torch.softmax(torch.einsum("nsk,nk->ns", cell.keys(memory), h), dim=1)
        outs.append(torch.cat([torch.einsum("ns,nsf->nf", alpha, memory), h], 1))
    return torch.stack(outs, 1), h


def test_a_cell_node_of_the_context_keeps_s_symbolic_and_is_hoisted_once():
    graph = specgraph.check(GENERAL.format(t="T", s="S"))
    cell = graph.node("dec").params.cell
    assert str(cell.node("keys").outputs["out"]) == "[N, S, 8]"
    assert str(cell.node("glimpse").outputs["out"]) == "[N, S, 6]"
    assert str(graph.node("dec").outputs["out"]) == "[N, T, 14]"
    model = specgraph.build(graph)
    code = model.dec.code
    once = code.split("# before the loop, once")[1].split("# each step")[0]
    step = code.split("# each step")[1]
    assert "self.keys(" in once and "self.keys(" not in step  # W_a enc: once, not T times
    assert "self.x2h(" not in step and "self.h2h(" in step
    torch.manual_seed(0)
    for t, s in ((5, 3), (2, 7)):  # one build serves any T and S
        x, memory = torch.randn(2, t, 4), torch.randn(2, s, 6)
        out, h = model(x, memory)
        want_out, want_h = general_reference(model, x, memory)
        torch.testing.assert_close(out, want_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(h, want_h, atol=1e-5, rtol=1e-5)
    out.sum().backward()  # the once-hoisted projection learns too
    assert model.dec.cell.keys.weight.grad is not None and model.dec.cell.keys.weight.grad.abs().sum() > 0


def test_macs_count_the_once_part_once():
    graph = specgraph.check(GENERAL.format(t=5, s=3))
    per_step = 4 * 8 + 8 * 8 + 3 * 8  # x2h, h2h, scores [1, 3, 1] over k = 8 (elementwise ops: 0)
    once = 3 * 6 * 8  # keys: 3 rows of 6 -> 8
    assert specgraph.summary(graph).rows[0].macs == 5 * per_step + once


@pytest.mark.parametrize("batch", [1, 8])
def test_the_memory_walk_replays_the_once_part(batch):
    from specgraph.analysis.memory.walk import memory_report
    from test_memory import TOLERANCE, _inputs, measured_peak

    graph = specgraph.check(GENERAL.format(t="T", s="S"))
    model = specgraph.build(graph).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # S long enough that W_a enc [N, S, 8], held through the loop, is a third of the peak
        report = memory_report(graph, batch, {"T": 6, "S": 300}, threads=1)
        measured = measured_peak(model, _inputs(graph, report.sizes))
    finally:
        torch.set_num_threads(threads)
    assert not report.unmodelled
    assert abs(report.inference_peak - measured) <= TOLERANCE * measured, (report.inference_peak, measured)


def test_the_cell_is_also_a_plain_block_for_one_step():
    text = GENERAL.format(t="T", s="S").replace(
        "outputs: [dec.out, dec.h]", "  one: {block: general_step, hidden: 8, from: [x0, h0, memory]}\n"
                                     "outputs: [dec.out, one.out]").replace(
        "inputs: {x: [N, T, 4], memory: [N, S, 6]}", "inputs: {x: [N, T, 4], memory: [N, S, 6], x0: [N, 4], h0: [N, 8]}")
    model = specgraph.build(text)
    model.one.load_state_dict(model.dec.cell.state_dict())
    x, memory = torch.randn(2, 1, 4), torch.randn(2, 4, 6)
    out, one = model(x, memory, x[:, 0], torch.zeros(2, 8))
    torch.testing.assert_close(out[:, 0], one)


# ---- exports of a once-hoisted cell -------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")  # torch.jit is deprecated
def test_every_export_of_a_once_hoisted_cell(tmp_path):
    import onnxruntime as ort

    graph = specgraph.check(GENERAL.format(t="T", s="S"))
    model = specgraph.build(graph).eval()
    inputs = example_inputs(graph, model, dims={"T": 4, "S": 6})
    other = example_inputs(graph, model, dims={"T": 4, "S": 9}, seed=1)  # S stays dynamic: only T is unrolled
    with torch.no_grad():
        want, want_other = model(*inputs), model(*other)

    file = tmp_path / "general.py"
    file.write_text(python_source(model))
    assert "def once(self, enc)" in file.read_text()
    spec = importlib.util.spec_from_file_location("generated_general", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module)
               and v.__module__ == module.__name__]
    generated = classes[-1]()  # the model's class comes last, after the Scan and cell classes it uses
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert_all_close(generated.eval()(*other), want_other, 1e-6)

    to_onnx(model, graph, tmp_path / "general.onnx", inputs)
    session = ort.InferenceSession(str(tmp_path / "general.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), other)})
    assert_all_close([torch.from_numpy(g) for g in got], want_other, 1e-4)

    program = export_program(model, graph, inputs)
    assert dynamic_dims(program, graph) == {"x": ["N"], "memory": ["N", "S"]}
    assert_all_close(program.module()(*other), want_other, 1e-5)

    to_torchscript(model, graph, tmp_path / "general.pt", inputs)
    assert_all_close(torch.jit.load(str(tmp_path / "general.pt"))(*inputs), want, 1e-5)


def assert_all_close(got, want, tol: float) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


# ---- located errors -------------------------------------------------------------------------------

CELL = """
specgraph: 1
inputs: {x: [N, T, 4], memory: [N, S, 6], other: [M, S, 6], h0: [N, 8]}
blocks:
  step:
    params: {hidden: int}
    states: {h: $hidden}
    context: [enc]
    inputs: [x, h, enc]
    outputs: {h: h_new}
    nodes:
      x2h:   {op: linear, out: $hidden, from: x}
      read:  {op: mean, dim: 1, from: enc}
      r2h:   {op: linear, out: $hidden}
      h2h:   {op: linear, out: $hidden, from: h}
      h_new: {op: add, from: [x2h, r2h, h2h]}
graph:
  dec: %s
outputs: [dec.out]
"""


def diagnostics(node: str, cell: str = CELL):
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(cell % node)
    return info.value.diagnostics


@pytest.mark.parametrize("node,code,words,at", [
    ("{scan: step, hidden: 8, context: {encoder: memory}}", "E301", "has no context 'encoder'", "encoder"),
    ("{scan: step, hidden: 8}", "E408", "reads context 'enc', which the scan does not bind", "dec"),
    ("{scan: step, hidden: 8, context: {enc: memroy}}", "E301", "undefined reference 'memroy'", "memroy"),
    ("{scan: step, hidden: 8, context: {enc: other}}", "E402", "context 'enc' has batch dim M", "other"),
    ("{scan: step, hidden: 8, context: {enc: memory}, init: {h: 2}}", "E204", "a node or 0", "2"),
    ("{op: linear, out: 3, from: h0, context: {enc: memory}}", "E204", "`context` applies to `scan:` nodes only",
     "context"),
], ids=["undeclared name", "unbound context", "unknown node", "other batch", "bad init", "not a scan"])
def test_context_errors_are_located_with_stable_codes(node, code, words, at):
    diags = diagnostics(node)
    assert [d.code for d in diags] == [code], [d.format() for d in diags]
    d = diags[0]
    assert words in d.message
    assert d.location.line == (CELL % node).splitlines().index(f"  dec: {node}") + 1
    assert (CELL % node).splitlines()[d.location.line - 1][d.location.col - 1:].startswith(at), d.format()
    if code == "E301" and "encoder" in words:
        assert d.hint == "did you mean 'enc'?"


def test_a_cell_must_list_its_context_after_its_states():
    bad = CELL.replace("inputs: [x, h, enc]", "inputs: [x, enc, h]")
    diags = diagnostics("{scan: step, hidden: 8, context: {enc: memory}}", bad)
    assert diags[0].code == "E204" and "[x, h, enc]" in diags[0].message
    bad = CELL.replace("context: [enc]", "context: [h]").replace("inputs: [x, h, enc]", "inputs: [x, h, h]")
    diags = diagnostics("{scan: step, hidden: 8, context: {h: memory}}", bad)
    assert diags[0].code == "E305" and "also a state" in diags[0].message


def test_context_and_zero_init_bind_nodes_written_later():
    text = CELL % "{scan: step, hidden: 8, from: x, init: {h: start}, context: {enc: scaled}}"
    text = text.replace("outputs: [dec.out]", "  scaled: {op: mul, by: 2.0, from: memory}\n"
                                              "  start: {op: linear, out: 8, from: h0}\noutputs: [dec.out]")
    graph = specgraph.check(text)
    assert [v.node for v in graph.node("dec").inputs] == ["x", "start", "scaled"]
    model = specgraph.build(graph)
    x, memory, h0 = torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(2, 8)
    cell = model.dec.cell
    h = model.start(h0)
    for t in range(3):
        h = cell.x2h(x[:, t]) + cell.r2h((2 * memory).mean(1)) + cell.h2h(h)
    torch.testing.assert_close(model(x, memory, torch.randn(2, 5, 6), h0)[:, -1], h, atol=1e-6, rtol=1e-5)
