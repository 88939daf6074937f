"""The windowed-attention transformers of torchvision's zoo, exactly: Swin V2 (specs/swin_v2_t.yaml)
and MaxViT (specs/maxvit_t.yaml) — parameter counts, state_dict keys, strict loads, computed
buffers, eval outputs within 1e-5 with random weights and batch-norm statistics, training draws —
and Swin V1 (specs/swin_t.yaml) at any input size, H and W symbolic, as torchvision runs it.

The logits of these models are an average over every position, which hides a wrong attention
(a bias scaled by 15 instead of 16 moves them by 1e-6): each comparison also takes the feature
map before the head, read from the built module's graph by fx's interpreter, and the attention
weights are drawn large enough to matter (temperatures past Swin V2's clamp at 100)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torchvision.models.maxvit import MaxVit
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

import specgraph
from conftest import SPECS
from export_cases import randomize_norm_stats
from test_torchvision_parity import SWIN_DROPOUT, SWIN_PADDED, _randomized, n_params

tv = torchvision.models


def run_keeping(model: torch.nn.Module, x: torch.Tensor, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(the output, the value of the last fx node whose name starts with ``prefix``) of ``model``
    on ``x``: ``features_`` is the map before the head."""
    seen = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            seen[n.name] = out = super().run_node(n)
            return out

    out = Recorder(model).run(x)
    return out, seen[[n.name for n in model.graph.nodes if n.name.startswith(prefix)][-1]]


