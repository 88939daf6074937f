"""The rest of torchvision's classification CNNs as specs: DenseNet, MobileNetV2, ShuffleNetV2,
SqueezeNet, Inception v3 and MNASNet match torchvision exactly — parameter count, state_dict keys
in order (strict load), and eval outputs within 1e-5 with random weights and random batch-norm
statistics in both — each at its default and at another member of its family, by --set's."""

from __future__ import annotations

import pytest
import torch
import torchvision

import specgraph
from conftest import SPECS
from export_cases import randomize_norm_stats
from test_torchvision_parity import _randomized, n_params

tv = torchvision.models


def assert_matches_torchvision(spec: str, params: dict, ref: torch.nn.Module, size: int, seed: int,
                               expected: int | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Build `spec` with `params`, load the randomised `ref`'s state_dict strictly, compare eval
    outputs on a [2, 3, size, size] input; returns (ours, ref), both in eval mode."""
    ref = _randomized(ref, seed=seed)
    randomize_norm_stats(ref, seed=seed + 1)  # a fresh batch norm is the identity: it would hide a misplaced one
    ours = specgraph.build(SPECS / f"{spec}.yaml", **params)
    assert n_params(ours) == n_params(ref) and (expected is None or n_params(ref) == expected)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want = ref(x)
        assert want.std() > 1e-3  # not a constant a wrong model could also give
        torch.testing.assert_close(ours(x), want, atol=1e-5, rtol=1e-5)
    return ours, ref


def total_params(spec: str, **params) -> int:
    """Counted from the graph, nothing built."""
    return specgraph.summary(SPECS / f"{spec}.yaml", **params).total_params


# ---- DenseNet ------------------------------------------------------------------------------------

DENSENET = {  # torchvision's _densenet arguments: growth_rate, block_config, num_init_features
    "densenet161": {"growth_rate": 48, "block_config": [6, 12, 36, 24], "num_init_features": 96},
    "densenet169": {"block_config": [6, 12, 32, 32]},
    "densenet201": {"block_config": [6, 12, 48, 32]},
}


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.densenet121, 7_978_856, 224),
    ({**DENSENET["densenet161"], "num_classes": 10}, lambda: tv.densenet161(num_classes=10), None, 64),
    # the layers' dropout (drop_rate) switched on: the identity in eval, its place in the state_dict none
    ({"growth_rate": 12, "block_config": [2, 3, 4, 2], "num_init_features": 24, "bn_size": 2, "drop_rate": 0.2,
      "num_classes": 5},
     lambda: tv.densenet.DenseNet(12, (2, 3, 4, 2), 24, bn_size=2, drop_rate=0.2, num_classes=5), None, 64),
], ids=["densenet121", "densenet161", "small_with_dropout"])
def test_densenet_matches_torchvision(params, ctor, expected, size):
    # features.denseblockI.denselayerJ from the repeat's name template; each layer joins its new
    # features to its input, which is torchvision's concatenation of all earlier ones
    assert_matches_torchvision("densenet121", params, ctor(), size, seed=10, expected=expected)


@pytest.mark.parametrize("name", sorted(DENSENET))
def test_densenet_family_is_set_s_of_the_spec(name):
    weights = tv.get_model_weights(name).DEFAULT
    assert total_params("densenet121", **DENSENET[name]) == weights.meta["num_params"]


def test_densenet_refuses_a_fifth_dense_block():
    # the spec lays out torchvision's four blocks: a longer block_config would silently drop a block
    with pytest.raises(specgraph.SpecError) as info:
        specgraph.check(SPECS / "densenet121.yaml", block_config=[6, 12, 24, 16, 8])
    d = info.value.diagnostics[0]
    assert (d.code, d.location.line, d.location.col) == ("E310", 20, 3)
    assert d.message == "requirement not met: torchvision's DenseNets have four dense blocks (block_config: four numbers)"
    assert d.details == ("len(block_config) == 4 is false with block_config = [6, 12, 24, 16, 8]",)


# ---- MobileNetV2 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.mobilenet_v2, 3_504_872, 224),
    # 0.75 rounds 24 * 0.75 = 18 up to 24 (16 would be more than 10% below): make_divisible's rule
    ({"width_mult": 0.75, "num_classes": 10}, lambda: tv.mobilenet_v2(width_mult=0.75, num_classes=10), None, 64),
    # above 1 the last conv widens too (1280 * max(1, width_mult))
    ({"width_mult": 1.4}, lambda: tv.mobilenet_v2(width_mult=1.4), 6_108_776, 64),
], ids=["mobilenet_v2", "width_0_75", "width_1_4"])
def test_mobilenet_v2_matches_torchvision(params, ctor, expected, size):
    assert_matches_torchvision("mobilenet_v2", params, ctor(), size, seed=20, expected=expected)


# ---- ShuffleNetV2 --------------------------------------------------------------------------------

SHUFFLENET = {  # torchvision's stages_out_channels per width (stages_repeats is [4, 8, 4] for all)
    "shufflenet_v2_x0_5": [24, 48, 96, 192, 1024],
    "shufflenet_v2_x1_5": [24, 176, 352, 704, 1024],
    "shufflenet_v2_x2_0": [24, 244, 488, 976, 2048],
}


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.shufflenet_v2_x1_0, 2_278_604, 224),
    ({"stages_out_channels": SHUFFLENET["shufflenet_v2_x0_5"], "num_classes": 10},
     lambda: tv.shufflenet_v2_x0_5(num_classes=10), None, 64),
    # other depths than torchvision's defaults, by its own constructor
    ({"stages_repeats": [2, 1, 3], "stages_out_channels": [8, 16, 32, 64, 128], "num_classes": 5},
     lambda: tv.shufflenetv2.ShuffleNetV2([2, 1, 3], [8, 16, 32, 64, 128], num_classes=5), None, 64),
], ids=["shufflenet_v2_x1_0", "x0_5", "small_depths"])
def test_shufflenet_v2_matches_torchvision(params, ctor, expected, size):
    # the stride-1 unit's chunk and the channel shuffle reorder channels: random weights per
    # channel make a wrong order show
    assert_matches_torchvision("shufflenet_v2_x1_0", params, ctor(), size, seed=30, expected=expected)


@pytest.mark.parametrize("name", sorted(SHUFFLENET))
def test_shufflenet_v2_widths_are_set_s_of_the_spec(name):
    weights = tv.get_model_weights(name).DEFAULT
    assert total_params("shufflenet_v2_x1_0", stages_out_channels=SHUFFLENET[name]) == weights.meta["num_params"]


# ---- SqueezeNet ----------------------------------------------------------------------------------

SQUEEZENET1_1 = {"stem": [64, 3], "pool_after": [2, 4]}


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.squeezenet1_0, 1_248_424, 224),
    # at 100 pixels the last max-pool sees 21 rows: ceil mode gives 11 rows, floor would give 10
    ({**SQUEEZENET1_1, "num_classes": 10}, lambda: tv.squeezenet1_1(num_classes=10), None, 100),
    ({**SQUEEZENET1_1}, tv.squeezenet1_1, 1_235_496, 224),
], ids=["squeezenet1_0", "squeezenet1_1_at_100", "squeezenet1_1"])
def test_squeezenet_matches_torchvision(params, ctor, expected, size):
    assert_matches_torchvision("squeezenet1_0", params, ctor(), size, seed=40, expected=expected)


def test_squeezenet_pools_round_up():
    graph = specgraph.check(SPECS / "squeezenet1_0.yaml", **SQUEEZENET1_1)
    pools = [n for n in graph.op_nodes() if n.op_name == "maxpool2d"]
    assert [n.path for n in pools] == ["features.2", "features.5", "features.8"]  # torchvision's indices
    assert all(n.params.ceil_mode for n in pools)


# ---- MNASNet -------------------------------------------------------------------------------------

MNASNET_ALPHAS = {"mnasnet0_5": 0.5, "mnasnet0_75": 0.75, "mnasnet1_3": 1.3}


@pytest.mark.parametrize("params,ctor,expected,size", [
    ({}, tv.mnasnet1_0, 4_383_312, 224),
    ({"alpha": 0.5, "num_classes": 10}, lambda: tv.mnasnet0_5(num_classes=10), None, 64),
], ids=["mnasnet1_0", "mnasnet0_5"])
def test_mnasnet_matches_torchvision(params, ctor, expected, size):
    ours, ref = assert_matches_torchvision("mnasnet1_0", params, ctor(), size, seed=50, expected=expected)
    # in training, batch statistics and the running ones updated with torchvision's momentum
    # (1 - 0.9997); dropout draws the same mask from the same seed
    ours.train()
    ref.train()
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(7)
    got = ours(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-6, rtol=1e-6, msg=key)


@pytest.mark.parametrize("name", sorted(MNASNET_ALPHAS))
def test_mnasnet_alphas_are_set_s_of_the_spec(name):
    weights = tv.get_model_weights(name).DEFAULT
    assert total_params("mnasnet1_0", alpha=MNASNET_ALPHAS[name]) == weights.meta["num_params"]


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.35, 0.6, 0.9, 1.1, 1.4, 1.75, 2.0, 3.3])
def test_mnasnet_depths_are_torchvisions_at_any_alpha(alpha):
    # the spec rounds each depth with make_divisible(depth * alpha, 8), torchvision with
    # _round_to_multiple_of(depth * alpha, 8, 0.9): the widths the graph has are _get_depths'
    from torchvision.models.mnasnet import _get_depths

    graph = specgraph.check(SPECS / "mnasnet1_0.yaml", alpha=alpha)
    width = {n.path: n.out.shape[1] for n in graph.op_nodes()}
    # each stack's width is that of its first unit's projection, layers.I.0.layers.6
    stacks = [width[f"layers.{i}.0.layers.6"] for i in range(8, 14)]
    assert [width["layers.0"], width["layers.6"], *stacks] == _get_depths(alpha)


# ---- Inception v3 --------------------------------------------------------------------------------

def _inception(**kw):
    return tv.inception_v3(init_weights=False, **kw)  # torchvision's own init is slow, and replaced here


def test_inception_v3_matches_torchvision_in_eval_and_training():
    """aux_logits on by default, as torchvision: 27,161,264 params; the auxiliary logits come after the
    main ones in training mode only, and the eval graph does not compute them."""
    ours, ref = assert_matches_torchvision("inception_v3", {}, _inception(), 299, seed=60, expected=27_161_264)
    assert "AuxLogits" not in ours.eval_graph_module.code and "AuxLogits" in ours.train_graph_module.code
    ours.train()
    ref.train()
    x = torch.randn(2, 3, 299, 299)
    torch.manual_seed(7)  # dropout (0.5) draws the same mask in both
    got = ours(x)
    torch.manual_seed(7)
    want = ref(x)
    assert isinstance(got, tuple) and len(got) == 2
    for a, b in zip(got, (want.logits, want.aux_logits)):
        assert a.shape == (2, 1000)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_inception_v3_without_aux_and_with_transform_input():
    # torchvision turns transform_input on when it loads its weights: inputs normalised for
    # ImageNet are mapped back to [-1, 1], channel by channel
    assert_matches_torchvision("inception_v3", {"aux_logits": False, "transform_input": True, "num_classes": 10},
                               _inception(aux_logits=False, transform_input=True, num_classes=10), 299, seed=62)
    assert total_params("inception_v3", aux_logits=False) == 23_834_568
