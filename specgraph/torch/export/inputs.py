"""What an export traces with: example inputs of the declared shapes, the eval-mode module, and
which symbolic dims stay dynamic (all but the time dims of loops, which the trace unrolls)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ...ir.graph import Graph
from ...ir.traits import Trait
from ..build import graph_modules

DEFAULT_BATCH = 2  # not 1: torch.export treats sizes 0 and 1 as special and would fix them
DEFAULT_SIZE = 32


class ExportError(Exception):
    """A model that cannot be written in the format asked for; the message names the part and why."""


def example_inputs(graph: Graph, model: nn.Module | None = None, *, dims: Mapping[str, int] | None = None,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random tensors of the graph's input shapes (``dims`` sizes the symbolic dims).

    Integer inputs (token ids) are drawn below the smallest embedding table of ``model``.
    """
    sizes = {"N": DEFAULT_BATCH, **(dims or {})}
    gen = torch.Generator().manual_seed(seed)
    high = _smallest_vocabulary(model)
    tensors = []
    for t in graph.inputs.values():
        shape = [d if isinstance(d, int) else sizes.get(str(d), DEFAULT_SIZE) for d in t.shape]
        dtype = getattr(torch, t.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            tensors.append(torch.randint(0, high, shape, generator=gen, dtype=dtype))
    return tuple(tensors)


def _smallest_vocabulary(model: nn.Module | None) -> int:
    tables = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)] if model is not None else []
    return min(tables, default=2)


def eval_module(model: nn.Module) -> nn.Module:
    """The module to trace: ``model``'s eval-mode graph (a TrainEvalModule's eval GraphModule), in eval mode."""
    return graph_modules(model)[0].eval()


def fixed_dims(graph: Graph) -> dict[str, str]:
    """Symbolic dims that an export fixes at their example size, each with the reason.

    The time dim of every node that loops over time (``Trait.LOOPS_OVER_TIME``: a scan loops
    in Python, torch.export decomposes rnn/lstm/gru step by step): the loop is unrolled into
    the trace, one copy of the cell per step.
    """
    fixed: dict[str, str] = {}
    for node in graph.op_nodes():
        if Trait.LOOPS_OVER_TIME not in node.traits or not node.inputs:
            continue
        seq = node.inputs[0].type
        axis = node.op.time_axis(node.params)
        if seq.rank <= axis:
            continue
        for name in getattr(seq.shape[axis], "symbols", ()):
            fixed.setdefault(name, f"the time dim of {node.op_name} node {node.path!r}: its loop over time steps is "
                                   f"unrolled into the trace")
    return fixed


def dynamic_shapes(graph: Graph) -> tuple[dict[int, Any], ...]:
    """For torch.export: a ``torch.export.Dim`` per symbol of the inputs' shapes (shared between
    inputs), except those :func:`fixed_dims` names, which stay at their example size."""
    fixed = fixed_dims(graph)
    made: dict[str, Any] = {}
    specs = []
    for t in graph.inputs.values():
        axes = {}
        for axis, d in enumerate(t.shape):
            if isinstance(d, int):
                continue
            name = str(d)
            if fixed.keys() & d.symbols:
                continue
            if name not in made:
                made[name] = torch.export.Dim(name) if name.isidentifier() else torch.export.Dim.AUTO
            axes[axis] = made[name]
        specs.append(axes)
    return tuple(specs)


def auto_shapes(shapes: tuple[dict[int, Any], ...]) -> tuple[dict[int, Any], ...]:
    return tuple({axis: torch.export.Dim.AUTO for axis in axes} for axes in shapes)


__all__ = ["ExportError", "example_inputs", "eval_module", "fixed_dims", "dynamic_shapes", "auto_shapes",
           "DEFAULT_BATCH", "DEFAULT_SIZE"]
