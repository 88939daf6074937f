"""Which nodes the built module runs in place, overwriting their first input, as torchvision's
hand-written models do (``nn.ReLU(inplace=True)``, ``out += identity``): each saves allocating
(and, on CPU, first touching) one activation-sized buffer.

The builder emits these nodes in their in-place form (``Op.make_in_place``) and the memory walk
counts no new storage for them, both from this one rule, read from the Graph alone, so that it
holds in training as in eval mode.  A node runs in place when:

* its op may overwrite its first input (``Trait.INPLACE_SAFE``; torch's in-place kernels keep
  what their own backward needs);
* that input is the output of a node whose op makes a fresh tensor its own backward does not
  read (``Trait.OVERWRITABLE_OUTPUT``: a convolution, linear, batch norm, add or product; a
  relu's output, which its backward reads, is never overwritten) — never a graph input, a
  parameter or a view of another value — or of a dropout-like node (``Trait.IDENTITY_IN_EVAL``,
  whose output is its input in eval mode and a fresh unsaved tensor in training) whose own input
  qualifies and is read by it alone (torchvision's ConvNeXt: ``result = stochastic_depth(scale *
  block(x)); result += x``);
* nothing else reads that input (one reader, and not a graph output), and it already has the
  result's shape and dtype (nothing broadcasts into it).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from .graph import Graph, OutputInfo
from .traits import Trait


def in_place_nodes(graph: Graph, outputs: Iterable[OutputInfo]) -> frozenset[str]:
    """The paths of the nodes that run in place in the module computing ``outputs``."""
    outputs = tuple(outputs)
    needed = graph.needed_by(outputs)
    steps = [n for n in graph.op_nodes() if n.path in needed]
    readers: Counter = Counter((v.node, v.port) for n in steps for v in n.inputs)
    readers.update((o.value.node, o.value.port) for o in outputs)  # the caller reads the outputs
    chosen = set()
    for node in steps:
        if Trait.INPLACE_SAFE not in node.traits or not node.inputs or len(node.outputs) != 1:
            continue
        first = node.inputs[0]
        if _overwritable(graph, first, readers) and first.type == node.out:
            chosen.add(node.path)
    return frozenset(chosen)


def _overwritable(graph: Graph, value, readers: Counter) -> bool:
    """Whether ``value`` is a fresh tensor that only one node reads and no backward needs."""
    while True:
        producer = graph.node(value.node)
        if producer.is_input or len(producer.outputs) != 1 or readers[(value.node, value.port)] != 1:
            return False
        if Trait.OVERWRITABLE_OUTPUT in producer.traits:
            return True
        if Trait.IDENTITY_IN_EVAL not in producer.traits or not producer.inputs:
            return False
        value = producer.inputs[0]  # in eval mode the same tensor: ask about its input


__all__ = ["in_place_nodes"]
