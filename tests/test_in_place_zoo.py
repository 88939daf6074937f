"""The default build's in-place nodes (ir/in_place.py) against torchvision's own models, which run
``ReLU(inplace=True)``, ``Hardswish(inplace=True)``, ``out += identity`` and, in ConvNeXt and
EfficientNet, ``result = stochastic_depth(...); result += input``: with random weights and batch
norm statistics loaded into both, the built module computes the same eval output, bit for bit, and
in training (batch statistics, stochastic depth and dropout drawing the same random numbers) the
same output, parameter and input gradients and running statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tv

import specgraph
from export_cases import randomize_norm_stats
from specgraph.torch.build import IN_PLACE_KEY, graph_modules

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _convnext_small():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    dims, depths = [16, 32, 48, 64], [1, 2, 3, 1]
    settings = [CNBlockConfig(d, dims[i + 1] if i + 1 < len(dims) else None, n)
                for i, (d, n) in enumerate(zip(dims, depths))]
    return ConvNeXt(settings, stochastic_depth_prob=0.3, num_classes=5)


CASES = {
    # spec, its params, torchvision constructor, how many fx nodes the build runs in place
    "resnet50": ("resnet50", {}, tv.resnet50, 65),
    "googlenet": ("googlenet", {}, lambda: tv.googlenet(aux_logits=False, init_weights=False), 57),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, tv.mobilenet_v3_large, 58),
    "convnext_small_settings": ("convnext_tiny", {"dims": [16, 32, 48, 64], "depths": [1, 2, 3, 1],
                                                  "stochastic_depth_prob": 0.3, "num_classes": 5},
                                _convnext_small, 7),
    "efficientnet_b0": ("efficientnet_b0", {}, tv.efficientnet_b0, 74),
}


def _random_pair(spec, params, ctor):
    torch.manual_seed(0)
    ref = ctor()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in ref.parameters():  # every weight random: default inits (zero biases, ones) hide bugs
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    randomize_norm_stats(ref, seed=4)
    built = specgraph.build(SPECS / f"{spec}.yaml", check_inputs=False, **params)  # run at 64×64
    built.load_state_dict(ref.state_dict(), strict=True)
    return built, ref


def _train_step(model, x, seed=7):
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # stochastic depth and dropout draw the same numbers in both
    out = model(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    return out.detach(), {k: p.grad for k, p in model.named_parameters()}, x.grad


@pytest.mark.parametrize("case", list(CASES))
def test_in_place_build_equals_torchvision_in_eval_and_training(case):
    spec, params, ctor, expected = CASES[case]
    built, ref = _random_pair(spec, params, ctor)
    in_place = [n for gm in graph_modules(built) if gm is not None for n in gm.graph.nodes if n.meta.get(IN_PLACE_KEY)]
    assert len(in_place) == expected  # convnext: every block's `result += input`, after its drop_path
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    built.eval()
    ref.eval()
    with torch.no_grad():
        assert torch.equal(built(x), ref(x))  # the same kernels in the same order: bit for bit
    built.train()
    ref.train()
    got, got_grads, got_x = _train_step(built, x)
    want, want_grads, want_x = _train_step(ref, x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys()
    for k, g in want_grads.items():
        torch.testing.assert_close(got_grads[k], g, atol=1e-5, rtol=1e-5, msg=k)
    torch.testing.assert_close(got_x, want_x, atol=1e-5, rtol=1e-5)
    for (k, a), b in zip(built.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=k)  # running statistics
