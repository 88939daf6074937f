"""Kernel scratch on CPU: what torch's kernels allocate and free inside one eval-mode call,
beyond their outputs — the registry of models, per op class (the models of the built-in ops
live in kernels/, one module per op family, and read the ISA from machine.py).

A model is a function ``(op, p, inputs, outputs, ctx) -> bytes``: ``inputs``/``outputs`` are
:class:`~specgraph.analysis.memory.walk.Tensor` at concrete sizes (``.shape``, ``.strides``,
``.dtype``, ``.itemsize``, ``.nbytes``), ``ctx`` a :class:`MemoryContext` (``.sizes``,
``.threads``, ``.param_bytes`` of the node, ``.machine``).  When the scratch comes and goes
in several phases, a model returns the largest of (live scratch + outputs allocated so far)
minus all the outputs' bytes, or None where it cannot say for these inputs (the peak is
then a lower bound, as without a model).  Models are registered on an op class and found through its
MRO, so a subclass inherits its base's; an op class with no model makes the predicted peak a
*lower bound*, and the report lists its nodes.  A user's op registers its own:

```python
from specgraph.analysis.memory import register_scratch, no_scratch
no_scratch(MyElementwiseOp)                          # its kernel allocates nothing else
@register_scratch(MyOp)
def _(op, p, inputs, outputs, ctx): return outputs[0].nbytes   # one temporary of its output's size
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .machine import Machine

ScratchModel = Callable[..., int]
_MODELS: dict[type, ScratchModel] = {}


@dataclass(frozen=True)
class MemoryContext:
    """What a scratch model may need besides the tensors."""

    sizes: dict[str, int]  # the size of every symbolic dim
    threads: int  # torch's intra-op threads (some kernels choose by it, some buffers scale with it)
    param_bytes: int  # this node's parameter bytes
    machine: Machine  # the ISA the kernels run
    # The walk itself, memory_report(graph, batch, sizes, threads=...): for an op whose module
    # runs graphs of its own (a scan's cell), sized the same way.
    report: Callable[..., Any]


class Allocations:
    """A running total of allocations and frees and its high-water mark: for a model that
    replays what its kernel allocates, in order."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def alloc(self, nbytes: int) -> int:
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        return nbytes

    def free(self, *nbytes: int) -> None:
        self.live -= sum(nbytes)

    def beyond(self, outputs) -> int:
        """The scratch a model returns: the high-water mark less the outputs' bytes."""
        return self.peak - sum(t.nbytes for t in outputs)


def register_scratch(*op_classes: type) -> Callable[[ScratchModel], ScratchModel]:
    """Decorator: ``model`` is the scratch of ``op_classes`` (and their subclasses)."""
    def register(model: ScratchModel) -> ScratchModel:
        for cls in op_classes:
            _MODELS[cls] = model
        return model
    return register


def no_scratch(*op_classes: type) -> None:
    """The kernels of ``op_classes`` allocate nothing but their outputs."""
    register_scratch(*op_classes)(lambda op, p, inputs, outputs, ctx: 0)


def unregister_scratch(*op_classes: type) -> None:
    for cls in op_classes:
        _MODELS.pop(cls, None)


def scratch_model(op) -> ScratchModel | None:
    """The model of ``op``'s class (or of its nearest base that has one); None: not modelled."""
    for cls in type(op).__mro__:
        if cls in _MODELS:
            return _MODELS[cls]
    return None


__all__ = ["MemoryContext", "Allocations", "ScratchModel", "register_scratch", "no_scratch", "unregister_scratch",
           "scratch_model"]
