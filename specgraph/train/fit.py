"""Does the spec fit the data? Checked before any training step, with errors that say why.

* E703: the spec's prediction output cannot be trained for the data's task (a classifier
  with 7 outputs for 10 classes, a rank-4 output for classification, ...);
* E704: the data's examples do not fit the spec's inputs (count, per-example shape, dtype);
* E702: classification or segmentation data with fewer than two classes (nothing to learn: a
  one-class folder trains to 100% accuracy on the first step), or that does not say how many.

Params that the data implies (``num_classes``, ``vocab``) are applied to a spec that
declares them, unless the user set them (``--set``), so lenet5 trains on a 5-class folder.
"""

from __future__ import annotations

from typing import Any

import torch

from ..diagnostics import Diagnostic, SpecError
from ..ir.graph import Graph
from .datasets import DataBundle
from .module import OutputPlan, plan_outputs
from .tasks import Task

_INT_DTYPES = {"int64", "int32", "int16", "int8", "uint8"}


def data_params(spec, graph: Graph, bundle: DataBundle, user: dict[str, Any]) -> dict[str, Any]:
    """The params the data implies that the spec declares, the user left alone, and that differ."""
    declared = spec.doc.params or {}
    return {k: v for k, v in bundle.spec_params.items()
            if k in declared and k not in user and graph.params.get(k) != v}


def _sample(bundle: DataBundle):
    try:
        return bundle.train[0]
    except (IndexError, KeyError):
        raise SpecError(Diagnostic("E702", f"dataset '{bundle.name}': the training split is empty")) from None


def check_fit(graph: Graph, bundle: DataBundle, task: Task, user_params: dict | None = None) -> OutputPlan:
    """The output plan, after checking the inputs and the prediction against the data.

    ``user_params``: the params the user set (``--set``), for a hint that names them."""
    x, y = _sample(bundle)
    if task.name in ("classification", "segmentation") and (task.num_classes or 0) < 2:
        names = bundle.meta.get("classes") or []
        raise SpecError(Diagnostic(
            "E702", f"dataset '{bundle.name}' has {task.num_classes or 'no'} class"
                    + (f" ({', '.join(map(str, names))})" if names else "") + f"; {task.name} needs two or more",
            hint="an image folder holds one subfolder per class: PATH/cats/..., PATH/dogs/..."))
    _check_inputs(graph, bundle, x)
    plan = plan_outputs(graph)
    main = [o for o in graph.outputs if not o.train_only] or graph.outputs
    out = main[0]
    why = task.fit_error(out.value.type, y if isinstance(y, torch.Tensor) else None)
    if why:
        node = graph.node(out.value.node) if out.value.node in graph else None
        raise SpecError(Diagnostic(
            "E703", f"output '{out.name}' does not fit the {task.name} data of '{bundle.name}': {why}",
            node.location if node else None, path=out.value.node,
            hint=_hint(task, user_params or {})))
    return plan


def _hint(task: Task, user: dict) -> str | None:
    wanted = {"num_classes": task.num_classes, "vocab": task.vocab}
    for name, n in wanted.items():
        if n is not None and name in user and user[name] != n:
            return f"the data needs {name}={n}: drop --set {name}={user[name]} or write --set {name}={n}"
    if task.name in ("classification", "segmentation") and task.num_classes:
        return f"give the last layer {task.num_classes} outputs, e.g. `out: $num_classes` with a `num_classes` param"
    if task.name in ("language_model", "word2vec") and task.vocab:
        return f"size the output by the vocabulary ({task.vocab}), e.g. with a `vocab` param"
    return None


def _check_inputs(graph: Graph, bundle: DataBundle, x) -> None:
    xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    names = list(graph.inputs)
    problems = []
    if len(xs) != len(names):
        problems.append(f"the spec takes {len(names)} input{'s' if len(names) != 1 else ''} ({', '.join(names)}); "
                        f"the data gives {len(xs)}")
    for name, t in zip(names, xs):
        want = graph.inputs[name]
        if not isinstance(t, torch.Tensor):
            problems.append(f"input '{name}': the data gives {type(t).__name__}, not a tensor")
            continue
        per_example = want.shape[1:]
        fits = len(per_example) == t.dim() and all(not isinstance(d, int) or d == n
                                                    for d, n in zip(per_example, t.shape))
        if not fits:
            problems.append(f"input '{name}' is {want} (one example: [{', '.join(map(str, per_example))}]); "
                            f"an example of the data is {list(t.shape)}")
        integer = not (t.is_floating_point() or t.is_complex())
        if (want.dtype in _INT_DTYPES) != integer:
            problems.append(f"input '{name}' is {want.dtype}; the data gives {str(t.dtype).removeprefix('torch.')}")
    if problems:
        first = graph.node(names[0]) if names and names[0] in graph else None
        raise SpecError(Diagnostic("E704", f"the data of '{bundle.name}' does not fit the spec's inputs",
                                   first.location if first else None, details=tuple(problems)))
