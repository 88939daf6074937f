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
    ours = specgraph.build(SPECS / "resnet50.yaml", replace_stride_with_dilation=flags)
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
    ours = specgraph.build(SPECS / "convnext_tiny.yaml", **params)
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
