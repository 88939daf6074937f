"""Shared by the export, passes and compile tests: every spec of the folder, at test-sized params.

Params that only scale a spec up (vocabularies, widths, depths, tile sizes) are set small where
the spec has them, to keep the suite fast on 2 cores; most torchvision classifiers (resnet50,
googlenet, vgg16 ...) run at full size, and every one at full size in test_torchvision_parity.py
and test_zoo_cnn.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import specgraph
from conftest import spec_files

SPECS = spec_files()
IDS = [str(p.relative_to(p.parents[1])) if p.parent.name != "specs" else p.stem for p in SPECS]

# spec id -> params overriding the spec's, for speed only (the spec's structure is unchanged)
SMALL = {
    "unet": {"size": 188},  # the smallest tile every bridge lines up for; 572 costs 10x more
    "unet_padded": {"base": 8, "size": 64},
    "seq2seq": {"src_vocab": 100, "tgt_vocab": 100, "embed": 16, "hidden": 32},
    "seq2seq_luong": {"src_vocab": 100, "tgt_vocab": 100, "embed": 16, "hidden": 32},
    # Depths cut to what still holds every kind of unit (a stage's first, strided one and a
    # repeated one with its skip edge): exporting costs time per node, not per pixel.
    # three layers at least and two depths: the dense layers are a loop (a width step is read off
    # three copies), one DenseBlock class for blocks of other depths
    "densenet121": {"block_config": [3, 4, 3, 3]},
    "shufflenet_v2_x1_0": {"stages_repeats": [1, 2, 1]},
    "mobilenet_v2": {"settings": [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2], [6, 64, 1, 2], [6, 96, 1, 1],
                                  [6, 160, 1, 2], [6, 320, 1, 1]]},
    "mnasnet1_0": {"stacks": [[3, 2, 3, 2], [5, 2, 3, 1], [5, 2, 6, 1], [3, 1, 6, 1], [5, 2, 6, 1], [3, 1, 6, 1]]},
    # every kind of block kept (shifted and not, each stage, merging): fewer of them
    "swin_t": {"depths": [2, 2, 2, 2]},
    "swin_v2_t": {"depths": [2, 2, 2, 2]},
    # the image fixes the windows: 64 -> 32 after the stem, blocks at 16, 8, 4, 2 in 2x2 windows
    "maxvit_t": {"image_size": 64, "partition_size": 2, "stem_channels": 16, "block_channels": [16, 32, 48, 64],
                 "block_layers": [1, 2, 1, 1], "head_dim": 8},
    # by their own depth multiplier (ceil(n * depth_mult) blocks a stage): a half or a third of the
    # blocks, every kind of unit kept (fused and not, strided, repeated with its skip edge)
    "efficientnet_b0": {"depth_mult": 0.5},
    "efficientnet_v2_s": {"depth_mult": 0.3},
}


def spec_id(path: Path) -> str:
    return IDS[SPECS.index(path)]


def load_case(path: Path, *, check_inputs: bool = True, **params):
    """(graph, model) for a spec at its test-sized params, batch-norm statistics randomised
    (``check_inputs=False``: for a test that runs it at sizes the spec does not declare)."""
    graph = specgraph.check(path, **{**SMALL.get(spec_id(path), {}), **params})
    model = specgraph.build(graph, check_inputs=check_inputs)
    randomize_norm_stats(model)
    return graph, model.eval()


def randomize_zero_params(model: nn.Module, seed: int = 1) -> None:
    """Give parameters that start at zero (word2vec's output vectors, a zero-initialised head)
    small random values: with a table of zeros every score is 0 and an export's comparison proves
    nothing."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1)


def randomize_norm_stats(model: nn.Module, seed: int = 0) -> None:
    """Give batch norms non-trivial statistics and affine params, so that folding them is tested
    (a fresh batch norm — mean 0, var 1, weight 1, bias 0 — is the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


def as_tuple(result) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_outputs_close(got, want, atol: float = 1e-4, rtol: float = 1e-4) -> None:
    got, want = as_tuple(got), as_tuple(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = torch.as_tensor(g)
        assert tuple(g.shape) == tuple(w.shape)
        torch.testing.assert_close(g, w.detach(), atol=atol, rtol=rtol)


# Recurrent specs: the symbolic dims torch.export (and so ONNX) fixes at the example size, and
# why. Every other symbolic dim stays dynamic. test_compile.py asserts this is the whole set.
RECURRENT_TIME = ("the sequence length: the loop over time steps is unrolled into the trace — a `scan:` "
                  "node is a Python loop, and torch.export decomposes torch's rnn/lstm/gru step by step")
RECURRENT_FIXED_DIMS: dict[str, dict[str, str]] = {
    "bigru_classifier": {"T": RECURRENT_TIME},
    "char_lstm": {"T": RECURRENT_TIME},
    "lstm_forecaster": {"T": RECURRENT_TIME},
    "seq2seq": {"S": RECURRENT_TIME, "T": RECURRENT_TIME},
    "seq2seq_luong": {"S": RECURRENT_TIME, "T": RECURRENT_TIME},
}


# The sequence length of the example inputs traces are taken with: the recurrent specs unroll
# their loop over it, so a short one keeps their exported graphs (and the tests) small.
SEQ_DIMS = {"T": 8, "S": 8}


# Specs traced at other sizes, and why. torch.export guards on a dim being 1 and on which views
# need copies: a Swin at 32x32 has a 1x1 last stage, and an export traced there holds only for
# inputs whose stages are 1x1 too. At 40 and at alternate_inputs' 48 every stage pads to the
# same windows (two per side in the first, one after), so the one export serves both.
TRACE_DIMS = {"swin_t": {"H": 40, "W": 40}, "swin_v2_t": {"H": 40, "W": 40}}


def trace_inputs(graph, model):
    """The example inputs exports are traced with in these tests (batch 2, sequences of 8)."""
    from specgraph.torch.export.formats import example_inputs

    return example_inputs(graph, model, dims={**SEQ_DIMS, **TRACE_DIMS.get(graph.name, {})})


def alternate_inputs(graph, model):
    """Inputs of other sizes wherever the export is dynamic: batch 1, other free dims 48."""
    from specgraph.torch.export.formats import example_inputs, fixed_dims

    fixed = fixed_dims(graph)
    dims = {**SEQ_DIMS, "N": 1}
    for t in graph.inputs.values():
        for d in t.shape:
            if not isinstance(d, int) and str(d) != "N" and not fixed.keys() & d.symbols:
                dims[str(d)] = 48
    return example_inputs(graph, model, dims=dims, seed=1)
