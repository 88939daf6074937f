"""The memory of one training step's forward and backward, from a run that allocates none.

The module is built on the meta device (its initializers run on no data) and run under torch's
``FakeTensorMode``: every tensor is a CPU tensor to the dispatcher (so torch picks the kernels
it picks on a CPU: oneDNN's LSTM, say) whose storage lives on the meta device, without data.
Two observers watch the run:

- ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor autograd saves for the backward
  pass: their storages (each counted once; the parameters, buffers and inputs left out) are the
  **saved activations**;
- a ``TorchDispatchMode`` sees every storage each aten op creates, and a finalizer on it sees
  when the last reference goes (when autograd frees what it saved, as it goes backward): the
  **live bytes** at every op, and their highest point in the forward and in the backward.

What a kernel allocates and frees inside itself is not a tensor the run can see, nor is what a
meta kernel leaves empty (oneDNN's LSTM workspace, saved for the backward pass).  The run asks
a ``kernels`` callback for both, by aten op and the shapes of its arguments: the models are CPU
knowledge and live with the inference ones (specgraph/analysis/memory/kernels/training.py);
the API passes them in, so that this stage imports no analysis.

The optimizer's state and step are arithmetic, not run here: see
:mod:`specgraph.analysis.training`.  The loss is the sum of the outputs that depend on a
parameter: it saves nothing, as cross-entropy saves little (the log-probabilities [N, classes]);
a spec with no such output has no backward pass.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..ir.graph import Graph
from .build import build_module

AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
KernelScratch = Callable[[str, tuple, list], tuple[dict[int, int], int]]


class TrainingRunError(RuntimeError):
    """The training step could not be run without memory (an op without a meta kernel, or one
    that reads its data); the message names the op."""


@dataclass(frozen=True)
class StepMemory:
    """Bytes of one training step at one batch size (no optimizer: see analysis/training.py).

    ``resident``: parameters, buffers and inputs, alive before the step; ``forward_peak`` and
    ``backward_peak``: the most bytes alive at once in each pass, the resident ones included;
    ``after_backward``: alive when backward ends (the resident bytes and the gradients)."""

    param_bytes: int
    largest_param_bytes: int
    buffer_bytes: int
    input_bytes: int
    saved_bytes: int
    output_bytes: int
    forward_peak: int
    backward_peak: int
    after_backward: int
    peak_op: str  # the aten op during which the highest point (of both passes) was reached

    @property
    def resident(self) -> int:
        return self.param_bytes + self.buffer_bytes + self.input_bytes

    @property
    def grad_bytes(self) -> int:
        return self.param_bytes


def _described(value):
    """A tensor argument as the kernel models read it (no torch there): shape, dtype, itemsize."""
    if isinstance(value, torch.Tensor):
        return SimpleNamespace(shape=tuple(value.shape), dtype=str(value.dtype).removeprefix("torch."),
                               itemsize=value.element_size())
    if isinstance(value, (list, tuple)):
        return type(value)(_described(v) for v in value)
    return value


class _LiveBytes(TorchDispatchMode):
    """The bytes of every storage alive, updated as aten ops create storages and as their last
    references go; the highest total and the op during which it was reached.  ``kernels``:
    ``(op name, args, outputs) -> ({output index: bytes its storage really holds}, bytes the
    kernel allocates and frees inside)``, tensors described by shape, dtype and itemsize."""

    def __init__(self, kernels: KernelScratch | None = None) -> None:
        super().__init__()
        self.kernels = kernels
        self.sizes: dict[int, int] = {}
        self.now = self.peak = 0
        self.peak_op = ""

    def track(self, t: torch.Tensor, op: str = "", nbytes: int | None = None) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.sizes:
            return
        self.sizes[key] = storage.nbytes() if nbytes is None else nbytes
        self.now += self.sizes[key]
        weakref.finalize(storage, self._free, key)
        self.reached(op)

    def reached(self, op: str, extra: int = 0) -> None:
        if self.now + extra > self.peak:
            self.peak, self.peak_op = self.now + extra, op

    def _free(self, key: int) -> None:
        self.now -= self.sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        name = str(func.overloadpacket.__name__)
        held, transient = self.kernels(name, _described(tuple(args)), _described(outputs)) if self.kernels else ({}, 0)
        for i, t in enumerate(outputs):
            self.track(t, name, held.get(i))
        self.reached(name, transient)
        return out


def _fake_cpu_tensors(model: torch.nn.Module) -> None:
    """Replace the (meta) parameters and buffers of ``model`` by CPU tensors of the active fake mode."""
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="cpu"),
                                                              requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = torch.empty(b.shape, dtype=b.dtype, device="cpu")


def _storages_bytes(tensors) -> int:
    return sum({t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors}.values())


def training_step(graph: Graph, sizes: Mapping[str, int], precision: str = "32",
                  kernels: KernelScratch | None = None) -> StepMemory:
    """Run one training step's forward (in train mode, under autocast for a mixed ``precision``)
    and backward for ``graph`` at ``sizes`` (every symbolic dim of its inputs, the batch ``N``
    among them) without allocating memory; returns what it would hold (see the module
    docstring).  ``kernels``: what CPU kernels allocate inside themselves (see :class:`_LiveBytes`;
    the API passes analysis/memory/kernels/training.py's).  Raises TrainingRunError where an op
    cannot run without data."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    live = _LiveBytes(kernels)
    saved: dict[int, int] = {}
    try:
        with torch.device("meta"):  # shapes only: no initializer runs on data (some read values)
            model = build_module(graph).train()
        with FakeTensorMode(), live:
            _fake_cpu_tensors(model)
            params, buffers = list(model.parameters()), list(model.buffers())
            inputs = [torch.empty(t.concrete(**sizes), dtype=getattr(torch, t.dtype)) for t in graph.inputs.values()]
            for t in params + buffers + inputs:
                live.track(t)
            held = {t.untyped_storage()._cdata for t in params + buffers + inputs}
            live.peak = live.now

            def pack(t: torch.Tensor) -> torch.Tensor:
                key = t.untyped_storage()._cdata
                if key not in held:
                    saved[key] = live.sizes.get(key, t.untyped_storage().nbytes())
                return t

            dtype = AUTOCAST[precision]
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                    torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                outputs = [t for t in tree_flatten(model(*inputs))[0] if isinstance(t, torch.Tensor)]
                output_bytes = _storages_bytes(outputs)
                learnt = [t for t in outputs if t.requires_grad]  # none: nothing to learn, no backward
                loss = sum(t.float().sum() for t in learnt) if learnt else None
            forward_peak, forward_op = live.peak, live.peak_op
            del outputs, learnt
            live.peak = live.now
            if loss is not None:
                loss.backward()
            del loss
            backward_peak = live.peak
            peak_op = forward_op if forward_peak >= backward_peak else live.peak_op
            after = live.now
    except (RuntimeError, NotImplementedError, TypeError) as e:
        raise TrainingRunError(f"the training step cannot be run without memory: {type(e).__name__}: {e}") from e
    return StepMemory(_storages_bytes(params), max((p.numel() * p.element_size() for p in params), default=0),
                      _storages_bytes(buffers), _storages_bytes(inputs), sum(saved.values()), output_bytes,
                      forward_peak, backward_peak, after, peak_op)


__all__ = ["StepMemory", "TrainingRunError", "training_step", "AUTOCAST", "KernelScratch"]
