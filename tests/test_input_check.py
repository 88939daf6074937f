"""The built module checks its inputs against the spec before any op runs (torch/input_check.py).

Families of generated cases:

* every spec in specs/, every declared input, every way a call can miss its declaration (a dim
  missing or added, a concrete dim changed, the wrong kind of dtype, a symbol with two sizes,
  a zero size): an ``InputError`` E411 at that input's line, naming it — never a torch error;
  the declared shapes themselves run (on the meta device: shapes without data);
* sizes that only some inputs have (the rules an op holds only for some sizes): U-Net with a
  symbolic tile size, a reshape by an exact division, a chunk, a glu: at every size, the
  built module refuses the call exactly where checking the spec at that size fails, with the
  same code at the same node, and otherwise runs with the inferred shapes;
* ``check_inputs=False`` leaves the check out; exports carry none; a copied or pickled model
  keeps it.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import specgraph
from specgraph import InputError, SpecError
from specgraph.expand.expander import expand
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.torch.input_check import CHECK_NAME, input_check, input_check_off

from conftest import SPECS, spec_files

SIZES = {"N": 2, "T": 5, "S": 6, "H": 64, "W": 64, "L": 16}


def meta_inputs(graph, sizes=None) -> list[torch.Tensor]:
    sizes = {**SIZES, **(sizes or {})}
    tensors = []
    for t in graph.inputs.values():
        shape = [d if isinstance(d, int) else sizes.get(str(d), 8) for d in t.shape]
        tensors.append(torch.zeros(shape, dtype=getattr(torch, t.dtype), device="meta"))
    return tensors


def misses(graph) -> list[tuple[str, int, list[torch.Tensor], str]]:
    """(input name, its index, the call's tensors, what is wrong) for each way to miss a declaration."""
    good = meta_inputs(graph)
    names = list(graph.inputs)
    cases = []

    def swap(i: int, tensor: torch.Tensor, what: str) -> None:
        cases.append((names[i], i, good[:i] + [tensor] + good[i + 1:], what))

    for i, (name, t) in enumerate(graph.inputs.items()):
        x = good[i]
        swap(i, x[0], "a dim missing")
        swap(i, x.unsqueeze(0), "a dim added")
        kind = torch.int64 if x.dtype.is_floating_point else torch.float32
        swap(i, x.to(kind), "another kind of dtype")
        for axis, d in enumerate(t.shape):
            shape = list(x.shape)
            if isinstance(d, int):
                shape[axis] = d + 1
                swap(i, torch.zeros(shape, dtype=x.dtype, device="meta"), f"dim {axis} changed")
            else:
                shape[axis] = 0
                swap(i, torch.zeros(shape, dtype=x.dtype, device="meta"), f"dim {axis} zero")
        for j, other in enumerate(names[:i]):  # a symbol both inputs share, with two sizes
            shared = [axis for axis, d in enumerate(t.shape) if not isinstance(d, int) and d in graph.inputs[other].shape]
            if shared:
                shape = list(x.shape)
                shape[shared[0]] += 1
                swap(i, torch.zeros(shape, dtype=x.dtype, device="meta"), f"{t.shape[shared[0]]} unlike {other}'s")
    return cases


def built(path):
    graph = specgraph.check(path)
    model = specgraph.build(graph).eval().to("meta")
    return graph, model


@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.stem)
def test_every_way_to_miss_an_input_declaration_is_a_located_error(path):
    graph, model = built(path)
    with torch.no_grad():
        model(*meta_inputs(graph))  # the declared shapes run
        for name, i, args, what in misses(graph):
            with pytest.raises(InputError) as e:
                model(*args)
            d = e.value.diagnostics[0]
            assert d.code == "E411", f"{name}, {what}: {e.value.format()}"
            assert d.location == graph.node(name).location, f"{name}, {what}: {e.value.format()}"
            assert f"input '{name}'" in d.message, d.message


def test_the_check_sits_in_the_forward_and_travels_with_the_model():
    graph, model = built(SPECS / "lenet5.yaml")
    assert "self.input_check(image)" in model.code
    assert isinstance(input_check(model), torch.nn.Module) and not list(input_check(model).parameters())
    bad = torch.zeros(2, 1, 27, 28, device="meta")
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        with pytest.raises(InputError):
            copied(bad)
    assert set(model.state_dict()) == set(specgraph.build(graph, check_inputs=False).state_dict())


def test_check_inputs_false_leaves_it_out():
    model = specgraph.build(SPECS / "lenet5.yaml", check_inputs=False)
    assert input_check(model) is None and CHECK_NAME not in model.code
    with pytest.raises(RuntimeError):  # torch's own error, deep inside
        model(torch.zeros(2, 1, 27, 28)[:, :, :, :3])


def test_input_check_off_lifts_it_and_puts_it_back():
    model = specgraph.build(SPECS / "googlenet.yaml", aux_logits=True)  # train and eval graphs
    with input_check_off(model):
        assert input_check(model) is None
        assert all(CHECK_NAME not in gm.code for gm in (model.train_graph_module, model.eval_graph_module))
    assert input_check(model) is not None
    assert all(f"self.{CHECK_NAME}(" in gm.code for gm in (model.train_graph_module, model.eval_graph_module))


# ---- sizes that only some inputs have -----------------------------------------------------------

