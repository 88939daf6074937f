"""Drop every node that is the identity in eval mode (``Trait.IDENTITY_IN_EVAL``: the dropout
variants; zoneout is not, and stays): its input is used instead.  An fx node without a spec
node (a GraphModule made by other means) is dropped when it calls a torch dropout module."""

from __future__ import annotations

from torch import fx, nn

from ...ir.traits import Trait
from .base import SpecPass, module_of, spec_node


class DropDropout(SpecPass):
    """``changed``: the paths of the nodes dropped."""

    name = "drop_dropout"

    def run(self, gm: fx.GraphModule) -> list[str]:
        dropped = []
        for node in list(gm.graph.nodes):
            made = spec_node(node)
            identity = (Trait.IDENTITY_IN_EVAL in made.traits if made is not None
                        else isinstance(module_of(gm, node), nn.modules.dropout._DropoutNd))
            if identity and len(node.args) == 1 and isinstance(node.args[0], fx.Node):
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
                dropped.append(node.target if node.op == "call_module" else node.name)
        return dropped
