"""ONNX of the eval-mode model (torch's torch.export-based exporter), named after the spec."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Union

import torch
from torch import nn

from ...ir.graph import Graph
from ..input_check import input_check_off
from .inputs import auto_shapes, dynamic_shapes, eval_module, example_inputs

PathLike = Union[str, "os.PathLike[str]"]
# ONNX keeps weights inside the .onnx file up to protobuf's 2 GiB limit; above, beside it.
EXTERNAL_DATA_BYTES = 1_500_000_000


def to_onnx(model: nn.Module, graph: Graph, path: PathLike, inputs: tuple[torch.Tensor, ...] | None = None, *,
            dynamic: bool = True, opset: int | None = None, external_data: bool | None = None) -> Path:
    """Write the eval-mode model as ONNX (torch's exporter, torch.export-based), named after the spec.

    Graph inputs and outputs keep the spec's names (see :func:`onnx_output_names`); symbolic dims
    stay dynamic where they can.
    ``external_data``: weights in a ``<path>.data`` file beside it (faster to write for large
    models); by default inside the one file unless they exceed protobuf's size limit.
    """
    program = onnx_program(model, graph, inputs, dynamic=dynamic, opset=opset)
    size = weight_bytes(model)
    program.save(str(path), external_data=size > EXTERNAL_DATA_BYTES if external_data is None else external_data)
    return Path(path)


def onnx_program(model: nn.Module, graph: Graph, inputs: tuple[torch.Tensor, ...] | None = None, *,
                 dynamic: bool = True, opset: int | None = None):
    """The eval-mode model as an in-memory ``torch.onnx.ONNXProgram`` (what :func:`to_onnx`
    saves): inputs and outputs named after the spec, symbolic dims dynamic where they can be."""
    module = eval_module(model)
    inputs = inputs if inputs is not None else example_inputs(graph, model)
    kwargs = dict(input_names=list(graph.inputs), output_names=onnx_output_names(graph),
                  opset_version=opset, verbose=False, report=False)
    shapes = dynamic_shapes(graph) if dynamic and any(dynamic_shapes(graph)) else None
    with warnings.catch_warnings(), input_check_off(module):  # an ONNX graph cannot raise it
        warnings.simplefilter("ignore")
        # torch.export chooses which dims stay dynamic (Dim.AUTO): named dims (N, H) it would fix,
        # silently, wherever their guards cannot be stated (a Swin's window count is 1 at some
        # sizes); the dims it keeps are then named after the spec's symbols.
        program = torch.onnx.export(module, inputs, dynamic_shapes=auto_shapes(shapes) if shapes else None,
                                    **kwargs)
        if shapes:
            _name_dims(program, graph)
    return program


def weight_bytes(model: nn.Module) -> int:
    """The bytes of the eval-mode model's weights (what decides where ONNX keeps them)."""
    return sum(t.numel() * t.element_size() for t in eval_module(model).state_dict().values())


def _name_dims(onnx_program, graph: Graph) -> None:
    """Rename the dims torch.export made up (s40) after the spec's symbols they stand for, in
    the graph's inputs and outputs (what a user of the file sees)."""
    import onnx_ir as ir

    names: dict[str, str] = {}
    for value, t in zip(onnx_program.model.graph.inputs, graph.inputs.values()):
        for have, want in zip(value.shape, t.shape):
            if isinstance(have, ir.SymbolicDim) and not isinstance(want, int):
                names.setdefault(have.value, str(want))
    def renamed(dim: str | None) -> str | None:  # in derived dims too: 2*s77 is 2*N
        return None if dim is None else re.sub(r"\b[a-z]+\d+\b", lambda m: names.get(m[0], m[0]), dim)

    for value in (*onnx_program.model.graph.inputs, *onnx_program.model.graph.outputs):
        if value.shape is not None:
            value.shape = ir.Shape([ir.SymbolicDim(renamed(d.value)) if isinstance(d, ir.SymbolicDim) else d
                                    for d in value.shape])


def onnx_output_names(graph: Graph) -> list[str]:
    """The ONNX names of the eval-mode outputs: the spec's, with ``_out`` added where an input
    has the same name (a cell's state ``h`` in and out), since ONNX names each value once."""
    taken = set(graph.inputs)
    names = []
    for o in graph.outputs:
        if o.train_only:
            continue
        name = o.name
        while name in taken:
            name += "_out"
        taken.add(name)
        names.append(name)
    return names


def export_failure(e: Exception) -> str:
    """The line of an exporter's error that says what failed (its "Exception summary": "No ONNX
    function found for <OpOverload(op='prims.bessel_i0e' ...", not its advice on filing a report)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [line.strip() for line in text.split("## Exception summary", 1)[-1].splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return re.sub(r"^<class '[\w.]*?(\w+)'>:", r"\1:", lines[0]) if "## Exception summary" in text \
        else f"{type(e).__name__}: {lines[0]}"


__all__ = ["to_onnx", "export_failure", "onnx_program", "weight_bytes", "onnx_output_names", "EXTERNAL_DATA_BYTES"]
