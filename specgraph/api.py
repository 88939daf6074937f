"""The public Python API: load, check, build, summary.

Each takes a path to a spec, YAML text, or an already loaded :class:`Spec`, plus param
overrides as keyword arguments (``build('specs/resnet50.yaml', num_classes=10)``).
"""

from __future__ import annotations

import os
from typing import Any, Union

from .expand.expander import expand
from .gcpause import gc_paused
from .ir.graph import Graph
from .lang.limits import DEFAULT_LIMITS, Limits
from .lang.spec import Spec, load_spec
from .analysis.summary import Summary, summarize

SpecLike = Union[str, "os.PathLike[str]", Spec]


def load(path_or_text: SpecLike, *, limits: Limits | None = None, include_root: str | None = None,
         **params: Any) -> Spec:
    """Load and validate a spec (schema, includes); ``params`` override its declared params."""
    if isinstance(path_or_text, Spec):
        return path_or_text.with_params(**params)
    spec = load_spec(path_or_text, limits=limits or DEFAULT_LIMITS, include_root=include_root)
    return spec.with_params(**params) if params else spec


@gc_paused
def check(spec: SpecLike, **params: Any) -> Graph:
    """Expand and shape-check a spec; returns the Graph, raises SpecError listing every error."""
    return expand(load(spec, **params))


@gc_paused
def build(spec: SpecLike, **params: Any):
    """A trainable ``torch.nn.Module`` (a ``torch.fx.GraphModule``) computing the spec."""
    from .torch.build import build_module  # torch is imported only when a module is wanted

    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    return build_module(graph)


def summary(spec: SpecLike, **params: Any) -> Summary:
    """Per-node output shapes, parameter counts and MACs, with totals."""
    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    return summarize(graph)


def export(spec: SpecLike, **options: Any):
    """Build ``spec`` and write it as ONNX / TorchScript / a .pt2 program / Python source; returns
    {format: path}.  The options are :func:`specgraph.exporting.export`'s (``onnx=``,
    ``torchscript=``, ``exported=``, ``python=``, ``optimize=``, ``dims=``, ``model=``, params)."""
    from .torch.export.formats import export as run_export  # torch (and onnx) only when exporting

    return run_export(spec, **options)


def optimize(model: Any, mode: str = "inference", **options: Any):
    """An optimised copy of a built module (or of a spec, built first) for ``mode``: see
    :func:`specgraph.passes.optimize` (batch norm folded, dropout dropped, in-place, channels_last)."""
    from .torch.passes.optimize import optimize as run_passes

    return run_passes(model, mode, **options)
