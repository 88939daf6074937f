"""Sequence specs: shapes with a symbolic time dim, parity with torch compositions, and word2vec
on the toy corpus of the issue (V = 10, N = 4, window 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specgraph
from specgraph.train.datasets.text import Vocabulary, cbow_examples, skipgram_pairs, tokenize
from conftest import SPECS

TOY = "Hey, this is sample corpus using only one context word."


def test_sequence_specs_keep_time_symbolic():
    assert str(specgraph.check(SPECS / "char_lstm.yaml").outputs[0].value.type) == "[N, T, 96]"
    seq2seq = specgraph.check(SPECS / "seq2seq.yaml")
    assert str(seq2seq.node("encoder").outputs["out"]) == "[N, S, 512]"
    assert str(seq2seq.outputs[0].value.type) == "[N, T, 8000]"
    assert str(specgraph.check(SPECS / "lstm_forecaster.yaml").node("rnn").outputs["out"]) == "[N, T, 64]"


def test_char_lstm_equals_the_torch_composition():
    torch.manual_seed(0)
    model = specgraph.build(SPECS / "char_lstm.yaml", vocab=30, embed=8, hidden=16).eval()
    emb, lstm, head = torch.nn.Embedding(30, 8), torch.nn.LSTM(8, 16, 2, batch_first=True, dropout=0.2), torch.nn.Linear(16, 30)
    state = {**{f"embed.{k}": v for k, v in emb.state_dict().items()},
             **{f"lstm.{k}": v for k, v in lstm.state_dict().items()},
             **{f"logits.{k}": v for k, v in head.state_dict().items()}}
    model.load_state_dict(state, strict=True)
    tokens = torch.randint(0, 30, (3, 12))
    with torch.no_grad():
        want = head(lstm.eval()(emb(tokens))[0])
        torch.testing.assert_close(model(tokens), want, atol=1e-5, rtol=1e-5)


def test_seq2seq_decoder_starts_from_the_encoder_states():
    torch.manual_seed(0)
    model = specgraph.build(SPECS / "seq2seq.yaml", src_vocab=20, tgt_vocab=25, embed=6, hidden=10, layers=2).eval()
    src, tgt = torch.randint(0, 20, (2, 7)), torch.randint(0, 25, (2, 4))
    with torch.no_grad():
        _, h, c = model.encoder(model.src_embed(src))  # the lstm op's ports: out, h, c
        out = model.decoder(model.tgt_embed(tgt), h, c)[0]
        torch.testing.assert_close(model(src, tgt), model.logits(out))


def test_toy_corpus_vocabulary_and_pairs():
    tokens = tokenize(TOY)
    vocab = Vocabulary.build(tokens, order="appearance")
    assert len(vocab) == 10 and vocab.words == tokens
    ids = vocab.encode(tokens)
    pairs = skipgram_pairs(ids, window=1)
    words = [(vocab.words[a], vocab.words[b]) for a, b in pairs]
    assert words[:4] == [("hey", "this"), ("this", "hey"), ("this", "is"), ("is", "this")]
    assert words[-1] == ("word", "context") and len(words) == 18
    contexts, centres = cbow_examples(ids, window=1)
    assert contexts.shape == (8, 2)
    assert [vocab.words[c] for c in contexts[0]] == ["hey", "is"] and vocab.words[centres[0]] == "this"
    assert [vocab.words[c] for c in contexts[-1]] == ["one", "word"] and vocab.words[centres[-1]] == "context"


@pytest.mark.parametrize("spec", ["skipgram", "cbow"])
def test_word2vec_forward_gives_softmax_over_the_vocabulary(spec):
    ids = Vocabulary.build(tokenize(TOY), order="appearance").encode(tokenize(TOY))
    model = specgraph.build(SPECS / f"{spec}.yaml", vocab=10, dim=4).eval()
    if spec == "skipgram":
        batch = torch.from_numpy(skipgram_pairs(ids, 1)[:, 0])
    else:
        batch = torch.from_numpy(cbow_examples(ids, 1)[0])
    with torch.no_grad():
        probs = model(batch)
    assert probs.shape == (len(batch), 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(batch)))
    assert model.embed.weight.shape == (10, 4)
    model.train()
    probs, logits = model(batch)  # the logits (for the loss) exist in training only
    torch.testing.assert_close(torch.softmax(logits, 1), probs)


@pytest.mark.parametrize("spec", ["skipgram_ns", "cbow_ns"])
def test_negative_sampling_scores_are_dot_products(spec):
    model = specgraph.build(SPECS / f"{spec}.yaml", vocab=10, dim=4, negatives=3).eval()
    torch.nn.init.normal_(model.outputs.weight)  # the spec starts them at zero (word2vec): all scores would be 0
    words = torch.randint(0, 10, (6, 4))
    if spec == "skipgram_ns":
        first = torch.randint(0, 10, (6,))
        query = model.embed(first)
    else:
        first = torch.randint(0, 10, (6, 2))
        query = model.embed(first).mean(1)
    with torch.no_grad():
        scores = model(first, words)
        want = torch.einsum("nd,nkd->nk", query, model.outputs(words))
    torch.testing.assert_close(scores, want)


EMBED = ("specgraph: 1\nparams: {dim: 50}\ninputs: {x: {shape: [N], dtype: int64}}\n"
         "graph:\n  e: {op: embedding, num: 400, dim: $dim, %s}\n")


def test_embedding_weight_init_gives_the_asked_distribution():
    torch.manual_seed(0)
    default = specgraph.build(EMBED % "padding_idx: 3").e
    assert type(default) is torch.nn.Embedding  # torch's own init, unchanged
    uniform = specgraph.build(EMBED % 'weight_init: uniform, weight_scale: "${0.5 / dim}"').e.weight.detach()
    assert uniform.abs().max() <= 0.01 and uniform.abs().max() > 0.0099  # U(-0.5/dim, 0.5/dim) fills its range
    assert abs(float(uniform.mean())) < 2e-4
    assert abs(float(uniform.std()) - 0.02 / 12 ** 0.5) < 1e-4  # the std of U(-a, a) is 2a/√12
    assert float(specgraph.build(EMBED % "weight_init: uniform").e.weight.detach().abs().max()) <= 1.0
    zeros = specgraph.build(EMBED % "weight_init: zeros").e
    assert torch.count_nonzero(zeros.weight) == 0
    normal = specgraph.build(EMBED % "weight_init: normal, weight_scale: 0.1, padding_idx: 0").e.weight.detach()
    assert abs(float(normal[1:].std()) - 0.1) < 0.003 and abs(float(normal[1:].mean())) < 0.003
    assert torch.count_nonzero(normal[0]) == 0  # the padding vector still starts at zero
    reset = specgraph.build(EMBED % "weight_init: zeros").e
    torch.nn.init.normal_(reset.weight)
    reset.reset_parameters()
    assert torch.count_nonzero(reset.weight) == 0  # the module's reset applies the same init
    with pytest.raises(specgraph.SpecError, match="weight_scale"):
        specgraph.check(EMBED % "weight_init: zeros, weight_scale: 0.5")
    with pytest.raises(specgraph.SpecError, match="weight_init"):
        specgraph.check(EMBED % "weight_init: xavier")


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_equals_torch(norm_first, activation):
    # the spec's keys are torch.nn.TransformerEncoder's; with random weights and random layer-norm
    # affines in both, eval outputs agree
    d, heads, ff, layers = 32, 4, 48, 3
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.1, activation=activation, batch_first=True,
                                             norm_first=norm_first)
    ref = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    ours = specgraph.build(SPECS / "transformer_encoder.yaml", d_model=d, nhead=heads, dim_feedforward=ff,
                           num_layers=layers, norm_first=norm_first, activation=activation).eval()
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 7, d)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
        causal = specgraph.build(SPECS / "transformer_encoder.yaml", d_model=d, nhead=heads, dim_feedforward=ff,
                                 num_layers=layers, norm_first=norm_first, activation=activation, causal=True).eval()
        causal.load_state_dict(ref.state_dict(), strict=True)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(7)
        torch.testing.assert_close(causal(x), ref(x, mask=mask, is_causal=True), atol=1e-5, rtol=1e-5)
        # causal: the output at t does not depend on later positions
        y = x.clone()
        y[:, 4:] = torch.randn(2, 3, d)
        torch.testing.assert_close(causal(y)[:, :4], causal(x)[:, :4], atol=1e-6, rtol=1e-6)
