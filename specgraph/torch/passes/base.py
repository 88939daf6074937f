"""What the passes share: the torch.fx pass interface they implement, and how they read the
spec node behind an fx node (``fx_node.meta["specgraph"]``, written by the builder)."""

from __future__ import annotations

from torch import fx, nn
from torch.fx.passes.infra.pass_base import PassBase, PassResult

from ..build import spec_node

__all__ = ["SpecPass", "PassResult", "spec_node", "module_of", "finish"]


class SpecPass(PassBase):
    """A pass over a built model's eval GraphModule, in place.  ``call`` returns a PassResult
    (``modified``); what it changed is kept in ``self.changed`` for the PassReport."""

    name: str = ""

    def __init__(self) -> None:
        self.changed: list = []

    def call(self, graph_module: fx.GraphModule) -> PassResult:
        self.changed = list(self.run(graph_module))
        finish(graph_module)
        return PassResult(graph_module, bool(self.changed))

    def run(self, gm: fx.GraphModule) -> list:
        raise NotImplementedError


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The submodule an fx node calls (None for function calls)."""
    if node.op != "call_module":
        return None
    return gm.get_submodule(node.target)


def finish(gm: fx.GraphModule) -> None:
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
