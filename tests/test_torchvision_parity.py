"""The torchvision classification models match exactly: parameter count, state_dict keys (strict
load), and eval-mode outputs on random input within 1e-5, with random weights and batch-norm
statistics in both."""

from __future__ import annotations


import pytest
import torch
import torchvision

import specgraph
from conftest import SPECS

tv = torchvision.models

# spec name -> (torchvision constructor, expected parameter count at 1000 classes)
REFERENCES = {
    "alexnet": (lambda **kw: tv.alexnet(**kw), 61_100_840),
    "vgg16": (lambda **kw: tv.vgg16(**kw), 138_357_544),
    "vgg16_bn": (lambda **kw: tv.vgg16_bn(**kw), 138_365_992),
    "resnet18": (lambda **kw: tv.resnet18(**kw), 11_689_512),
    "resnet34": (lambda **kw: tv.resnet34(**kw), 21_797_672),
    "resnet50": (lambda **kw: tv.resnet50(**kw), 25_557_032),
    "googlenet": (lambda **kw: tv.googlenet(weights=None, aux_logits=False, init_weights=False, **kw), 6_624_904),
    "resnext50_32x4d": (lambda **kw: tv.resnext50_32x4d(**kw), 25_028_904),
    "wide_resnet50_2": (lambda **kw: tv.wide_resnet50_2(**kw), 68_883_240),
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_torchvision(name):
    from export_cases import randomize_norm_stats

    ctor, expected = REFERENCES[name]
    torch.manual_seed(0)
    ours = specgraph.build(SPECS / f"{name}.yaml")
    ref = ctor()
    randomize_norm_stats(ref)  # a fresh batch norm is the identity: it would hide a misplaced one
    assert n_params(ours) == n_params(ref) == expected
    assert list(ours.state_dict()) == list(ref.state_dict()) or set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_num_classes_param_changes_the_head():
    ours = specgraph.build(SPECS / "resnet50.yaml", num_classes=10)
    ref = tv.resnet50(num_classes=10)
    assert n_params(ours) == n_params(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert ours.fc.out_features == 10


def test_resnet50_with_dilation_matches_torchvision():
    """The stride-to-dilation switch the segmentation backbones use (output stride 8)."""
    flags = [False, True, True]
    # run at 96×96 for speed, which the spec (224×224) does not declare: without the input check
    ours = specgraph.build(SPECS / "resnet50.yaml", replace_stride_with_dilation=flags, check_inputs=False)
    ref = tv.resnet50(replace_stride_with_dilation=flags)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    assert ours.layer4.get_submodule("1").conv2.dilation == (4, 4)


def test_googlenet_aux_heads_train_and_eval():
    """With aux_logits the heads exist (13,004,888 params as torchvision), run in train mode only,
    and come after the logits in torchvision's GoogLeNetOutputs order."""
    ours = specgraph.build(SPECS / "googlenet.yaml", aux_logits=True, dropout=0.0, dropout_aux=0.0)
    ref = tv.googlenet(weights=None, aux_logits=True, init_weights=False, dropout=0.0, dropout_aux=0.0)
    assert n_params(ours) == n_params(ref) == 13_004_888
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    ours.train()
    ref.train()
    got, want = ours(x), ref(x)
    assert isinstance(got, tuple) and len(got) == 3
    for a, b in zip(got, (want.logits, want.aux_logits2, want.aux_logits1)):
        assert a.shape == (2, 1000)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        out = ours(x)
        assert isinstance(out, torch.Tensor)
        torch.testing.assert_close(out, ref(x), atol=1e-5, rtol=1e-5)
    # The eval graph does not compute the auxiliary heads at all.
    assert "aux1" not in ours.eval_graph_module.code and "aux1" in ours.train_graph_module.code


MOBILENET_V3_SMALL = {
    "last_channel": 1024,
    "settings": [[16, 3, 16, 16, True, "relu", 2], [16, 3, 72, 24, False, "relu", 2],
                 [24, 3, 88, 24, False, "relu", 1], [24, 5, 96, 40, True, "hardswish", 2],
                 [40, 5, 240, 40, True, "hardswish", 1], [40, 5, 240, 40, True, "hardswish", 1],
                 [40, 5, 120, 48, True, "hardswish", 1], [48, 5, 144, 48, True, "hardswish", 1],
                 [48, 5, 288, 96, True, "hardswish", 2], [96, 5, 576, 96, True, "hardswish", 1],
                 [96, 5, 576, 96, True, "hardswish", 1]],
}


@pytest.mark.parametrize("variant,params,ctor,expected", [
    ("large", {}, tv.mobilenet_v3_large, 5_483_032),
    ("small", MOBILENET_V3_SMALL, tv.mobilenet_v3_small, 2_542_856),
    ("small_10_classes", {**MOBILENET_V3_SMALL, "num_classes": 10}, lambda: tv.mobilenet_v3_small(num_classes=10), None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_mobilenet_v3_matches_torchvision_with_random_weights_and_statistics(variant, params, ctor, expected):
    # hardswish, hardsigmoid and the squeeze-excitation gate as ops; torchvision's own table as a param
    from export_cases import randomize_norm_stats

    torch.manual_seed(0)
    ref = ctor().eval()
    randomize_norm_stats(ref, seed=1)
    ours = specgraph.build(SPECS / "mobilenet_v3_large.yaml", **params)
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def _randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (torchvision zero-initialises ViT's head and class token, which
    would hide a wrong head or a token never read)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


@pytest.mark.parametrize("params,ctor,expected", [
    ({}, tv.vit_b_16, 86_567_656),
    ({"patch_size": 32}, tv.vit_b_32, 88_224_232),
    # a small one of the family, by the constructor's own settings (fast; every switch wired)
    ({"image_size": 32, "patch_size": 8, "num_layers": 3, "num_heads": 4, "hidden_dim": 64, "mlp_dim": 96,
      "num_classes": 7},
     lambda: tv.vision_transformer.VisionTransformer(32, 8, 3, 4, 64, 96, num_classes=7), None),
], ids=["vit_b_16", "vit_b_32", "small"])
def test_vit_matches_torchvision_with_random_weights(params, ctor, expected):
    # class_token and encoder.pos_embedding are parameter nodes at their own paths; attention is
    # torch.nn.MultiheadAttention's module, so torchvision's keys load strictly
    ref = _randomized(ctor(), seed=2)
    ours = specgraph.build(SPECS / "vit_b_16.yaml", **params)
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    size = params.get("image_size", 224)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def _convnext(dims, depths, sd, num_classes=1000):
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    settings = [CNBlockConfig(d, dims[i + 1] if i + 1 < len(dims) else None, n) for i, (d, n) in enumerate(zip(dims, depths))]
    return ConvNeXt(settings, stochastic_depth_prob=sd, num_classes=num_classes)


@pytest.mark.parametrize("params,ctor,expected", [
    ({}, tv.convnext_tiny, 28_589_128),
    ({"dims": [16, 32, 48, 64], "depths": [1, 2, 3, 1], "stochastic_depth_prob": 0.3, "num_classes": 5},
     lambda: _convnext([16, 32, 48, 64], [1, 2, 3, 1], 0.3, num_classes=5), None),
], ids=["convnext_tiny", "small_settings"])
def test_convnext_matches_torchvision_with_random_weights(params, ctor, expected):
    # layer_scale is a parameter node at features.i.j.layer_scale; LayerNorm2d is layernorm over
    # channels; stochastic depth is drop_path with torchvision's per-block rate
    ref = _randomized(ctor(), seed=3)
    ours = specgraph.build(SPECS / "convnext_tiny.yaml", check_inputs=False, **params)  # run at 64×64 too
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 224, 224) if expected else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    # in training, stochastic depth draws what torchvision draws (same rates, same random calls)
    ours.train()
    ref.train()
    torch.manual_seed(7)
    got = ours(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)


# torchvision's arguments to BlockParams.from_init_params (regnet.py's constructors)
REGNET_Y_400MF = {"depth": 16, "w_0": 48, "w_a": 27.89, "w_m": 2.09, "group_width": 8, "se_ratio": 0.25}
REGNET_X_400MF = {"depth": 22, "w_0": 24, "w_a": 24.48, "w_m": 2.54, "group_width": 16}


def _regnet_stages(**init) -> list[list]:
    """torchvision's per-stage RegNet settings (its log-space quantisation of the init params) as
    the spec's `stages` rows: [width, stride, depth, group_width, bottleneck_multiplier]."""
    from torchvision.models.regnet import BlockParams

    return [list(stage) for stage in BlockParams.from_init_params(**init)._get_expanded_params()]


def test_regnet_y_400mf_stages_are_torchvisions_block_params():
    params = specgraph.check(SPECS / "regnet_y_400mf.yaml").params
    assert params["stages"] == _regnet_stages(**REGNET_Y_400MF)
    assert params["se_ratio"] == REGNET_Y_400MF["se_ratio"]


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.regnet_y_400mf, 4_344_144, 224),
    # the X family by --set's: its own stages (group width 16), no squeeze-excitation; another head
    ({"stages": _regnet_stages(**REGNET_X_400MF), "se_ratio": 0.0, "num_classes": 10},
     lambda: tv.regnet_x_400mf(num_classes=10), None, 64),
], ids=["regnet_y_400mf", "regnet_x_400mf"])
def test_regnet_matches_torchvision_with_random_weights_and_statistics(params, ctor, expected, size):
    # grouped 3x3 (groups = inner width // group width), the SE squeeze from the block's input width,
    # the projection only where the shape changes; torchvision's block names (block2-1) from the
    # repeat's name template
    from export_cases import randomize_norm_stats

    ref = _randomized(ctor(), seed=4)
    randomize_norm_stats(ref, seed=5)
    theirs = ref.state_dict()
    ours = specgraph.build(SPECS / "regnet_y_400mf.yaml", **params)
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(theirs)
    ours.load_state_dict(theirs, strict=True)
    ours.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def _efficientnet_params(arch: str, **multipliers) -> dict:
    """torchvision's stage table for `arch` (after its width/depth multipliers) as the spec's params."""
    from torchvision.models.efficientnet import FusedMBConvConfig, _efficientnet_conf

    table, last_channel = _efficientnet_conf(arch, **multipliers)
    # the spec's stages read their input width from the stage before, as every torchvision table has it
    assert [c.input_channels for c in table[1:]] == [c.out_channels for c in table[:-1]]
    return {
        "stem_width": table[0].input_channels,
        "settings": [["fused_mbconv" if isinstance(c, FusedMBConvConfig) else "mbconv", c.expand_ratio, c.kernel,
                      c.stride, c.out_channels] for c in table],
        "depths": [c.num_layers for c in table],
        "last_channel": 4 * table[-1].out_channels if last_channel is None else last_channel,
    }


def test_efficientnet_v2_s_settings_are_torchvisions_table():
    params = specgraph.check(SPECS / "efficientnet_v2_s.yaml").params
    expected = _efficientnet_params("efficientnet_v2_s")
    assert {name: params[name] for name in expected} == expected


EFFICIENTNET_B = {"norm_eps": 1e-5}  # V1's batch norms are torch's defaults


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.efficientnet_v2_s, 21_458_488, 224),
    ({**_efficientnet_params("efficientnet_b0", width_mult=1.0, depth_mult=1.0), **EFFICIENTNET_B},
     tv.efficientnet_b0, 5_288_548, 64),
    # depth_mult 1.1 ceils every stage's depth, which moves each stage's first stochastic-depth index
    ({**_efficientnet_params("efficientnet_b1", width_mult=1.0, depth_mult=1.1), **EFFICIENTNET_B, "num_classes": 10},
     lambda: tv.efficientnet_b1(num_classes=10), None, 64),
], ids=["efficientnet_v2_s", "efficientnet_b0", "efficientnet_b1"])
def test_efficientnet_matches_torchvision_with_random_weights_and_statistics(params, ctor, expected, size):
    # FusedMBConv and MBConv from one table, SE squeeze max(1, input // 4), the residual (and its
    # stochastic depth) only where stride 1 keeps the width
    from export_cases import randomize_norm_stats

    ref = _randomized(ctor(), seed=6)
    randomize_norm_stats(ref, seed=7)
    ours = specgraph.build(SPECS / "efficientnet_v2_s.yaml", check_inputs=False, **params)  # run at 64×64 too
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    # in training, stochastic depth and dropout draw what torchvision draws (same rates, same order)
    ours.train()
    ref.train()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(7)
    got = ours(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)


