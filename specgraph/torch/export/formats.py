"""Export a built spec: ONNX, TorchScript, a torch.export program (.pt2), or Python source.

    specgraph.export("specs/resnet50.yaml", onnx="resnet50.onnx", python="resnet50.py", num_classes=10)
    specgraph export specs/resnet50.yaml --onnx resnet50.onnx --set num_classes=10

Every format but Python is a trace of the model in **eval mode**: training-only outputs
(GoogLeNet's auxiliary heads) are left out, dropout is the identity, batch norm uses its running
statistics.  The Python source keeps both modes (see :mod:`specgraph.torch.export.python`).

Tracing needs example inputs: random tensors of the declared shapes, each symbolic dim given a
size (``N`` 2, others 32 unless ``dims`` says otherwise).  Symbolic dims stay dynamic in the
ONNX model and the exported program (an ONNX input ``image`` gets the shape ``[N, 3, H, W]``),
so one file serves any batch size — except the time dim of recurrent nodes (``scan:`` loops
over it in Python; torch's rnn/lstm/gru are decomposed step by step by torch.export), whose
loop is unrolled into the trace: :func:`~specgraph.torch.export.inputs.fixed_dims` names those dims and why, and they keep
their example size.  TorchScript scripts the module where it can and traces it where it cannot
(the Scan and LSTM wrappers take a variable number of arguments, which scripting refuses); a
traced module has the example's sizes wherever Python code read them.

The formats live one per module beside this one (inputs, program, onnx, torchscript, python);
this module writes the ones asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Union

from torch import nn

from ...ir.graph import Graph
from ..build import build_module
from ..passes.optimize import optimize as run_passes
from .inputs import DEFAULT_BATCH, DEFAULT_SIZE, ExportError, dynamic_shapes, eval_module, example_inputs, fixed_dims
from .onnx import export_failure, onnx_output_names, to_onnx
from .program import dynamic_dims, export_program, save_program
from .torchscript import to_torchscript

PathLike = Union[str, "os.PathLike[str]"]


def to_python(model: nn.Module, graph: Graph, path: PathLike, *, source: str | None = None) -> Path:
    """Write a standalone nn.Module source file equal to ``model`` (see :mod:`specgraph.torch.export.python`)."""
    from .python import python_source

    params = ", ".join(f"{k}={v!r}" for k, v in graph.params.items())
    ins = ", ".join(f"{k} {v}" for k, v in graph.inputs.items())
    outs = ", ".join(f"{o.name} {o.value.type}" + (" (train only)" if o.train_only else "") for o in graph.outputs)
    doc = (f"{graph.name}, written by specgraph export{f' from {source}' if source else ''}; needs only torch.\n\n"
           f"params: {params or 'none'}\ninputs: {ins}\noutputs: {outs}\n\n"
           f"The state_dict keys are the spec's node paths, as in the module specgraph builds.")
    Path(path).write_text(python_source(model, graph, docstring=doc), encoding="utf-8")
    return Path(path)


def export(graph: Graph, *, onnx: PathLike | None = None, torchscript: PathLike | None = None,
           exported: PathLike | None = None, python: PathLike | None = None, optimize: str | None = None,
           dims: Mapping[str, int] | None = None, model: nn.Module | None = None,
           source: str | None = None) -> dict[str, Path]:
    """Build ``graph`` and write it in each format given a path; returns {format: path}.

    ``optimize``: "inference" runs :func:`specgraph.torch.passes.optimize.optimize` first (batch
    norm folded, dropout dropped, channels_last).  ``model``: export this module (e.g. with
    trained weights) instead of a freshly built one; it must have been built from ``graph``.
    ``dims``: sizes of symbolic dims in the example inputs.  ``source``: the spec's file, named
    in the Python file's docstring.  (:func:`specgraph.export` takes a spec path or text.)
    """
    if not any((onnx, torchscript, exported, python)):
        raise ValueError("give at least one of onnx=, torchscript=, exported=, python=")
    # exports carry no input check; and the plain ops (out of place): the Python source reads as a
    # person writes it, and the other formats' runtimes plan their own buffers
    model = model if model is not None else build_module(graph, check_inputs=False, in_place=False)
    if optimize:
        model = run_passes(model, optimize, prepack=False)  # formats hold plain convs
    model.eval()
    inputs = example_inputs(graph, model, dims=dims)
    writers = {
        "python": lambda path: to_python(model, graph, path, source=source),
        "exported": lambda path: save_program(export_program(model, graph, inputs), path),
        "onnx": lambda path: to_onnx(model, graph, path, inputs),
        "torchscript": lambda path: to_torchscript(model, graph, path, inputs) and Path(path),
    }
    written: dict[str, Path] = {}
    for fmt, path in (("python", python), ("exported", exported), ("onnx", onnx), ("torchscript", torchscript)):
        if not path:
            continue
        try:
            written[fmt] = writers[fmt](path)
        except (ExportError, OSError):  # a write that failed is not the format's limit
            raise
        except Exception as e:  # torch's exporters: say which format failed and why, not a traceback
            raise ExportError(f"{fmt} export of {graph.name} failed: {export_failure(e)}") from e
    return written


__all__ = ["export", "ExportError", "example_inputs", "eval_module", "fixed_dims", "dynamic_shapes",
           "onnx_output_names", "dynamic_dims", "export_program", "save_program", "to_onnx", "to_torchscript",
           "to_python", "DEFAULT_BATCH", "DEFAULT_SIZE"]
