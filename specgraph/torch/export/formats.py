"""Export a built spec: ONNX, TorchScript, a torch.export program (.pt2), or Python source.

    specgraph.export("specs/resnet50.yaml", onnx="resnet50.onnx", python="resnet50.py", num_classes=10)
    specgraph export specs/resnet50.yaml --onnx resnet50.onnx --set num_classes=10

Every format but Python is a trace of the model in **eval mode**: training-only outputs
(GoogLeNet's auxiliary heads) are left out, dropout is the identity, batch norm uses its running
statistics.  The Python source keeps both modes (see :mod:`specgraph.export_python`).

Tracing needs example inputs: random tensors of the declared shapes, each symbolic dim given a
size (``N`` 2, others 32 unless ``dims`` says otherwise).  Symbolic dims stay dynamic in the
ONNX model and the exported program (an ONNX input ``image`` gets the shape ``[N, 3, H, W]``),
so one file serves any batch size — except the time dim of recurrent nodes (``scan:`` loops
over it in Python; torch's rnn/lstm/gru are decomposed step by step by torch.export), whose
loop is unrolled into the trace: :func:`fixed_dims` names those dims and why, and they keep
their example size.  TorchScript scripts the module where it can and traces it where it cannot
(the Scan and LSTM wrappers take a variable number of arguments, which scripting refuses); a
traced module has the example's sizes wherever Python code read them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import fx, nn

from ...ir.graph import Graph

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_BATCH = 2  # not 1: torch.export treats sizes 0 and 1 as special and would fix them
DEFAULT_SIZE = 32
# ONNX keeps weights inside the .onnx file up to protobuf's 2 GiB limit; above, beside it.
EXTERNAL_DATA_BYTES = 1_500_000_000


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
    eval_gm = model.__dict__.get("eval_graph_module")
    return (eval_gm if isinstance(eval_gm, fx.GraphModule) else model).eval()


# Ops that loop over their input's time dim in Python (scan) or in a decomposition that
# torch.export unrolls (torch's rnn/lstm/gru: aten.lstm & co. are decomposed step by step):
# the sequence length is a constant of the trace.
RECURRENT_OPS = ("scan", "rnn", "lstm", "gru")


def fixed_dims(graph: Graph) -> dict[str, str]:
    """Symbolic dims that an export fixes at their example size, each with the reason.

    The time dim of every recurrent node's sequence input: the loop over time steps is
    unrolled into the trace, one copy of the cell per step.
    """
    fixed: dict[str, str] = {}
    for node in graph.op_nodes():
        if node.op not in RECURRENT_OPS or not node.inputs:
            continue
        batch_first = getattr(node.params, "batch_first", True)
        seq = node.inputs[0].type
        if seq.rank < 2:
            continue
        time = seq.shape[1 if batch_first else 0]
        for name in getattr(time, "symbols", ()):
            fixed.setdefault(name, f"the time dim of {node.op} node {node.path!r}: its loop over time steps is "
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


def _auto(shapes: tuple[dict[int, Any], ...]) -> tuple[dict[int, Any], ...]:
    return tuple({axis: torch.export.Dim.AUTO for axis in axes} for axes in shapes)


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
    with warnings.catch_warnings():
        # torch's RNN modules keep a list of their weights that export reports as "assigned
        # during export"; the weights themselves are registered parameters, so nothing is lost.
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
        if not any(shapes):
            return torch.export.export(module, inputs)
        try:
            return torch.export.export(module, inputs, dynamic_shapes=shapes)
        except Exception:  # noqa: BLE001 - a constraint the named dims do not meet: let torch.export choose
            return torch.export.export(module, inputs, dynamic_shapes=_auto(shapes))


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


def to_onnx(model: nn.Module, graph: Graph, path: PathLike, inputs: tuple[torch.Tensor, ...] | None = None, *,
            dynamic: bool = True, opset: int | None = None, external_data: bool | None = None) -> Path:
    """Write the eval-mode model as ONNX (torch's exporter, torch.export-based), named after the spec.

    Graph inputs and outputs keep the spec's names (see :func:`onnx_output_names`); symbolic dims
    stay dynamic where they can.
    ``external_data``: weights in a ``<path>.data`` file beside it (faster to write for large
    models); by default inside the one file unless they exceed protobuf's size limit.
    """
    module = eval_module(model)
    inputs = inputs if inputs is not None else example_inputs(graph, model)
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    kwargs = dict(input_names=list(graph.inputs), output_names=onnx_output_names(graph),
                  opset_version=opset, verbose=False, report=False)
    shapes = dynamic_shapes(graph) if dynamic and any(dynamic_shapes(graph)) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # From the module, not from an ExportedProgram: only then do the named dims (N, H)
        # become the ONNX dim names.
        try:
            onnx_program = torch.onnx.export(module, inputs, dynamic_shapes=shapes, **kwargs)
        except Exception:  # noqa: BLE001 - a constraint the named dims do not meet: let torch.export choose
            if shapes is None:
                raise
            onnx_program = torch.onnx.export(module, inputs, dynamic_shapes=_auto(shapes), **kwargs)
    onnx_program.save(str(path), external_data=size > EXTERNAL_DATA_BYTES if external_data is None else external_data)
    return Path(path)


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


def to_torchscript(model: nn.Module, graph: Graph, path: PathLike, inputs: tuple[torch.Tensor, ...] | None = None,
                   *, method: str = "auto") -> str:
    """Write the eval-mode model as TorchScript (``torch.jit.load`` reads it); returns "script" or "trace".

    ``method``: "script", "trace", or "auto" (script, else trace).
    """
    if method not in ("auto", "script", "trace"):
        raise ValueError(f"method must be auto, script or trace, found {method!r}")
    module = eval_module(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's own deprecation and tracer notices
        scripted = None
        if method in ("auto", "script"):
            try:
                scripted, used = torch.jit.script(module), "script"
            except Exception:  # noqa: BLE001 - scripting refuses some Python; tracing records what runs
                if method == "script":
                    raise
        if scripted is None:
            inputs = inputs if inputs is not None else example_inputs(graph, model)
            scripted, used = torch.jit.trace(module, inputs, check_trace=False), "trace"
        torch.jit.save(scripted, str(path))
    return used


def to_python(model: nn.Module, graph: Graph, path: PathLike, *, source: str | None = None) -> Path:
    """Write a standalone nn.Module source file equal to ``model`` (see :mod:`specgraph.export_python`)."""
    from .python import python_source

    params = ", ".join(f"{k}={v!r}" for k, v in graph.params.items())
    ins = ", ".join(f"{k} {v}" for k, v in graph.inputs.items())
    outs = ", ".join(f"{o.name} {o.value.type}" + (" (train only)" if o.train_only else "") for o in graph.outputs)
    doc = (f"{graph.name}, written by specgraph export{f' from {source}' if source else ''}; needs only torch.\n\n"
           f"params: {params or 'none'}\ninputs: {ins}\noutputs: {outs}\n\n"
           f"The state_dict keys are the spec's node paths, as in the module specgraph builds.")
    Path(path).write_text(python_source(model, docstring=doc), encoding="utf-8")
    return Path(path)


def _source_of(spec: Any) -> str | None:
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec):
        return str(spec)
    return None


def export(spec: Any, *, onnx: PathLike | None = None, torchscript: PathLike | None = None,
           exported: PathLike | None = None, python: PathLike | None = None, optimize: str | None = None,
           dims: Mapping[str, int] | None = None, model: nn.Module | None = None, source: str | None = None,
           **params: Any) -> dict[str, Path]:
    """Build ``spec`` (with ``params``) and write it in each format given a path; returns {format: path}.

    ``optimize``: "inference" runs :func:`specgraph.passes.optimize` first (batch norm folded,
    dropout dropped, channels_last).  ``model``: export this module (e.g. with trained weights)
    instead of a freshly built one; it must have been built from ``spec``.  ``dims``: sizes of
    symbolic dims in the example inputs.  ``source``: the spec's file, named in the Python file's
    docstring (found by itself when ``spec`` is a path).
    """
    from ...api import check
    from ..build import build_module

    if not any((onnx, torchscript, exported, python)):
        raise ValueError("give at least one of onnx=, torchscript=, exported=, python=")
    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    model = model if model is not None else build_module(graph)
    if optimize:
        from ..passes.optimize import optimize as run_passes

        model = run_passes(model, optimize, graph=graph, prepack=False)  # formats hold plain convs
    model.eval()
    inputs = example_inputs(graph, model, dims=dims)
    writers = {
        "python": lambda path: to_python(model, graph, path, source=source or _source_of(spec)),
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
        except ExportError:
            raise
        except Exception as e:  # torch's exporters: say which format failed and why, not a traceback
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ExportError(f"{fmt} export of {graph.name} failed: {type(e).__name__}: {first}") from e
    return written


__all__ = ["export", "ExportError", "example_inputs", "eval_module", "fixed_dims", "dynamic_shapes",
           "onnx_output_names", "dynamic_dims", "export_program", "save_program", "to_onnx", "to_torchscript",
           "to_python"]
