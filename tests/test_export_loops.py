"""`export --python` writes a repeat's copies as one loop where their constructor arguments are
affine in the copy's index (a DenseNet block: each layer reads every width before it), and copy
by copy where they are not; the sizes after the loop follow its count."""

from __future__ import annotations

import torch
import torchvision

import specgraph
from specgraph.torch.export.affine import loop_text
from specgraph.torch.export.python import python_source
from test_export import generated_class, import_source
from test_python_export import exported, same_as


def test_loop_text_fits_the_parts_that_change_with_the_index():
    calls = [f"\u27e6dense_layer#1\u27e7(in_channels{' + growth' * k}, growth, bn=4)" for k in range(4)]
    assert loop_text(calls, 0) == "\u27e6dense_layer#1\u27e7(in_channels + index * growth, growth, bn=4)"
    # copies 1.. of a loop whose first copy is written apart: the text still in the copy's own index
    assert loop_text(calls[1:], 1) == "\u27e6dense_layer#1\u27e7(in_channels + index * growth, growth, bn=4)"
    assert loop_text(["Block(c, [2, w])", "Block(c - 3, [2, w + 2])", "Block(c - 6, [2, w + 4])"], 0) == \
        "Block(c + index * -3, [2, w + index * 2])"
    assert loop_text(["F(2 * c)", "F(2 * c + d // 2)", "F(d // 2 + 2 * c + d // 2)"], 0) == "F(2 * c + index * (d // 2))"
    assert loop_text(["F(0)", "F(5)", "F(10)"], 0) == "F(index * 5)"
    for texts in (["F(c)", "F(c * 2)", "F(c * 2 * 2)"],  # doubling: no affine text
                  ["F(c)", "F(c + 1)", "F(c + 3)"],
                  ["F(0.5)", "F(1.5)", "F(2.5)"],  # floats are never fitted (rounding)
                  ["F(c, a=1)", "F(c, b=1)", "F(c, a=1)"], ["F(c)", "G(c + 1)", "F(c + 2)"]):
        assert loop_text(texts, 0) is None, texts


def test_dense_layers_are_one_loop_and_the_classes_take_other_depths(tmp_path):
    """DenseNet-121 exported at its defaults: one DenseBlock class whose layers are a loop, widths
    `in_channels + index * growth_rate`; built with DenseNet-169's block_config (and the transitions'
    widths from it), it is torchvision's densenet169."""
    module, text = exported("densenet121.yaml", tmp_path)
    for line in ["        for index in range(layers):\n            self.add_module(f'denselayer{index + 1}', "
                 "DenseLayer(in_channels + index * growth_rate, growth_rate, bn_size, drop_rate))\n",
                 "self.denseblock2 = DenseBlock((num_init_features + (block_config[0] - 1) * growth_rate + growth_rate)"
                 " // 2, block_config[1], growth_rate, bn_size, drop_rate)"]:
        assert line in text, line
    assert hasattr(module, "DenseBlock") and not hasattr(module, "DenseBlock2")
    assert "denselayer2" not in text
    x = torch.randn(2, 3, 64, 64)
    same_as(module.Densenet121(num_classes=10), torchvision.models.densenet121(num_classes=10), x)
    same_as(module.Densenet121(block_config=(6, 12, 32, 32), num_classes=10),
            torchvision.models.densenet169(num_classes=10), x, seed=1)


STACK = """
specgraph: 1
params: {depth: 3}
inputs: {x: [N, 4]}
blocks:
  widen:
    inputs: [x]
    nodes:
      fc: {op: linear, out: "${WIDTH}"}
  stack:
    params: {n: int}
    inputs: [x]
    nodes:
      layers: {block: widen, repeat: $n, inline: true, name: "wide{index}"}
graph:
  body: {block: stack, n: $depth}
  head: {op: linear, out: 2}
"""


def _stack(width: str, tmp_path, name: str):
    graph = specgraph.check(STACK.replace("WIDTH", width))
    model = specgraph.build(graph)
    text = python_source(model, graph)
    generated = generated_class(import_source(text, tmp_path, name))()
    assert list(generated.state_dict()) == list(model.state_dict())
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), model(x), atol=0, rtol=0)
    return text


def test_widths_growing_by_a_step_are_a_loop(tmp_path):
    """Widths 4, 12, 20: one loop, and the head's width after it follows the depth."""
    text = _stack("x.features + 8", tmp_path, "growing")
    assert "        for index in range(n):\n            self.add_module(f'wide{index}', Widen(in_features + index * 8))\n" \
        in text
    assert "self.head = nn.Linear(4 + (depth - 1) * 8 + 8, 2)" in text


def test_widths_without_an_affine_text_are_written_copy_by_copy(tmp_path):
    """Doubling widths (4, 8, 16): no `a + index * b` gives them (copies 1 and 2 alone would fit
    `index * (2 * c)`: a step is taken from three copies at least), so each copy is written as it is."""
    text = _stack("x.features * 2", tmp_path, "doubling")
    assert "for index in range(n)" not in text
    for line in ["self.wide0 = Widen(in_features)", "self.wide1 = Widen(in_features * 2)",
                 "self.wide2 = Widen(in_features * 2 * 2)"]:
        assert line in text, line
