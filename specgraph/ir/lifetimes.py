"""When the built module lets go of each value: when the block it was passed into returns, as
an ``nn.Module`` call lets go of its argument.

A hand-written model holds every tensor it passes into a submodule until that call returns:
torchvision's ``InvertedResidual.forward(input)`` keeps ``input`` through the whole block, and
the ``nn.Sequential`` around a conv, its batch norm and its activation keeps the conv's input
until the activation is done.  The built module is one flat forward over the same module tree
(a node's path is its module path, ``features.2.block.0.0``), and would drop each value right
after its last reader.  It holds them as the nested calls do instead, so that it allocates and
frees exactly as the hand-written model with the same names does — same peak, same order.

Why: on CPU, glibc's malloc hands large freed blocks back to the kernel when the top of its heap
is free, so a fresh inference process pays page faults for them on every call, and how much
depends on the order of the frees.  Freeing earlier than torchvision (a lower peak, by ~10 % on
mobilenet_v3_large) left the heap in a state where 4 of 5 fresh processes re-faulted ~26k pages
a call against torchvision's ~16k, and ran 15 % slower; freed in torchvision's order, no process
did (BENCHMARKS.md, bench_core's findings).  The cost is torchvision's own peak.

The rule, over the steps the module runs in order: a value read by a step leaves that read at
the end of the outermost block around the reader that does not also hold the value's producer
(the block the value is passed into), or at the reader itself when it is a leaf of a block
holding the producer; a value is let go after the last of its reads.  The builder's generated
forward (torch/lifetimes.py) and the memory walk (analysis/memory/walk.py) both read it.
"""

from __future__ import annotations

from typing import Iterable

from .graph import Node


def scope_ends(steps: Iterable[Node]) -> dict[str, str]:
    """For each block path the steps fall in (and each step's own path), its last step's path."""
    ends: dict[str, str] = {}
    for step in steps:
        parts = step.path.split(".")
        for k in range(1, len(parts) + 1):
            ends[".".join(parts[:k])] = step.path
    return ends


def released_after(steps: Iterable[Node]) -> dict[tuple[str, str], str]:
    """For each value (producer path, port) that ``steps`` read, the path of the step after which
    the module lets it go.  ``steps``: the nodes the module runs, in its order."""
    steps = list(steps)
    ends = scope_ends(steps)
    position = {s.path: i for i, s in enumerate(steps)}
    released: dict[tuple[str, str], str] = {}
    for step in steps:
        reader = step.path.split(".")
        for v in step.inputs:
            producer = v.node.split(".")
            k = 0  # the blocks around both (a step's path is never a prefix of another's)
            while k < len(reader) - 1 and k < len(producer) and producer[k] == reader[k]:
                k += 1
            held_until = ends[".".join(reader[:k + 1])]  # the block the value is passed into
            now = released.get((v.node, v.port))
            if now is None or position[held_until] > position[now]:
                released[(v.node, v.port)] = held_until
    return released


__all__ = ["released_after", "scope_ends"]
