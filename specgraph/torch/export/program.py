"""A torch.export program (.pt2) of the eval-mode model, its symbolic dims dynamic where they can be."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import torch
from torch import nn

from ...ir.graph import Graph
from ..input_check import input_check_off
from .inputs import auto_shapes, dynamic_shapes, eval_module, example_inputs

PathLike = Union[str, "os.PathLike[str]"]


def export_program(model: nn.Module, graph: Graph, inputs: tuple[torch.Tensor, ...] | None = None, *,
                   dynamic: bool = True) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the eval-mode model, its symbolic input dims dynamic where they can be.

    Named dims (``N``, ``H``) are asked for first; where torch.export proves one cannot vary
    (or finds relations between them it wants spelt out), every dim is left to torch.export
    to decide (``Dim.AUTO``): dynamic where it can be, fixed at the example size where not.
    """
    module = eval_module(model)
    inputs = inputs if inputs is not None else example_inputs(graph, model)
    shapes = dynamic_shapes(graph) if dynamic else ()
    with warnings.catch_warnings(), input_check_off(module):  # the program states its own shape guards
        # torch's RNN modules keep a list of their weights that export reports as "assigned
        # during export"; the weights themselves are registered parameters, so nothing is lost.
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
        if not any(shapes):
            return torch.export.export(module, inputs)
        try:
            return torch.export.export(module, inputs, dynamic_shapes=shapes)
        except Exception:  # noqa: BLE001 - a constraint the named dims do not meet: let torch.export choose
            return torch.export.export(module, inputs, dynamic_shapes=auto_shapes(shapes))


def dynamic_dims(program: torch.export.ExportedProgram, graph: Graph) -> dict[str, list[str]]:
    """For each graph input, its declared-symbolic dims that stayed dynamic in ``program``."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    user = set(program.graph_signature.user_inputs)
    values = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    result = {}
    for (name, t), val in zip(graph.inputs.items(), values):
        shape = getattr(val, "shape", ())
        result[name] = [str(d) for d, s in zip(t.shape, shape) if not isinstance(d, int) and not is_concrete_int(s)]
    return result


def save_program(program: torch.export.ExportedProgram, path: PathLike) -> Path:
    """Write an exported program (``torch.export.load(path).module()`` runs it again)."""
    torch.export.save(program, str(path))
    return Path(path)


__all__ = ["export_program", "dynamic_dims", "save_program"]
