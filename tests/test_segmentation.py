"""Segmentation and encoder-decoder bridges: FCN and DeepLabV3 equal torchvision's, the
paper's U-Net (572 -> 388, its parameter count from the layer table), the padded U-Net."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import segmentation as tvseg

import specgraph
from conftest import SPECS

REFERENCES = {
    # spec -> (constructor, params without aux, params with aux)
    "fcn_resnet50": (tvseg.fcn_resnet50, 32_957_013, 35_322_218),
    "deeplabv3_resnet50": (tvseg.deeplabv3_resnet50, 39_638_869, 42_004_074),
}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("aux", [False, True], ids=["aux_off", "aux_on"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_torchvision_segmentation(name, aux):
    ctor, plain, with_aux = REFERENCES[name]
    ours = specgraph.build(SPECS / f"{name}.yaml", aux_loss=aux)
    ref = ctor(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux)
    assert n_params(ours) == n_params(ref) == (with_aux if aux else plain)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 75, 61)  # odd sizes: the output is resized to exactly the input's H×W
    with torch.no_grad():
        got, want = ours(x), ref(x)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == (2 if aux else 1)
    for tensor, key in zip(got, ["out", "aux"]):
        assert tensor.shape == (2, 21, 75, 61)
        torch.testing.assert_close(tensor, want[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "fcn_vgg16"])
def test_output_is_symbolically_the_input_size(name):
    graph = specgraph.check(SPECS / f"{name}.yaml")
    assert str(graph.inputs["image"]) == "[N, 3, H, W]"
    assert str(graph.outputs[0].value.type) == "[N, 21, H, W]"


def test_fcn_backbone_is_resnet50s_dilated_trunk():
    graph = specgraph.check(SPECS / "fcn_resnet50.yaml")
    assert graph.node("backbone.layer4.0.conv2").params.dilation == 2
    assert graph.node("backbone.layer4.1.conv2").params.dilation == 4
    assert str(graph.node("backbone.layer4.2.relu").out) == "[N, 2048, ⌈H/8⌉, ⌈W/8⌉]"


def test_fcn_vgg16_takes_vgg16_feature_weights():
    """Classification CNN -> segmentation: the trunk's modules are vgg16's `features.*`."""
    import torchvision

    seg = specgraph.build(SPECS / "fcn_vgg16.yaml")
    vgg = torchvision.models.vgg16()
    features = {k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}
    missing, unexpected = seg.load_state_dict(features, strict=False)
    assert not unexpected and all(not k.startswith("features.") for k in missing)
    seg.eval()
    with torch.no_grad():
        assert seg(torch.randn(1, 3, 100, 130)).shape == (1, 21, 100, 130)


def unet_paper_parameter_count(in_channels=1, classes=2) -> int:
    """Parameters of Ronneberger et al.'s U-Net from its layer table (figure 1), by hand."""
    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    total, c = 0, in_channels
    widths = [64, 128, 256, 512, 1024]
    for w in widths:                        # contracting path: two 3×3 convs per level
        total += conv(c, w, 3) + conv(w, w, 3)
        c = w
    for w in reversed(widths[:-1]):         # expansive path: 2×2 up-conv, then two 3×3 convs
        total += conv(c, w, 2)              # halves the channels
        total += conv(2 * w, w, 3) + conv(w, w, 3)
        c = w
    return total + conv(c, classes, 1)


def test_unet_paper_shapes_and_parameters():
    graph = specgraph.check(SPECS / "unet.yaml")
    assert str(graph.inputs["image"]) == "[N, 1, 572, 572]"
    assert str(graph.outputs[0].value.type) == "[N, 2, 388, 388]"
    assert str(graph.node("bottom.relu2").out) == "[N, 1024, 28, 28]"
    assert str(graph.node("up4.crop").out) == "[N, 512, 56, 56]"
    model = specgraph.build(graph)
    assert n_params(model) == unet_paper_parameter_count() == 31_030_658
    with torch.no_grad():
        assert model(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_unet_invalid_tile_size_names_the_bridge_and_nearest_sizes():
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(SPECS / "unet.yaml", size=570)
    d = info.value.diagnostics[0]
    assert d.code == "E402" and d.path == "up4.crop"
    assert "symmetrically" in d.message
    assert "556×556" in d.hint and "572×572" in d.hint


@pytest.mark.parametrize("up_mode", ["transposed", "bilinear"])
@pytest.mark.parametrize("size,depth", [(64, 4), (96, 3), (48, 4), (128, 2)])
def test_unet_padded_output_size_equals_input_size(size, depth, up_mode):
    graph = specgraph.check(SPECS / "unet_padded.yaml", size=size, depth=depth, up_mode=up_mode,
                            in_channels=3, num_classes=5, base=8)
    assert str(graph.outputs[0].value.type) == f"[N, 5, {size}, {size}]"
    model = specgraph.build(graph).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5, size, size)


def test_unet_padded_levels_are_one_recursive_block():
    graph = specgraph.check(SPECS / "unet_padded.yaml", depth=3, base=16)
    assert "unet.inner.inner.inner.down.conv1" in graph
    assert "unet.inner.inner.inner.inner" not in graph.scopes
    assert graph.node("unet.inner.inner.inner.down.conv1").params.out == 128
    assert graph.node("unet.inner.up.upconv").params.out == 32