# A small Swin of each kind, by the constructor's own settings (fast; every switch wired).
# 56 -> 28, 14, 7, 4 tokens: every stage padded to the 4x3 windows, a 7x7 map merged (odd), and
# the last stage shifted along W only (one window covers its H).
SWIN_PADDED = {"patch_size": [2, 2], "embed_dim": 16, "depths": [2, 2, 2, 2], "num_heads": [2, 2, 4, 4],
               "window_size": [4, 3], "stochastic_depth_prob": 0.3, "num_classes": 5}
# 45 -> 15, 8, 4, 2: the last stage fits one 3x3 window, so it is not shifted at all; dropouts on.
SWIN_DROPOUT = {"patch_size": [3, 3], "embed_dim": 8, "depths": [1, 2, 3, 2], "num_heads": [1, 2, 2, 4],
                "window_size": [3, 3], "stochastic_depth_prob": 0.5, "dropout": 0.1, "attention_dropout": 0.2,
                "num_classes": 3}


def _swin(settings: dict):
    from torchvision.models.swin_transformer import SwinTransformer

    return lambda: SwinTransformer(**settings)


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.swin_t, 28_288_354, 224),
    (SWIN_PADDED, _swin(SWIN_PADDED), None, 56),
    (SWIN_DROPOUT, _swin(SWIN_DROPOUT), None, 45),
], ids=["swin_t", "small_padded", "small_dropout"])
def test_swin_matches_torchvision_with_random_weights(params, ctor, expected, size):
    # relative_position_bias_table is a parameter node read by index_select at relative_position_index,
    # a buffer its named initializer computes; windows are pad, roll, reshape and permute; the
    # shifted windows' mask is shifted_window_mask; stochastic depth has torchvision's per-block rate
    ref = _randomized(ctor(), seed=8)
    with torch.no_grad():  # sharper attention: near-uniform weights would average a wrong mask away in the pooling
        for name, p in ref.named_parameters():
            if ".attn." in name:
                p.mul_(4)
    ours = specgraph.build(SPECS / "swin_t.yaml", image_size=size, **params)
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(ref.state_dict())
    # a freshly built model already holds torchvision's index buffers: nothing needs loading
    indices = [k for k in ref.state_dict() if k.endswith("attn.relative_position_index")]
    assert len(indices) == sum(params.get("depths", [2, 2, 6, 2]))
    for key in indices:
        mine, theirs = ours.state_dict()[key], ref.state_dict()[key]
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), key
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    if expected is None:  # in training (the small ones, to stay fast): the same draws, in the same order
        ours.train()
        ref.train()
        torch.manual_seed(7)
        got = ours(x)
        torch.manual_seed(7)
        torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("params,weights", [
    ({"depths": [2, 2, 18, 2], "stochastic_depth_prob": 0.3}, tv.Swin_S_Weights.DEFAULT),
    ({"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "stochastic_depth_prob": 0.5},
     tv.Swin_B_Weights.DEFAULT),
], ids=["swin_s", "swin_b"])
def test_swin_s_and_b_are_set_s_of_the_spec(params, weights):
    # counted from the graph, nothing built: the spec's doc names these --set's
    assert specgraph.summary(SPECS / "swin_t.yaml", **params).total_params == weights.meta["num_params"]

