"""specs/char_transformer.yaml: equal to a plain-PyTorch GPT-style model built from
torch.nn.TransformerEncoderLayer (same state_dict keys, same logits in eval and in training),
causal for real (no logit depends on a later token), and its weights independent of the
sequence length. Training it against char_lstm is in test_train_data.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import specgraph
from conftest import SPECS

SPEC = SPECS / "char_transformer.yaml"
SMALL = dict(vocab=30, d_model=32, nhead=4, dim_feedforward=48, num_layers=3, max_len=40)


class ReferenceCharTransformer(nn.Module):
    """The same model written by hand: tokens [N, T] -> logits [N, T, vocab], attributes named so
    that its state_dict keys are the spec's (``layers`` is torch.nn.TransformerEncoder's list)."""

    def __init__(self, vocab, d_model, nhead, dim_feedforward, num_layers, max_len, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False).layers
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.logits = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.drop(self.embed(tokens) + self.pos_embedding[:, :t])
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.logits(self.norm(x))


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter (layer-norm affines too) drawn at random, so that nothing is an identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def test_char_transformer_equals_a_plain_pytorch_gpt():
    seq_len = 24
    ref = randomized(ReferenceCharTransformer(**SMALL, dropout=0.0))
    ours = specgraph.build(SPEC, **SMALL, dropout=0.0)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    tokens = torch.randint(0, SMALL["vocab"], (3, seq_len), generator=torch.Generator().manual_seed(1))
    for mode in (True, False):  # training (what the trainer runs; no dropout here) and eval
        ours.train(mode), ref.train(mode)
        torch.testing.assert_close(ours(tokens), ref(tokens), atol=1e-5, rtol=1e-5)
    assert ours(tokens).shape == (3, seq_len, SMALL["vocab"])


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_char_transformer_is_causal(mode):
    # changing the tokens after position t leaves the logits at 0..t exactly as they were;
    # changing token t itself changes them (so the comparison can fail)
    seq_len = 16
    model = specgraph.build(SPEC, **SMALL, dropout=0.0).train(mode == "train")
    randomized(model)
    gen = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, SMALL["vocab"], (4, seq_len), generator=gen)
    with torch.no_grad():
        base = model(tokens)
        for t in (0, 5, seq_len - 2):
            later = tokens.clone()
            later[:, t + 1:] = (later[:, t + 1:] + torch.randint(1, SMALL["vocab"], (4, seq_len - t - 1),
                                                                 generator=gen)) % SMALL["vocab"]
            changed = model(later)
            torch.testing.assert_close(changed[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=1e-6)
            assert (changed[:, t + 1:] - base[:, t + 1:]).abs().amax() > 1e-3  # the later logits did move
            here = tokens.clone()
            here[:, t] = (here[:, t] + 1) % SMALL["vocab"]
            assert (model(here)[:, t] - base[:, t]).abs().amax() > 1e-3


def test_one_model_serves_every_sequence_length_up_to_max_len():
    # the input is [N, T]: the position embedding [1, max_len, d] is sliced to T on each call, so
    # (causal) the logits of a 12-token prefix are the first 12 of the 32-token sequence's
    graph = specgraph.check(SPEC, **SMALL)
    assert str(graph.inputs["tokens"]) == "[N, T]" and str(graph.node("positions").out) == f"[1, T, {SMALL['d_model']}]"
    model = randomized(specgraph.build(graph)).eval()
    tokens = torch.randint(0, SMALL["vocab"], (2, SMALL["max_len"]), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(tokens)
        for t in (1, 12, 32):
            torch.testing.assert_close(model(tokens[:, :t]), full[:, :t], atol=1e-5, rtol=1e-5)


def test_a_sequence_longer_than_the_position_embedding_is_refused_on_the_call():
    # T is known only on the call: the input check tells it before any op runs, at the slice's
    # line, naming both sizes (torch would clip the table and fail later, at the add, with neither
    # name); without the input check the slice itself refuses it
    model = specgraph.build(SPEC, **SMALL)
    tokens = torch.zeros(2, SMALL["max_len"] + 1, dtype=torch.long)
    with pytest.raises(specgraph.InputError) as e:
        model(tokens)
    text = str(e.value)
    assert "char_transformer.yaml:" in text and "error[E405] node 'positions'" in text
    assert f"it needs 0 <= 0 < T <= {SMALL['max_len']}" in text and f"T = {SMALL['max_len'] + 1}" in text
    with pytest.raises(ValueError, match=rf"slice \[0:T\] of dim 1 needs 0 <= 0 < T <= {SMALL['max_len']}, but "
                                         rf"this input has T = {SMALL['max_len'] + 1}"):
        specgraph.build(SPEC, check_inputs=False, **SMALL)(tokens)
