"""Sequence ops against torch: embedding, the rnn/lstm/gru library layers, variational dropout
and zoneout — op by op, and inside small specs that use the lstm's named ports."""

from __future__ import annotations

import pickle

import pydantic
import pytest
import torch

import specgraph
from specgraph import SpecError
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.ops import ShapeError, get_op

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

N, T = symbol("N"), symbol("T")
TORCH_LAYERS = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def build_op(op_name: str, params: dict, *shapes, dtype: str = "float32"):
    op = get_op(op_name)
    p = op.Params.model_validate(params)
    types = [TensorType(tuple(s), dtype) for s in shapes]
    return op, p, types, op.build(p, types)


def torch_layer(op_name: str, params: dict, features: int) -> torch.nn.Module:
    """The torch layer an op's params describe, with torch's own keyword names."""
    kw = {k: v for k, v in params.items() if k not in ("hidden",)}
    kw.setdefault("batch_first", True)
    return TORCH_LAYERS[op_name](features, params["hidden"], **kw)


# ---- library layers equal torch's ------------------------------------------------------------

LAYER_CASES = [
    ("rnn", {"hidden": 7}),
    ("rnn", {"hidden": 7, "nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("rnn", {"hidden": 5, "batch_first": False, "bias": False}),
    ("gru", {"hidden": 7}),
    ("gru", {"hidden": 6, "num_layers": 2, "bidirectional": True}),
    ("gru", {"hidden": 6, "num_layers": 2, "batch_first": False, "dropout": 0.3}),
    ("lstm", {"hidden": 7}),
    ("lstm", {"hidden": 8, "num_layers": 2}),
    ("lstm", {"hidden": 8, "num_layers": 2, "bidirectional": True}),
    ("lstm", {"hidden": 9, "proj_size": 4}),
    ("lstm", {"hidden": 9, "proj_size": 4, "num_layers": 2, "bidirectional": True,
              "batch_first": False}),
    ("lstm", {"hidden": 6, "bias": False, "num_layers": 3}),
]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("op_name,params", LAYER_CASES)
def test_layer_equals_torch(op_name, params, with_state):
    torch.manual_seed(0)
    batch, steps, features = 3, 5, 4
    x_shape = (batch, steps, features) if params.get("batch_first", True) else (steps, batch, features)
    reference = torch_layer(op_name, params, features).eval()
    op, p, types, _ = build_op(op_name, params, x_shape)
    expected_states = op.infer(p, types)[1:]
    state_shapes = [tuple(t.shape) for t in expected_states]
    if with_state:
        types = types + [TensorType(s) for s in state_shapes]
        assert op.infer(p, types)[1:] == expected_states
    ours = op.build(p, types)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in reference.named_parameters()]
    assert op.num_params(p, types) == sum(t.numel() for t in reference.parameters())

    x = torch.randn(x_shape)
    states = [torch.randn(s) for s in state_shapes] if with_state else []
    if op_name == "lstm":
        want_out, (want_h, want_c) = reference(x, tuple(states) if states else None)
        want = (want_out, want_h, want_c)
    else:
        want = reference(x, *states)
    got = ours(x, *states)
    assert len(got) == len(op.output_ports(p)) == len(want)
    for port, g, w, t in zip(op.output_ports(p), got, want, op.infer(p, types)):
        assert torch.equal(g, w), port
        assert tuple(g.shape) == tuple(t.shape), port


def test_lstm_ports_and_symbolic_time():
    op = get_op("lstm")
    p = op.Params.model_validate({"hidden": 10, "proj_size": 4, "num_layers": 2, "bidirectional": True})
    out, h, c = op.infer(p, [TensorType((N, T, 6))])
    assert op.output_ports(p) == ("out", "h", "c")
    assert (out.shape, h.shape, c.shape) == ((N, T, 8), (4, N, 4), (4, N, 10))
    p_tn = op.Params.model_validate({"hidden": 10, "batch_first": False})
    out, h, c = op.infer(p_tn, [TensorType((T, N, 6))])
    assert (out.shape, h.shape, c.shape) == ((T, N, 10), (1, N, 10), (1, N, 10))
    gru = get_op("gru")
    assert gru.output_ports(gru.Params.model_validate({"hidden": 3})) == ("out", "h")


def test_macs_count_every_step_and_none_for_symbolic_time():
    op = get_op("lstm")
    p = op.Params.model_validate({"hidden": 8, "num_layers": 2, "proj_size": 3})
    x = TensorType((N, 5, 6))
    # per step: layer 0: 4*8*(6+3) + 3*8, layer 1: 4*8*(3+3) + 3*8
    assert op.macs(p, [x], op.infer(p, [x])) == 5 * ((288 + 24) + (192 + 24))
    xs = TensorType((N, T, 6))
    assert op.macs(p, [xs], op.infer(p, [xs])) is None


def test_dropout_between_layers_is_active_in_training_only():
    torch.manual_seed(0)
    _, _, _, gru = build_op("gru", {"hidden": 16, "num_layers": 2, "dropout": 0.5}, (2, 6, 4))
    x = torch.randn(2, 6, 4)
    gru.train()
    assert not torch.equal(gru(x)[0], gru(x)[0])
    gru.eval()
    assert torch.equal(gru(x)[0], gru(x)[0])


# ---- embedding ---------------------------------------------------------------------------------

def test_embedding_shape_and_padding_row_gets_no_gradient():
    op, p, types, emb = build_op("embedding", {"num": 10, "dim": 4, "padding_idx": 0}, (N, T),
                                 dtype="int64")
    assert op.infer(p, types) == [TensorType((N, T, 4), "float32")]
    assert torch.equal(emb.weight[0], torch.zeros(4))
    ids = torch.tensor([[0, 3, 0, 5], [7, 0, 3, 1]])
    out = emb(ids)
    assert out.shape == (2, 4, 4) and torch.equal(out[0, 0], torch.zeros(4))
    (out * torch.randn_like(out)).sum().backward()
    grad = emb.weight.grad
    assert torch.equal(grad[0], torch.zeros(4))
    assert all(grad[i].abs().sum() > 0 for i in (1, 3, 5, 7))
    assert all(torch.equal(grad[i], torch.zeros(4)) for i in (2, 4, 6, 8, 9))


def test_embedding_equals_torch_and_max_norm_renormalizes():
    torch.manual_seed(0)
    _, _, _, emb = build_op("embedding", {"num": 6, "dim": 5, "max_norm": 1.0}, (3,), dtype="int32")
    ref = torch.nn.Embedding(6, 5, max_norm=1.0)
    emb.load_state_dict(ref.state_dict(), strict=True)
    ids = torch.tensor([0, 2, 5], dtype=torch.int32)
    assert torch.equal(emb(ids), ref(ids))
    assert (emb(ids).norm(dim=-1) <= 1.0 + 1e-6).all()


# ---- variational dropout -----------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [True, False])
def test_variational_dropout_shares_one_mask_over_time(batch_first):
    torch.manual_seed(0)
    batch, steps, features, p = 4, 9, 64, 0.4
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    _, _, _, drop = build_op("variational_dropout", {"p": p, "batch_first": batch_first}, shape)
    x = torch.rand(shape) + 0.5  # never zero, so a zero is the mask's doing
    out = drop.train()(x)
    if not batch_first:
        x, out = x.transpose(0, 1), out.transpose(0, 1)  # -> [N, T, F]
    dropped = out == 0
    for n in range(batch):  # every time step zeroes the same features of a sequence
        assert torch.equal(dropped[n], dropped[n, :1].expand(steps, features))
    kept = ~dropped
    assert torch.allclose(out[kept], x[kept] / (1 - p))
    assert 0 < dropped.float().mean() < 1
    masks = dropped[:, 0]  # [N, F]: one mask per sequence, not one for the whole batch
    assert any(not torch.equal(masks[0], masks[n]) for n in range(1, batch))
    drop.eval()
    assert torch.equal(drop(x), x)


def test_variational_dropout_edge_probabilities():
    x = torch.randn(2, 3, 4)
    _, _, _, none = build_op("variational_dropout", {"p": 0}, (2, 3, 4))
    assert torch.equal(none.train()(x), x)
    _, _, _, every = build_op("variational_dropout", {"p": 1}, (2, 3, 4))
    assert torch.equal(every.train()(x), torch.zeros_like(x))


# ---- zoneout ---------------------------------------------------------------------------------

def test_zoneout_train_picks_prev_or_new_and_eval_is_the_expectation():
    torch.manual_seed(0)
    p = 0.3
    _, _, _, zone = build_op("zoneout", {"p": p}, (64, 32), (64, 32))
    new, prev = torch.randn(64, 32), torch.randn(64, 32)
    out = zone.train()(new, prev)
    from_prev, from_new = out == prev, out == new
    assert (from_prev | from_new).all()  # each unit is exactly one of the two
    assert abs(from_prev.float().mean().item() - p) < 0.05
    assert not torch.equal(zone(new, prev), out)  # a fresh mask per call
    zone.eval()
    assert torch.equal(zone(new, prev), p * prev + (1 - p) * new)


def test_zoneout_gradient_reaches_both_states():
    torch.manual_seed(0)
    _, _, _, zone = build_op("zoneout", {"p": 0.5}, (8, 8), (8, 8))
    new, prev = torch.randn(8, 8, requires_grad=True), torch.randn(8, 8, requires_grad=True)
    zone.train()(new, prev).sum().backward()
    assert torch.equal(new.grad + prev.grad, torch.ones(8, 8))  # each unit from exactly one
    assert new.grad.sum() > 0 and prev.grad.sum() > 0


# ---- errors ----------------------------------------------------------------------------------

def infer_error(op_name, params, *types) -> ShapeError:
    op = get_op(op_name)
    with pytest.raises(ShapeError) as info:
        op.infer(op.Params.model_validate(params), list(types))
    return info.value


@pytest.mark.parametrize("code,op_name,params,types", [
    ("E409", "embedding", {"num": 5, "dim": 3}, [TensorType((N, T))]),
    ("E409", "lstm", {"hidden": 4}, [TensorType((N, T), "int64")]),
    ("E410", "lstm", {"hidden": 4}, [TensorType((N, 8))]),
    ("E406", "gru", {"hidden": 4}, [TensorType((N, T, symbol("F")))]),
    ("E408", "lstm", {"hidden": 4}, [TensorType((N, T, 3)), TensorType((1, N, 4))]),
    ("E402", "lstm", {"hidden": 4, "num_layers": 2},
     [TensorType((N, T, 3)), TensorType((1, N, 4)), TensorType((1, N, 4))]),
    ("E402", "lstm", {"hidden": 4, "proj_size": 2},
     [TensorType((N, T, 3)), TensorType((1, N, 4)), TensorType((1, N, 4))]),
    ("E402", "gru", {"hidden": 4}, [TensorType((N, T, 3)), TensorType((1, symbol("B"), 4))]),
    ("E402", "rnn", {"hidden": 4, "batch_first": False},
     [TensorType((T, N, 3)), TensorType((1, T, 4))]),
    ("E409", "rnn", {"hidden": 4}, [TensorType((N, T, 3)), TensorType((1, N, 4), "float64")]),
    ("E410", "variational_dropout", {}, [TensorType((N, 8))]),
    ("E402", "zoneout", {"p": 0.1}, [TensorType((N, 8)), TensorType((N, 9))]),
    ("E409", "zoneout", {"p": 0.1}, [TensorType((N, 8)), TensorType((N, 8), "float64")]),
])
def test_shape_errors(code, op_name, params, types):
    assert infer_error(op_name, params, *types).code == code


def test_int_sequence_into_lstm_hints_at_embedding():
    e = infer_error("lstm", {"hidden": 4}, TensorType((N, T), "int64"))
    assert "embedding" in e.hint


@pytest.mark.parametrize("op_name,params", [
    ("lstm", {"hidden": 4, "dropout": 0.2}),              # one layer: dropout would do nothing
    ("lstm", {"hidden": 4, "proj_size": 4}),              # projection must be smaller
    ("lstm", {"hidden": 4, "proj_size": -1}),
    ("rnn", {"hidden": 4, "nonlinearity": "sigmoid"}),
    ("gru", {"hidden": 4, "proj_size": 2}),               # gru has no projection
    ("gru", {"hidden": 0}),
    ("gru", {"hidden": 4, "num_layers": 2, "dropout": 1.5}),
    ("rnn", {"hidden": 4, "bidirectional": 1}),           # strict: no int -> bool
    ("embedding", {"num": 5, "dim": 3, "padding_idx": 5}),
    ("embedding", {"num": 5, "dim": 3, "max_norm": 0}),
    ("embedding", {"num": 5}),
    ("zoneout", {"p": 0}),
    ("zoneout", {"p": 1}),
    ("zoneout", {}),
    ("variational_dropout", {"p": 1.2}),
])
def test_bad_params_are_refused(op_name, params):
    with pytest.raises(pydantic.ValidationError):
        get_op(op_name).Params.model_validate(params)


def test_describe():
    def describe(op_name, params):
        op = get_op(op_name)
        return op.describe(op.Params.model_validate(params))

    assert describe("lstm", {"hidden": 32, "num_layers": 2, "bidirectional": True}) == "32 ×2 bi"
    assert describe("lstm", {"hidden": 32, "proj_size": 8}) == "32 proj 8"
    assert describe("rnn", {"hidden": 16, "nonlinearity": "relu"}) == "16 relu"
    assert describe("embedding", {"num": 100, "dim": 8, "padding_idx": 0}) == "100×8 pad 0"
    assert describe("zoneout", {"p": 0.1}) == "p=0.1"
    assert [get_op(n).category for n in ("embedding", "rnn", "gru", "lstm", "variational_dropout",
                                         "zoneout")] == ["embedding"] + ["recurrent"] * 3 + ["dropout"] * 2


# ---- in a spec: the lstm's ports ----------------------------------------------------------------

PORTS_SPEC = """
specgraph: 1
name: lstm_ports
inputs:
  x: [N, T, 8]
graph:
  lstm: {op: lstm, hidden: 32, num_layers: 2}
  head: {op: linear, out: 5, from: lstm.out}
  state_head: {op: linear, out: 3, from: lstm.h}
outputs: [head, state_head]
"""


def test_spec_with_lstm_ports_checks_builds_runs_and_loads_torch_weights():
    graph = specgraph.check(PORTS_SPEC)
    lstm = graph.node("lstm")
    assert {k: str(v) for k, v in lstm.outputs.items()} == {
        "out": "[N, T, 32]", "h": "[2, N, 32]", "c": "[2, N, 32]"}
    assert str(graph.node("head").out) == "[N, T, 5]"
    assert str(graph.node("state_head").out) == "[2, N, 3]"

    torch.manual_seed(0)
    model = specgraph.build(PORTS_SPEC)
    reference = torch.nn.LSTM(8, 32, num_layers=2, batch_first=True)
    head, state_head = torch.nn.Linear(32, 5), torch.nn.Linear(32, 3)
    weights = {**{f"lstm.{k}": v for k, v in reference.state_dict().items()},
               **{f"head.{k}": v for k, v in head.state_dict().items()},
               **{f"state_head.{k}": v for k, v in state_head.state_dict().items()}}
    model.load_state_dict(weights, strict=True)
    x = torch.randn(3, 11, 8)
    got_head, got_state = model(x)
    out, (h, _) = reference(x)
    assert torch.allclose(got_head, head(out)) and torch.allclose(got_state, state_head(h))
    assert got_head.shape == (3, 11, 5) and got_state.shape == (2, 3, 3)
    assert model(torch.randn(2, 4, 8))[0].shape == (2, 4, 5)  # T varies at run time
    restored = pickle.loads(pickle.dumps(model))  # the torch.save of a whole model
    assert torch.equal(restored(x)[0], got_head)


CHAR_LSTM = """
specgraph: 1
name: char_lstm_tiny
params: {vocab: 12}
inputs:
  ids: {shape: [N, T], dtype: int64}
graph:
  embed: {op: embedding, num: $vocab, dim: 16, padding_idx: 0}
  drop: {op: variational_dropout, p: 0.25}
  encoder: {op: lstm, hidden: 24}
  decoder: {op: lstm, hidden: 24, from: [drop, encoder.h, encoder.c]}
  zone: {op: zoneout, p: 0.1, from: [decoder.h, encoder.h]}
  logits: {op: linear, out: $vocab, from: decoder.out}
outputs: [logits, zone]
"""


def test_spec_with_embedding_states_between_lstms_and_sequence_dropout():
    graph = specgraph.check(CHAR_LSTM)
    assert str(graph.node("embed").out) == "[N, T, 16]"
    assert str(graph.node("logits").out) == "[N, T, 12]"
    assert str(graph.node("zone").out) == "[1, N, 24]"
    model = specgraph.build(CHAR_LSTM).eval()
    ids = torch.randint(0, 12, (3, 7))
    logits, zone = model(ids)
    assert logits.shape == (3, 7, 12) and zone.shape == (1, 3, 24)
    assert torch.equal(model(ids)[0], logits)  # eval: no dropout noise
    model.train()
    loss = model(ids)[0].sum()
    loss.backward()
    assert model.embed.weight.grad[0].abs().sum() == 0
    summary = specgraph.summary(CHAR_LSTM)
    assert summary is not None


@pytest.mark.parametrize("text,code", [
    (PORTS_SPEC.replace("x: [N, T, 8]", "x: {shape: [N, T], dtype: int64}"), "E409"),
    (CHAR_LSTM.replace("dtype: int64", "dtype: float32"), "E409"),
    (CHAR_LSTM.replace("from: [drop, encoder.h, encoder.c]", "from: [drop, encoder.h]"), "E408"),
    (CHAR_LSTM.replace("decoder: {op: lstm, hidden: 24,", "decoder: {op: lstm, hidden: 20,"), "E402"),
])
def test_spec_errors_point_at_the_node(text, code):
    with pytest.raises(SpecError) as info:
        specgraph.check(text)
    assert code in info.value.codes, str(info.value)
