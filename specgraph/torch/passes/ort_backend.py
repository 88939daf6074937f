"""``optimize(model, "inference", backend="onnxruntime")``: the eval-mode model exported to ONNX in
memory (:func:`specgraph.torch.export.onnx.onnx_program`, the spec's input/output names and
symbolic dims) and run by an onnxruntime session, behind a module called like the built one.

The session: CPUExecutionProvider, every graph optimisation on (``ORT_ENABLE_ALL``: onnxruntime
folds the batch norms and fuses conv + add + activation itself), ``intra_op_num_threads`` =
``torch.get_num_threads()`` when it is made.  A call checks its inputs against the spec as the
built module does (:class:`~specgraph.torch.input_check.InputCheck`, E411 & co.), hands them to
onnxruntime as numpy views of the tensors' memory (no copy for contiguous CPU tensors) and wraps
onnxruntime's result arrays as tensors (no copy): one output as a tensor, several as a tuple in
the spec's order, as the built module returns them.

What it refuses, with a :class:`~specgraph.diagnostics.BackendError`:

* E801 — onnxruntime is not installed, or a built module came without the Graph it was built
  from (its input/output names and symbolic dims are the spec's);
* E802 — a call it cannot serve: in training mode, with an input that needs gradients while
  autograd is on (the session computes no backward), on a device other than the CPU, or at a
  size of a dim the export fixed (torch.export keeps a symbolic dim only where it can state its
  guards);
* E803 — the ONNX export itself failed (an op torch's exporter has no ONNX for).

The module holds no parameters (its weights are inside the session); it pickles and deep-copies
by re-opening the session from the ONNX bytes it keeps.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...diagnostics import BackendError, Diagnostic
from ...ir.graph import Graph
from ..build import graph_modules
from ..export.onnx import EXTERNAL_DATA_BYTES, export_failure, onnx_output_names, onnx_program, weight_bytes
from ..input_check import InputCheck

def onnxruntime_module(model: nn.Module, graph: Graph | None) -> "OnnxRuntimeModule":
    """``model`` (a built module, any mode; left as it is) exported and opened in onnxruntime."""
    ort = _onnxruntime()
    if graph is None:
        raise BackendError(Diagnostic(
            "E801", "backend 'onnxruntime' needs the spec's Graph of a built module (its input and output names "
                    "and symbolic dims)",
            hint="pass the spec itself (specgraph.optimize('net.yaml', backend='onnxruntime')) or "
                 "graph=specgraph.check(spec)"))
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise BackendError(Diagnostic(
            "E802", f"backend 'onnxruntime' runs on the CPU; the model's weights are on {', '.join(sorted(devices))}",
            hint="move the model to the CPU first (model.cpu())"))
    eval_gm = copy.deepcopy(graph_modules(model)[0]).eval()  # the caller's model keeps its mode
    try:
        program = onnx_program(eval_gm, graph)
    except Exception as e:  # torch's exporter: which op and why, not its traceback
        raise BackendError(Diagnostic(
            "E803", f"the ONNX export of {graph.name} failed, so onnxruntime cannot run it: {export_failure(e)}",
            hint="use the default backend (backend='torch'), which runs every op")) from None
    return OnnxRuntimeModule(_serialized(program, weight_bytes(eval_gm)), graph)


class OnnxRuntimeModule(nn.Module):
    """An onnxruntime session over the spec's eval-mode model, called like the built module:
    ``forward(*inputs)`` takes the spec's inputs in declaration order (CPU tensors) and returns
    one tensor for one output, else a tuple in the spec's order (training-only outputs left
    out).  ``input_names`` / ``output_names`` are the ONNX graph's (the spec's names)."""

    def __init__(self, onnx_model: "bytes | tempfile.TemporaryDirectory", graph: Graph):
        super().__init__()
        self.input_names = list(graph.inputs)
        self.output_names = onnx_output_names(graph)
        self.input_check = InputCheck(graph)
        self._declared = {name: (graph.node(name).location, t.shape) for name, t in graph.inputs.items()}
        self._onnx = onnx_model
        self._open()
        self.eval()  # an inference module: training mode is refused

    # ---- the session -------------------------------------------------------------------------
    def _open(self) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings (unused initialisers) are not the user's
        source = self._onnx if isinstance(self._onnx, bytes) else str(Path(self._onnx.name) / "model.onnx")
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        # dims the export kept at their example size although the spec names them: (input, axis) -> size
        self._fixed = {(i, axis): d for i, arg in enumerate(self.session.get_inputs())
                       for axis, d in enumerate(arg.shape)
                       if isinstance(d, int) and not isinstance(self._declared[arg.name][1][axis], int)}

    def __getstate__(self) -> dict[str, Any]:
        if not isinstance(self._onnx, bytes):
            raise TypeError("an onnxruntime module over a model larger than 1.5 GB (its weights in a temporary "
                            "file) cannot be copied or pickled; export it with specgraph.export(onnx=...)")
        state = self.__dict__.copy()
        state.pop("session", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def extra_repr(self) -> str:
        return (f"onnxruntime {self.session.get_providers()[0]}, inputs: {', '.join(self.input_names)}; "
                f"outputs: {', '.join(self.output_names)}")

    # ---- a call --------------------------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor) -> Any:
        if self.training:
            raise BackendError(Diagnostic(
                "E802", "the onnxruntime backend runs inference only; the module is in training mode",
                hint="call .eval() on it, or train the model built by the default backend"))
        grad = torch.is_grad_enabled()
        for name, value in zip(self.input_names, inputs):  # before the spec's check: a meta tensor has no data
            location = self._declared[name][0]
            if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                raise BackendError(Diagnostic(
                    "E802", f"input '{name}' is on {value.device}; the onnxruntime backend runs on the CPU",
                    location, hint="pass CPU tensors (x.cpu())"))
            if grad and isinstance(value, torch.Tensor) and value.requires_grad:
                raise BackendError(Diagnostic(
                    "E802", f"input '{name}' requires grad; the onnxruntime backend computes no gradients", location,
                    hint="call it under torch.no_grad() or torch.inference_mode(), or pass x.detach()"))
        self.input_check(*inputs)
        for (i, axis), size in self._fixed.items():
            name = self.input_names[i]
            if inputs[i].shape[axis] != size:
                location, shape = self._declared[name]
                raise BackendError(Diagnostic(
                    "E802", f"input '{name}' dim {axis} ({shape[axis]}) is {inputs[i].shape[axis]}; the ONNX export "
                            f"fixed it at {size}", location,
                    hint=f"call it at {size}, or use the default backend (backend='torch'), which takes any size"))
        # numpy views of the tensors' memory (a copy only for a non-contiguous tensor)
        feed = {name: value.detach().contiguous().numpy() for name, value in zip(self.input_names, inputs)}
        outputs = tuple(torch.from_numpy(a) for a in self.session.run(self.output_names, feed))
        return outputs[0] if len(outputs) == 1 else outputs


def _serialized(program, size: int) -> "bytes | tempfile.TemporaryDirectory":
    """The ONNX model as bytes, or (weights over protobuf's 2 GiB limit) as a file with its
    weights beside it in a temporary folder that lives as long as the module."""
    if size <= EXTERNAL_DATA_BYTES:
        return program.model_proto.SerializeToString()
    folder = tempfile.TemporaryDirectory(prefix="specgraph-ort-")
    program.save(str(Path(folder.name) / "model.onnx"), external_data=True)
    return folder


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendError(Diagnostic(
            "E801", "backend 'onnxruntime' needs the onnxruntime package, which is not installed",
            hint="pip install onnxruntime, or use the default backend (backend='torch')")) from None
    return onnxruntime


__all__ = ["onnxruntime_module", "OnnxRuntimeModule"]
