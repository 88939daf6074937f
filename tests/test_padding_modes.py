"""torch's padding rules, as the shape rules state them: `pad` in every mode and a convolution's
``padding_mode`` (with numbers, ``same`` and ``valid``) are accepted exactly when torch runs them.

Generated families, each compared with torch itself:

* concrete sizes: ``check`` accepts a spec iff torch runs the op on inputs of those sizes, and
  then the built module gives the inferred shape;
* symbolic sizes: the spec checks once, and the built module, called at each size, either runs
  with the inferred shape (where torch does) or refuses the input with a located
  ``InputError`` (where torch would fail) — never a torch error, never a silent wrong shape.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F
import yaml

import specgraph
from specgraph import InputError, SpecError

MODES = ["constant", "reflect", "replicate", "circular"]
CONV_MODES = ["zeros", "reflect", "replicate", "circular"]


def spec_text(shape, node: dict) -> str:
    return yaml.safe_dump({"specgraph": 1, "name": "case", "inputs": {"x": list(shape)}, "graph": {"y": node}},
                          sort_keys=False)


def torch_shape(fn, shape) -> tuple | None:
    """torch's output shape of ``fn`` on a tensor of ``shape``, None when torch refuses it."""
    try:
        return tuple(fn(torch.zeros(shape)).shape)
    except (RuntimeError, ValueError, NotImplementedError, IndexError):
        return None


def checked_shape(text: str) -> tuple | None:
    """(the built module's output shape, which must be the inferred one), None when check refuses."""
    try:
        graph = specgraph.check(text)
    except SpecError as e:
        assert all(d.location is not None for d in e.diagnostics), e.format()
        return None
    model = specgraph.build(graph).eval()
    shape = tuple(graph.inputs["x"].shape)
    with torch.no_grad():
        out = tuple(model(torch.zeros(shape)).shape)
    assert out == tuple(graph.node("y").out.shape), (out, graph.node("y").out)
    return out


# ---- pad ----------------------------------------------------------------------------------------

def pad_cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        mode, rank, pairs = rng.choice(MODES), rng.randint(1, 5), rng.randint(1, 3)
        shape = [rng.choice([1, 2, 3, 5]) for _ in range(rank)]
        pads = [rng.choice([0, 0, 1, 2, 3, 5]) for _ in range(2 * pairs)]
        cases.append(pytest.param(mode, shape, pads, id=f"{mode}-{shape}-{pads}"))
    return cases


@pytest.mark.parametrize("mode, shape, pads", pad_cases(240, 14))
def test_pad_is_accepted_exactly_when_torch_runs_it(mode, shape, pads):
    want = torch_shape(lambda x: F.pad(x, pads, mode=mode), shape)
    got = checked_shape(spec_text(shape, {"op": "pad", "pads": pads, "mode": mode}))
    assert got == want, f"specgraph {got}, torch {want}"


@pytest.mark.parametrize("mode, pads", [(m, p) for m in MODES[1:] for p in ([1, 1, 1, 1], [2, 0, 0, 3], [3, 3, 3, 3])])
def test_pad_on_symbolic_sizes_refuses_at_run_time_exactly_where_torch_fails(mode, pads):
    model = specgraph.build(spec_text(["N", 2, "H", "W"], {"op": "pad", "pads": pads, "mode": mode})).eval()
    for h, w in itertools.product(range(1, 6), (1, 2, 4)):
        want = torch_shape(lambda x: F.pad(x, pads, mode=mode), (2, 2, h, w))
        try:
            got = tuple(model(torch.zeros(2, 2, h, w)).shape)
        except InputError as e:
            got = None
            d = e.diagnostics[0]
            assert d.code == "E404" and d.path == "y" and d.location.source_line.strip() == "y:", e.format()
            assert "input 'x' [N, 2, H, W] (<string>:4:3) is [2, 2, " in e.format(), e.format()
        assert got == want, f"H={h} W={w}: specgraph {got}, torch {want}"


def test_pad_value_belongs_to_constant_mode():
    with pytest.raises(SpecError) as e:
        specgraph.check(spec_text(["N", 2, 5, 5], {"op": "pad", "pads": [1, 1], "mode": "reflect", "value": 2.0}))
    assert e.value.codes == ["E204"] and "fill of mode constant" in e.value.format()


# ---- a convolution's padding_mode -----------------------------------------------------------------

def conv_cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        rank = rng.randint(1, 3)
        mode = rng.choice(CONV_MODES)
        kernel = [rng.choice([1, 2, 3, 4, 5]) for _ in range(rank)]
        dilation = [rng.choice([1, 1, 2]) for _ in range(rank)]
        padding = rng.choice(["same", "valid", rng.randint(0, 3), [rng.randint(0, 3) for _ in range(rank)]])
        spatial = [rng.choice([1, 2, 3, 4, 6]) for _ in range(rank)]
        cases.append(pytest.param(rank, mode, kernel, dilation, padding, spatial,
                                  id=f"{rank}d-{mode}-k{kernel}-d{dilation}-p{padding}-{spatial}"))
    return cases


def torch_conv(rank, mode, kernel, dilation, padding):
    conv = getattr(torch.nn, f"Conv{rank}d")(2, 3, kernel, padding=padding, dilation=dilation, padding_mode=mode)
    return conv.eval()


@pytest.mark.parametrize("rank, mode, kernel, dilation, padding, spatial", conv_cases(200, 14))
def test_conv_padding_mode_is_accepted_exactly_when_torch_runs_it(rank, mode, kernel, dilation, padding, spatial):
    conv = torch_conv(rank, mode, kernel, dilation, padding)
    shape = [2, 2, *spatial]
    with torch.no_grad():
        want = torch_shape(conv, shape)
    node = {"op": f"conv{rank}d", "out": 3, "kernel": kernel, "dilation": dilation, "padding": padding,
            "padding_mode": mode}
    got = checked_shape(spec_text(shape, node))
    assert got == want, f"specgraph {got}, torch {want}"


@pytest.mark.parametrize("mode", CONV_MODES[1:])
@pytest.mark.parametrize("kernel, padding", [(5, "same"), (4, "same"), (3, 2), ([5, 1], [2, 0])])
def test_conv_padding_mode_on_symbolic_sizes(mode, kernel, padding):
    node = {"op": "conv2d", "out": 3, "kernel": kernel, "padding": padding, "padding_mode": mode}
    model = specgraph.build(spec_text(["N", 2, "H", "W"], node)).eval()
    conv = torch_conv(2, mode, kernel, 1, padding)
    conv.load_state_dict({k.removeprefix("y."): v for k, v in model.state_dict().items()})
    for h, w in itertools.product(range(1, 7), (1, 3, 6)):
        with torch.no_grad():
            want = torch_shape(conv, (1, 2, h, w))
            try:
                got = tuple(model(torch.zeros(1, 2, h, w)).shape)
            except InputError as e:
                got = None
                assert e.diagnostics[0].code == "E404" and e.diagnostics[0].path == "y", e.format()
        assert got == want, f"H={h} W={w}: specgraph {got}, torch {want}"