def reference_keeping(model: torch.nn.Module, x: torch.Tensor, part: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(the output, the output of the submodule ``part``) of the torchvision ``model`` on ``x``."""
    seen = []
    handle = part.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        return model(x), seen[-1]
    finally:
        handle.remove()


def assert_equal_runs(ours, ref, x, prefix: str, part: torch.nn.Module) -> None:
    """The outputs and the map before the head, within 1e-5."""
    with torch.no_grad():
        got, got_map = run_keeping(ours, x, prefix)
        want, want_map = reference_keeping(ref, x, part)
    torch.testing.assert_close(got_map, want_map, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def sharpened(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights (``_randomized``), with attention that decides: its weights x4, Swin V2's
    position-bias MLP x40 (biases over the sigmoid's whole range) and its temperatures from 3
    to 300 (some clamped at 100), MaxViT's bias tables x40."""
    _randomized(model, seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.copy_(torch.empty(p.shape).uniform_(math.log(3), math.log(300), generator=gen))
            elif ".cpb_mlp." in name or name.endswith("relative_position_bias_table"):
                p.mul_(40)
            elif ".attn." in name or ".attn_layer.1." in name:
                p.mul_(4)
    return model


def assert_same_buffers(ours: torch.nn.Module, ref: torch.nn.Module, kinds: tuple[str, ...]) -> int:
    """A freshly built model already holds torchvision's computed tables: nothing needs loading."""
    checked = 0
    for key, theirs in ref.state_dict().items():
        if key.endswith(kinds):
            mine = ours.state_dict()[key]
            assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), key
            checked += 1
    return checked


# ---- Swin V2 --------------------------------------------------------------------------------

# Windows of 4x3 at 56 -> 28, 14, 7, 4 tokens: padded in every stage, shifted along both dims,
# then along W only, a 7x7 map merged (odd sizes).
SWIN_V2_SMALL = {"patch_size": [2, 2], "embed_dim": 16, "depths": [2, 2, 2, 2], "num_heads": [2, 2, 4, 4],
                 "window_size": [4, 3], "stochastic_depth_prob": 0.3, "num_classes": 5}


def _swin_v2(settings: dict):
    return SwinTransformer(**settings, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2)


def test_swin_v2_t_is_torchvisions():
    # the full model: parameters, keys, the computed tables (a 15x15 coordinate table and the index
    # of each 8x8 window), a strict load and equal outputs (at 64x64: every stage one window)
    ref = sharpened(tv.swin_v2_t(), seed=20).eval()
    ours = specgraph.build(SPECS / "swin_v2_t.yaml")
    assert n_params(ours) == n_params(ref) == 28_351_570
    # the same keys; torchvision registers norm1 (and qkv, proj) before what they follow
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert assert_same_buffers(ours, ref, ("relative_coords_table", "relative_position_index")) == 2 * 12
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    assert_equal_runs(ours, ref, torch.randn(1, 3, 64, 64), "features_", ref.features)


@pytest.mark.parametrize("size", [(56, 56), (40, 72), (17, 9)], ids=["56", "40x72", "17x9"])
def test_swin_v2_small_equals_torchvision_at_any_size(size):
    ref = sharpened(_swin_v2(SWIN_V2_SMALL), seed=21).eval()
    ours = specgraph.build(SPECS / "swin_v2_t.yaml", **SWIN_V2_SMALL)
    assert n_params(ours) == n_params(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, *size)
    assert_equal_runs(ours, ref, x, "features_", ref.features)
    ours.train()
    ref.train()
    torch.manual_seed(7)
    got = ours(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)  # stochastic depth: the same draws


@pytest.mark.parametrize("params,weights", [
    ({"depths": [2, 2, 18, 2], "stochastic_depth_prob": 0.3}, tv.Swin_V2_S_Weights.DEFAULT),
    ({"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "stochastic_depth_prob": 0.5},
     tv.Swin_V2_B_Weights.DEFAULT),
], ids=["swin_v2_s", "swin_v2_b"])
def test_swin_v2_s_and_b_are_set_s_of_the_spec(params, weights):
    assert specgraph.summary(SPECS / "swin_v2_t.yaml", **params).total_params == weights.meta["num_params"]


# ---- MaxViT ---------------------------------------------------------------------------------

# 64 -> 32 after the stem, blocks at 16, 8, 4, 2: 2x2 windows everywhere, grids of stride 8 to 1.
MAXVIT_SMALL = {"image_size": 64, "stem_channels": 8, "block_channels": [8, 16, 24, 32], "block_layers": [1, 2, 1, 2],
                "head_dim": 8, "partition_size": 2, "stochastic_depth_prob": 0.3, "num_classes": 5}


def test_maxvit_t_is_torchvisions():
    ref = sharpened(tv.maxvit_t(), seed=22)
    randomize_norm_stats(ref, seed=23)
    ref.eval()
    ours = specgraph.build(SPECS / "maxvit_t.yaml")
    assert n_params(ours) == n_params(ref) == 30_919_624
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert assert_same_buffers(ours, ref, ("relative_position_index",)) == 2 * 11
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    assert_equal_runs(ours, ref, torch.randn(1, 3, 224, 224), "blocks_", ref.blocks[-1])


def test_maxvit_small_equals_torchvision_in_eval_and_training():
    settings = {k: v for k, v in MAXVIT_SMALL.items() if k != "image_size"}
    ref = sharpened(MaxVit(input_size=(64, 64), **settings), seed=24)
    randomize_norm_stats(ref, seed=25)
    ours = specgraph.build(SPECS / "maxvit_t.yaml", **MAXVIT_SMALL)
    assert n_params(ours) == n_params(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    ours.eval()
    ref.eval()
    assert_equal_runs(ours, ref, x, "blocks_", ref.blocks[-1])
    ours.train()
    ref.train()
    torch.manual_seed(7)
    got = ours(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)  # batch statistics, the same draws


def test_maxvit_image_size_that_does_not_split_into_windows_is_a_located_error():
    # torchvision's input_size check, as a requirement of the block whose map does not split
    with pytest.raises(specgraph.SpecError) as e:
        specgraph.check(SPECS / "maxvit_t.yaml", image_size=200)  # 200 -> 100 -> 50: no 7x7 windows
    (d,) = e.value.diagnostics
    assert d.code == "E310" and d.path == "blocks.0" and "partition_size × partition_size windows" in d.message
    assert "x = the tensor [N, 64, 100, 100]" in d.format()
    specgraph.check(SPECS / "maxvit_t.yaml", image_size=448)  # 112, 56, 28, 14: it does


# ---- Swin V1 at any size --------------------------------------------------------------------

def test_swin_t_takes_any_input_size():
    graph = specgraph.check(SPECS / "swin_t.yaml")
    assert str(graph.inputs["image"]) == "[N, 3, H, W]" and str(graph.outputs[0].value.type) == "[N, 1000]"
    # the second stage, ⌈(H/4)/2⌉ high, padded to whole 7x7 windows: ⌈(H/8)/7⌉ of them, exactly
    assert str(graph.node("features.3.1.attn.parts.padded").out) == "[N, 7*⌊(H + 52)/56⌋, 7*⌊(W + 52)/56⌋, 192]"
    assert str(graph.node("features.3.1.attn.mask.0").out) == "[⌊(H + 52)/56⌋*⌊(W + 52)/56⌋, 49, 49]"
    assert str(graph.node("features.3.1.attn.back.crop_w").out) == "[N, ⌊(H + 4)/8⌋, ⌊(W + 4)/8⌋, 192]"


@pytest.mark.parametrize("settings", [SWIN_PADDED, SWIN_DROPOUT], ids=["padded", "dropout"])
def test_swin_t_equals_torchvision_at_sizes_it_was_not_built_for(settings):
    # one model for every size: padded or not, shifted along both dims, one or none, 1x1 stages
    ref = sharpened(SwinTransformer(**settings), seed=26).eval()
    ours = specgraph.build(SPECS / "swin_t.yaml", **settings)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    for size in ((56, 56), (40, 72), (17, 9), (6, 30)):
        assert_equal_runs(ours, ref, torch.randn(2, 3, *size), "features_", ref.features)
