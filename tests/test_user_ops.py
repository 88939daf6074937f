"""Users add ops without editing specgraph: with @register_op in their code, or through the
`specgraph.ops` entry-point group of an installed package."""

from __future__ import annotations

import sys
import textwrap

import torch

import specgraph
from specgraph.ir.tensor_type import TensorType
from specgraph.ops import Op, OpParams, get_op, register_op
from specgraph.ops import registry
from specgraph.ops.base import Float


SPEC = """
specgraph: 1
inputs: {x: [N, 4, 8, 8]}
graph:
  conv: {op: conv2d, out: 6, kernel: 3, padding: 1}
  act:  {op: OPNAME, beta: 2.0}
"""


def test_decorator_registered_op_is_usable_in_a_spec():
    @register_op
    class ScaledSwish(Op):
        """x * sigmoid(beta * x); [*] -> [*]."""

        name = "test_scaled_swish"
        category = "activation"

        class Params(OpParams):
            beta: Float = 1.0

        def infer(self, p, inputs: list[TensorType]) -> list[TensorType]:
            return [inputs[0]]

        def emit(self, p, graph, args):
            scaled = graph.call_function(torch.mul, (args[0], p.beta))
            return graph.call_function(torch.mul, (args[0], graph.call_function(torch.sigmoid, (scaled,))))

    graph = specgraph.check(SPEC.replace("OPNAME", "test_scaled_swish"))
    assert graph.node("act").op_name == "test_scaled_swish"
    model = specgraph.build(graph)
    x = torch.randn(2, 4, 8, 8)
    y = model.conv(x)
    torch.testing.assert_close(model(x), y * torch.sigmoid(2.0 * y))


def test_entry_point_op_is_loaded_on_lookup(tmp_path, monkeypatch):
    pkg = tmp_path / "myops.py"
    pkg.write_text(textwrap.dedent('''
        from specgraph.ops import Op, OpParams
        from specgraph.ops.base import Float

        class Hardish(Op):
            """clamp(beta * x, 0, 1); [*] -> [*]."""
            name = "test_entry_point_op"
            category = "activation"
            class Params(OpParams):
                beta: Float = 1.0
            def infer(self, p, inputs):
                return [inputs[0]]
            def build(self, p, inputs):
                import torch
                class M(torch.nn.Module):
                    def forward(self, x):
                        return torch.clamp(p.beta * x, 0, 1)
                return M()
    '''))
    dist = tmp_path / "myops-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myops\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[specgraph.ops]\nhardish = myops:Hardish\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry.REGISTRY, "_plugins_loaded", False)
    assert get_op("test_entry_point_op") is not None
    model = specgraph.build(SPEC.replace("OPNAME", "test_entry_point_op"))
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(model(x), torch.clamp(2.0 * model.conv(x), 0, 1))
    sys.modules.pop("myops", None)


def test_a_checked_graph_keeps_the_op_it_was_checked_with():
    # The Graph holds op objects, not names: registering another op under the name later
    # changes the graphs checked afterwards only.
    class First(Op):
        name = "test_reregistered"

        class Params(OpParams):
            beta: Float = 1.0

        def infer(self, p, inputs):
            return [inputs[0]]

        def emit(self, p, graph, args):
            return graph.call_function(torch.mul, (args[0], p.beta))

    class Second(First):
        def emit(self, p, graph, args):
            return graph.call_function(torch.add, (args[0], p.beta))

    try:
        register_op(First)
        before = specgraph.check(SPEC.replace("OPNAME", "test_reregistered"))
        register_op(Second)
        after = specgraph.check(SPEC.replace("OPNAME", "test_reregistered"))
        assert type(before.node("act").op) is First and type(after.node("act").op) is Second
        x = torch.randn(1, 4, 8, 8)
        old, new = specgraph.build(before), specgraph.build(after)
        new.load_state_dict(old.state_dict())
        torch.testing.assert_close(old(x), 2.0 * old.conv(x))
        torch.testing.assert_close(new(x), new.conv(x) + 2.0)
    finally:
        registry.REGISTRY.unregister("test_reregistered")


def test_the_graph_is_frozen():
    import dataclasses

    import pytest

    graph = specgraph.check(SPEC.replace("OPNAME", "relu").replace(", beta: 2.0", ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.node("act").params = None
    with pytest.raises(TypeError):
        graph.node_map["x"] = None
    with pytest.raises(TypeError):
        graph.node("act").outputs["out"] = None
