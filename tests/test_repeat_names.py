"""`repeat` with a `name:` template: the copies named as a reference model names them
(torchvision's DenseNet `denselayer1 ...`, RegNet `block1-0 ...`), so its weights load strictly."""

from __future__ import annotations

import pytest
import torch

import specgraph

SPEC = """
specgraph: 1
name: dense
params: {layers: 3, first: 1}
inputs:
  x: {shape: [N, 4]}
graph:
  block:
    repeat: $layers
    name: "denselayer{index + first}"
    op: linear
    out: 4
  head: {op: linear, out: 2}
"""


def test_copies_take_the_template_names_and_load_a_reference_strictly():
    model = specgraph.build(SPEC)
    assert [k for k in model.state_dict()][:6] == [
        "block.denselayer1.weight", "block.denselayer1.bias", "block.denselayer2.weight",
        "block.denselayer2.bias", "block.denselayer3.weight", "block.denselayer3.bias"]
    ref = torch.nn.Module()
    ref.block = torch.nn.Sequential()
    for i in range(1, 4):
        ref.block.add_module(f"denselayer{i}", torch.nn.Linear(4, 4))
    ref.head = torch.nn.Linear(4, 2)
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), ref.head(ref.block(x)))
    # the params are in sight of the template; a hyphen is allowed in made names
    hyphen = specgraph.build(SPEC.replace('"denselayer{index + first}"', '"block1-{index}"'), layers=2)
    assert "block.block1-1.weight" in hyphen.state_dict()


@pytest.mark.parametrize("change,code,words", [
    ('"denselayer{index + first}"', None, None),
    ('"denselayer"', "E305", "makes 'denselayer' twice (index 0 and 1)"),
    ('"layer.{index}"', "E204", "which is no node name"),
    ('"train"', "E204", "makes 'train' at index 0, which is no node name"),  # torch's Module.train
    ('"{index / 2}"', "E204", "must give an int or a string"),
    ('"x{undefined}"', "E502", "undefined"),
])
def test_bad_templates_are_located_errors(change, code, words):
    text = SPEC.replace('"denselayer{index + first}"', change)
    if code is None:
        assert specgraph.check(text)
        return
    with pytest.raises(specgraph.SpecError) as e:
        specgraph.check(text)
    assert e.value.codes == [code] and words in e.value.format()
    assert e.value.diagnostics[0].location.line == 10  # on the `name:` line


def test_name_without_repeat_is_refused():
    text = "specgraph: 1\ninputs: {x: {shape: [N, 4]}}\ngraph:\n  a: {op: linear, out: 2, name: b}\n"
    with pytest.raises(specgraph.SpecError) as e:
        specgraph.check(text)
    assert e.value.codes == ["E204"] and "`name` names the copies of a `repeat`" in e.value.format()
