"""Run ops in place where nothing else reads their input, as torchvision's hand-written
models do (``nn.ReLU(inplace=True)``, ``out += identity``): each saves allocating, and on CPU
first touching, one activation-sized buffer.

An op says it may overwrite its first input with ``Trait.INPLACE_SAFE`` and rewrites its own
fx call (``Op.make_in_place``).  The pass allows it only where the overwritten input is a
fresh tensor (the output of a conv, linear, batch norm, or of an op this pass made in place)
that has no other user, and where every input has the result's shape and dtype (nothing
broadcasts into the overwritten one).  The build already ran in place what it may in training
too (``ir/in_place.py``); in eval mode this pass may also overwrite what autograd would have
needed (a relu's output).
"""

from __future__ import annotations

from torch import fx, nn

from ...ir.traits import Trait
from ..build import IN_PLACE_KEY
from .base import SpecPass, module_of, spec_node
from .fold_batchnorm import BN_TYPES, CONV_TRANSPOSE_TYPES, CONV_TYPES

# Producers whose output is a fresh tensor (never a view of another value), so that an op
# that is its only user may overwrite it.
FRESH_MODULES = CONV_TYPES + CONV_TRANSPOSE_TYPES + BN_TYPES + (nn.Linear,)


class InPlace(SpecPass):
    """``changed``: the fx node names made in place."""

    name = "in_place"

    def run(self, gm: fx.GraphModule) -> list[str]:
        fresh = {n for n in gm.graph.nodes if isinstance(module_of(gm, n), FRESH_MODULES)}
        changed = []
        for node in list(gm.graph.nodes):
            if node.meta.get(IN_PLACE_KEY) and node.args and node.args[0] in fresh:
                fresh.add(node)  # built in place over a fresh tensor: the same storage
                continue
            made = spec_node(node)
            if made is None or Trait.INPLACE_SAFE not in made.traits or node.op != "call_function" or not node.args:
                continue
            first = node.args[0]
            if not isinstance(first, fx.Node) or first not in fresh or len(first.users) != 1:
                continue
            if not all(v.type == made.out for v in made.inputs) or not made.op.make_in_place(node):
                continue
            fresh.add(node)
            changed.append(node.name)
        return changed
