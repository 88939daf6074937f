"""``optimize(model, "inference")``: a new module for eval-mode inference, computing the same
outputs (within float rounding) as the plain build in eval mode, made by running torch.fx
passes (one per file in this package) through a ``PassManager``:

* fold_batchnorm.py — batch norm folded into the conv / linear before it;
* drop_dropout.py — nodes that are the identity in eval mode removed;
* in_place.py — activations (relu, hardswish, sigmoid, ...) and residual adds overwrite a fresh input nobody else reads;
* channels_last.py — 4-D convolutions run on NHWC tensors, converted once at each end;
* prepack.py — (CPU) each conv2d runs oneDNN's convolution on a weight packed once, the residual
  add and the activation after it fused into the kernel (epilogue.py says which);
* packed_linear.py — (CPU) each linear likewise, with its activation or residual add;
* packed_attention.py — (CPU) self-attention on packed projections, its residual add fused
  (``prepack=False`` leaves plain modules, for a model to export or move to a GPU);
* compiled.py — with ``compile=True``, instead of the three packers: the graph compiled by
  ``torch.compile`` with inductor's freezing (which packs, fuses and generates the rest itself).

The passes read the spec node behind each fx node (``fx_node.meta["specgraph"]``, its op's
traits and types); they also apply to GraphModules made by other means, where what needs a
spec node is left alone.  Scan modules (recurrent cells) are left as they are: their
per-step graphs hold no batch norm in the specs so far, and dropout in them is already the
identity in eval mode.

The result is an eval-only :class:`torch.fx.GraphModule` (a spec with training-only outputs
gives its eval graph): its state_dict lacks the folded batch norms, so it is for inference and
export, not for training or loading the unoptimised weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Union

from torch import fx, nn
from torch.fx.passes.infra.pass_manager import PassManager

from ...ir.graph import Graph
from ..build import build_module, graph_modules
from ..lifetimes import free_at_last_use
from . import prepack as _prepack
from .channels_last import ChannelsLast, has_conv_4d, nchw, nhwc, to_channels_last
from .drop_dropout import DropDropout
from .fold_batchnorm import FoldBatchNorm, fold_batchnorm
from .in_place import InPlace
from .packed_attention import PackAttention
from .packed_linear import PackLinear

MODES = ("inference",)
BACKENDS = ("torch", "onnxruntime")


@dataclass
class PassReport:
    """What ``optimize`` did: folded (producer, batch norm) path pairs, dropped dropout paths,
    the fx nodes made in-place, and whether the model was converted to channels_last."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    channels_last: bool = False
    prepacked: list[str] = field(default_factory=list)
    packed_linear: list[str] = field(default_factory=list)
    packed_attention: list[str] = field(default_factory=list)
    compiled: bool = False

    def __str__(self) -> str:
        done = (f"folded {len(self.folded)} batch norm(s), dropped {len(self.dropped)} dropout(s), "
                f"{len(self.in_place)} op(s) in place, channels_last {'on' if self.channels_last else 'off'}, ")
        if self.compiled:
            return done + "compiled by torch.compile (inductor, weights frozen)"
        packed = self.prepacked + self.packed_linear + self.packed_attention
        return (done + f"{len(self.prepacked)} conv(s), {len(self.packed_linear)} linear(s) and "
                f"{len(self.packed_attention)} attention(s) packed "
                f"({sum('+add' in p for p in packed)} with the residual add fused, "
                f"{sum(p.count('+') - ('+add' in p) for p in packed)} with their activation)")


def optimize(model: Union[nn.Module, Graph], mode: str = "inference", *, graph: Graph | None = None,
             channels_last: bool | None = None, prepack: bool | None = None, backend: str = "torch",
             compile: bool = False) -> nn.Module:
    """An optimised copy of ``model`` for ``mode`` (only "inference" so far); ``model`` is left as is.

    ``model``: a module from :func:`specgraph.build`, or a checked Graph (built first); the
    API's :func:`specgraph.optimize` also takes a spec.  ``graph`` is accepted for
    compatibility and not needed: the built module carries its spec nodes.
    ``channels_last``: None chooses (on when the model has a 4-D convolution), True or False
    forces it.  ``prepack``: None packs the convs, linears and attentions for oneDNN where this
    torch has it; False keeps plain modules (for export, TorchScript or a GPU;
    :func:`specgraph.export` does so).  The passes run are recorded in the result's
    ``meta["specgraph_passes"]`` (a :class:`PassReport`).
    ``backend``: "torch" (the passes above, a GraphModule) or "onnxruntime": the model exported to
    ONNX and run by an onnxruntime session behind a module called the same way (ort_backend.py;
    needs ``graph`` when ``model`` is a module; ``channels_last`` and ``prepack`` do not apply).
    ``compile``: (torch backend) the passes' graph, its convs and linears left plain, compiled by
    ``torch.compile`` with inductor's freezing, behind a :class:`~.compiled.CompiledInference`
    (compiled.py): faster, after a compile of tens of seconds on the first call with each input
    shape; a call after its weights changed is refused.
    """
    if mode not in MODES:
        raise ValueError(f"unknown optimisation mode {mode!r}; expected one of {', '.join(MODES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if compile and backend != "torch":
        raise ValueError("compile=True applies to the torch backend; onnxruntime compiles its session itself")
    if compile and prepack:
        raise ValueError("compile=True packs the convolutions and linears through inductor; prepack=True does not apply")
    if backend == "onnxruntime":
        from .ort_backend import onnxruntime_module  # exports to ONNX: imported only when asked for

        if isinstance(model, Graph):  # the export takes the plain ops: onnxruntime plans its own buffers
            graph, model = model, build_module(model, check_inputs=False, in_place=False)
        return onnxruntime_module(model, graph)
    if isinstance(model, Graph):
        model = build_module(model)
    gm = copy.deepcopy(inference_graph_module(model)).eval()
    # the optimised forward lets go of each value after its last use: the lowest peak, where
    # the plain build holds values as torchvision's module calls do (torch/lifetimes.py)
    free_at_last_use(gm)
    fold, drop, in_place = FoldBatchNorm(), DropDropout(), InPlace()
    passes = [fold, drop, in_place]
    use_cl = has_conv_4d(gm) if channels_last is None else channels_last
    if use_cl:
        passes.append(ChannelsLast())
    pack = not compile and (_prepack.available() if prepack is None else prepack)
    packers = [_prepack.Prepack(), PackLinear(), PackAttention()] if pack else []
    passes += packers
    PassManager(passes, steps=1)(gm)  # each pass changes `gm` in place
    report = PassReport(fold.changed, drop.changed, in_place.changed, use_cl, *(p.changed for p in packers))
    gm.meta["specgraph_passes"] = report
    if compile:
        from .compiled import CompiledInference, check_compiler  # torch._inductor: imported only when asked for

        check_compiler(gm)
        report.compiled = True
        compiled = CompiledInference(gm)
        compiled.meta = gm.meta
        return compiled
    return gm


def inference_graph_module(model: nn.Module) -> fx.GraphModule:
    """The GraphModule that runs in eval mode: ``model`` itself, or a TrainEvalModule's eval graph."""
    eval_gm, _ = graph_modules(model)
    if isinstance(eval_gm, fx.GraphModule):
        return eval_gm
    raise TypeError(f"expected a module built by specgraph (a torch.fx.GraphModule), found {type(model).__name__}")


__all__ = ["optimize", "PassReport", "MODES", "BACKENDS", "inference_graph_module", "fold_batchnorm", "to_channels_last",
           "has_conv_4d", "nhwc", "nchw"]
