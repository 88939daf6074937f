"""The public Python API: load, check, build, summary.

Each takes a path to a spec, YAML text, or an already loaded :class:`Spec`, plus param
overrides as keyword arguments (``build('specs/resnet50.yaml', num_classes=10)``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Union

from .expand.expander import expand
from .gcpause import gc_paused
from .ir.graph import Graph
from .lang.limits import DEFAULT_LIMITS, Limits
from .lang.spec import Spec, is_path, load_spec
from .analysis.summary import Summary, summarize

SpecLike = Union[str, "os.PathLike[str]", Spec]


@gc_paused
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
def build(spec: SpecLike, *, check_inputs: bool = True, **params: Any):
    """A trainable ``torch.nn.Module`` (a ``torch.fx.GraphModule``) computing the spec.

    ``check_inputs``: each call first checks its inputs against the spec (their shapes and
    dtypes, and the sizes the spec's shape rules need), raising a located
    :class:`~specgraph.diagnostics.InputError`; False leaves the check out."""
    from .torch.build import build_module  # torch is imported only when a module is wanted

    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    return build_module(graph, check_inputs=check_inputs)


def render(spec: SpecLike | Graph, **options: Any):
    """The diagram of ``spec`` (a path, YAML text, a Spec or a checked Graph) as a
    ``graphviz.Digraph``: see :func:`specgraph.render.dot.render` for the options; the other
    keyword arguments override the spec's params.  Expansion errors are drawn in red."""
    dot, _ = render_partial(spec, **options)
    return dot


def render_partial(spec: SpecLike | Graph, *, depth=None, collapse=(), only=None, rankdir: str = "TB",
                   shapes: bool = True, rolled: bool = False, legend: bool = True, **params: Any):
    """Like :func:`render`, also returning the PartialGraph (its diagnostics say what failed)."""
    from .render.dot import render_partial as draw

    if not isinstance(spec, Graph):
        spec = load(spec, **params)
        params = {}
    return draw(spec, depth=depth, collapse=collapse, only=only, rankdir=rankdir, shapes=shapes, rolled=rolled,
                legend=legend, **params)


def viewer(spec: SpecLike | Graph, **params: Any) -> str:
    """The interactive viewer of ``spec`` (a path, YAML text, a Spec or a checked Graph): one
    self-contained HTML page (docs/render.md); ``params`` override the spec's params.  Expansion
    errors are drawn in red, as in :func:`render`."""
    from .expand.partial import PartialGraph, expand_partial
    from .render.html import viewer_html

    if isinstance(spec, Graph):
        return viewer_html(PartialGraph(spec, [], list(spec.warnings)))
    loaded = load(spec, **params)
    return viewer_html(expand_partial(loaded), loaded)


def summary(spec: SpecLike | Graph, *, batch_size: int | None = None, dims: Mapping[str, int] | None = None,
            **params: Any) -> Summary:
    """Per-node output shapes, parameter counts and MACs, with totals, and the memory columns
    and predicted inference peak at batch ``batch_size`` (the dim N; default 1) with the other
    symbolic dims sized by ``dims`` (``{"T": 128}``), as ``specgraph summary`` prints them.
    In a notebook the result shows as a table; ``str()`` gives the text one."""
    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    return summarize(graph, batch_size, dims)


def training_memory(spec: SpecLike | Graph, batch_size: int = 1, *, dims: Mapping[str, int] | None = None,
                    optimizer: str = "adam", precision: str = "32", threads: int | None = None, **params: Any):
    """The memory of one training step on CPU at ``batch_size`` (and ``dims`` for the other
    symbolic dims): parameters, gradients, ``optimizer``'s state, the activations autograd saves,
    and the predicted peak — from a run of the forward and backward passes that allocates no
    memory (:mod:`specgraph.torch.train_memory`) and the optimizer's arithmetic
    (:mod:`specgraph.analysis.training`).  ``precision``: 32, bf16-mixed or 16-mixed (autocast);
    ``threads``: torch's intra-op threads (default: the CPU count), which decide some kernels."""
    from .analysis.memory.kernels.training import training_scratch
    from .analysis.memory.machine import detect
    from .analysis.memory.walk import resolve_sizes
    from .analysis.training import training_memory as with_optimizer
    from .torch.train_memory import training_step

    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    sizes = resolve_sizes(graph, batch_size, dims)
    kernels = training_scratch(detect(), threads or os.cpu_count() or 1)
    return with_optimizer(training_step(graph, sizes, precision, kernels), sizes, optimizer, precision)


def largest_training_batch(spec: SpecLike | Graph, budget: int, *, dims: Mapping[str, int] | None = None,
                           optimizer: str = "adam", precision: str = "32", threads: int | None = None,
                           **params: Any) -> int:
    """The largest batch whose training step's predicted peak (:func:`training_memory`) is at most
    ``budget`` bytes; 0 when a batch of 1 is over."""
    from .analysis.training import largest_batch

    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    return largest_batch(lambda n: training_memory(graph, n, dims=dims, optimizer=optimizer, precision=precision,
                                                   threads=threads).peak, budget)


def language_schema(ops: Mapping[str, Any] | None = None) -> dict:
    """The JSON Schema of the spec language for ``ops`` (default: every registered op), with
    the ``train:`` section's."""
    from .lang import jsonschema
    from .ops.registry import all_ops
    from .train.config import train_schema

    return jsonschema.language_schema(all_ops() if ops is None else ops, train_schema())


def schema_text(ops: Mapping[str, Any] | None = None) -> str:
    """:func:`language_schema` as the JSON text ``specgraph schema`` prints."""
    from .lang import jsonschema
    from .ops.registry import all_ops
    from .train.config import train_schema

    return jsonschema.schema_text(all_ops() if ops is None else ops, train_schema())


def export(spec: SpecLike | Graph, *, onnx=None, torchscript=None, exported=None, python=None,
           optimize: str | None = None, dims=None, model=None, source: str | None = None, **params: Any):
    """Build ``spec`` and write it as ONNX / TorchScript / a .pt2 program / Python source; returns
    {format: path}.  ``optimize``: "inference" runs the graph passes first; ``model``: export this
    module (e.g. trained) instead of a freshly built one; ``dims``: sizes of symbolic dims in the
    example inputs; ``source``: the spec file named in the Python file's docstring (found by
    itself when ``spec`` is a path); ``params`` override the spec's params."""
    from .torch.export.formats import export as run_export  # torch (and onnx) only when exporting

    graph = spec if isinstance(spec, Graph) else check(spec, **params)
    if source is None and is_path(spec):
        source = str(spec)
    return run_export(graph, onnx=onnx, torchscript=torchscript, exported=exported, python=python,
                      optimize=optimize, dims=dims, model=model, source=source)


def optimize(model: Any, mode: str = "inference", *, graph: Graph | None = None, channels_last: bool | None = None,
             prepack: bool | None = None, backend: str = "torch", compile: bool = False, **params: Any):
    """An optimised copy of a built module (or of a spec, built first; ``params`` override its
    params) for ``mode``: see :func:`specgraph.torch.passes.optimize.optimize` (batch norm folded,
    dropout dropped, in-place, channels_last, packed convolutions, linears and attention with
    their activations and residual adds fused).  ``backend="onnxruntime"``: instead, the model
    exported to ONNX and run by an onnxruntime session behind a module called the same way
    (:mod:`specgraph.torch.passes.ort_backend`; a built module needs ``graph=``, its spec's Graph).
    ``compile=True``: the passes' graph compiled by torch.compile with inductor's freezing
    (:mod:`specgraph.torch.passes.compiled`; a compile on the first call with each input shape)."""
    from .torch.passes.optimize import optimize as run_passes

    if isinstance(model, (str, os.PathLike, Spec)):
        model = check(model, **params)
    return run_passes(model, mode, graph=graph, channels_last=channels_last, prepack=prepack, backend=backend,
                      compile=compile)