def consistent(spec, shapes_at, inputs_at, sizes, model):
    """At each size: the built model refuses the call iff checking the spec at that size fails
    (at the same node, with the same code where the shape rule refuses it: a concrete size may
    fail earlier, in an expression), and otherwise gives the inferred shapes."""
    for size in sizes:
        try:
            concrete = expand(spec, input_shapes=shapes_at(size), suggest_sizes=False)
            refusal = None
        except SpecError as e:
            concrete, refusal = None, e
        try:
            with torch.no_grad():
                out = model(*inputs_at(size))
        except InputError as e:
            d = e.diagnostics[0]
            assert refusal is not None, f"{size}: refused at run time, checks concretely:\n{e.format()}"
            same = [r for r in refusal.diagnostics if r.path == d.path]
            assert same and ((same[0].code, same[0].location) == (d.code, d.location)
                             or not same[0].code.startswith("E4")), \
                f"{size}:\n{e.format()}\nvs\n{refusal.format()}"
            continue
        assert refusal is None, f"{size}: runs, yet checking at that size says:\n{refusal.format()}"
        outs = out if isinstance(out, tuple) else (out,)
        want = [tuple(o.value.type.shape) for o in concrete.eval_outputs]
        assert [tuple(o.shape) for o in outs] == want, size


def test_unet_with_a_symbolic_tile_refuses_exactly_the_sizes_whose_crops_are_uneven():
    spec = specgraph.load(SPECS / "unet.yaml")
    H = symbol("H")
    graph = expand(spec, input_shapes={"image": TensorType((symbol("N"), 1, H, H))})
    conditions = [r.condition for _, r in graph.requirements()]
    assert any("divisible by 2" in c for c in conditions), conditions  # the crops' even borders
    model = specgraph.build(graph).eval().to("meta")
    consistent(spec, lambda h: {"image": TensorType((1, 1, h, h))},
               lambda h: [torch.zeros(1, 1, h, h, device="meta")], range(170, 260), model)


RULES = {  # a spec over symbolic sizes whose ops hold only for some of them
    "reshape by an exact division": ("x: [N, S, 8]", "r: {op: reshape, shape: ['${x.shape[0]}', '${x.shape[1] // 3}', 24]}"),
    "chunk": ("x: [N, S, 8]", "c: {op: chunk, chunks: 3, dim: 1}\n  o: {op: add, from: [c.0, c.1, c.2]}"),
    "glu": ("x: [N, S]", "g: {op: glu, dim: 1}"),
    "center crop": ("x: [N, 2, S, S]", "p: {op: maxpool2d, kernel: 3, from: x}\n  c: {op: center_crop, from: [x, p]}"),
    "window": ("x: [N, 2, S]", "c: {op: conv1d, out: 2, kernel: 5, stride: 2}"),
    "reflect": ("x: [N, 2, S]", "c: {op: conv1d, out: 2, kernel: 3, padding: 4, padding_mode: reflect}"),
    "circular same": ("x: [N, 2, S]", "c: {op: conv1d, out: 2, kernel: 7, padding: same, padding_mode: circular}"),
    "pixel unshuffle": ("x: [N, 2, S, S]", "d: {op: pixel_unshuffle, factor: 2}"),
}


@pytest.mark.parametrize("name", list(RULES))
def test_a_rule_for_some_sizes_is_checked_at_run_time_as_at_check_time(name):
    declared, nodes = RULES[name]
    text = f"specgraph: 1\nname: rule\ninputs:\n  {declared}\ngraph:\n  {nodes}\n"
    spec = specgraph.load(text)
    graph = specgraph.check(spec)
    assert graph.requirements(), "the rule holds for some sizes only: it must be stated"
    model = specgraph.build(graph).eval()
    t = graph.inputs["x"]

    def shape(s):
        return tuple(s if str(d) == "S" else 2 if str(d) == "N" else d for d in t.shape)

    consistent(spec, lambda s: {"x": TensorType(shape(s), t.dtype)}, lambda s: [torch.randn(shape(s))],
               range(1, 25), model)


def test_batch_statistics_need_two_values_in_training_only():
    text = "specgraph: 1\ninputs:\n  x: [N, 3, 1, 1]\ngraph:\n  bn: {op: batchnorm2d}\n"
    model = specgraph.build(text)
    model.train()
    with pytest.raises(InputError) as e:
        model(torch.zeros(1, 3, 1, 1))
    assert e.value.diagnostics[0].code == "E404" and "training" in e.value.format()
    model(torch.zeros(2, 3, 1, 1))  # two values per channel
    model.eval()
    model(torch.zeros(1, 3, 1, 1))  # running statistics: any batch


def test_a_sequence_length_the_spec_cannot_take_is_told_as_the_spec_says():
    text = """specgraph: 1
name: s2s
inputs:
  src: {shape: [N, S], dtype: int64}
graph:
  emb: {op: embedding, num: 100, dim: 128}
  heads: {op: reshape, shape: [N, "${emb.shape[1] // 12}", 12, 128]}
"""
    model = specgraph.build(text)
    model(torch.zeros(2, 24, dtype=torch.long))
    with pytest.raises(InputError) as e:
        model(torch.zeros(2, 25, dtype=torch.long))
    shown = e.value.format()
    assert "<string>:7:3: error[E403] node 'heads'" in shown and "S = 25" in shown and "input 'src'" in shown, shown
