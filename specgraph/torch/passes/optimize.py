"""Graph passes: rewrites of a built model's torch.fx graph.

``optimize(model, "inference")`` returns a new module for eval-mode inference, computing the
same outputs (within float rounding) as the plain build in eval mode:

* **fold batch norm** into the conv2d / conv_transpose2d / linear before it: an eval-mode batch
  norm is a per-channel affine map, so it can be baked into the producer's weight and bias.
  Only when the producer's output feeds nothing but the batch norm (otherwise the unnormalised
  value is still needed) and the batch norm uses running statistics.  A linear + batchnorm1d
  pair is folded only when the spec's Graph shows the linear's output is ``[N, F]`` (for
  ``[N, C, L]`` batchnorm1d normalises dim 1, which is not the linear's feature dim);
* **drop dropout**: every dropout variant is the identity in eval mode, so its node is removed
  and its input used instead (zoneout is not the identity in eval mode and stays);
* **in place**: ReLU and residual adds overwrite their input where nothing else reads it, as
  torchvision's hand-written models do — one activation-sized allocation saved each;
* **channels_last**: convolutions on CPU (oneDNN) and GPU (cuDNN) run faster on NHWC tensors,
  which NCHW input would have to be reordered into and out of for every conv.  When the model
  has 4-D convolutions, their weights are stored channels_last, 4-D float inputs are converted
  once at the start, and outputs are made contiguous again at the end, so a caller sees the
  usual layout.  Ops in between (pooling, ReLU, add, concat) keep the layout;
* **prepacked convolutions** (CPU): each conv2d runs oneDNN's prepacked kernel, its weight
  reordered once per input size instead of on every call, with a following ReLU fused in
  (:mod:`specgraph.prepack`; ``prepack=False`` for a model to export or move to a GPU).

The passes work on the fx graph (node = call of a submodule at a spec path, or of a function),
so they also apply to GraphModules made by other means; the spec's :class:`Graph`, when at
hand, adds the tensor ranks that the linear fold needs.  Scan modules (recurrent cells) are left
as they are: their per-step graphs hold no batch norm in the specs so far, and dropout in them
is already the identity in eval mode.

The result is an eval-only :class:`torch.fx.GraphModule` (a spec with training-only outputs
gives its eval graph): its state_dict lacks the folded batch norms, so it is for inference and
export, not for training or loading the unoptimised weights.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from ...ir.graph import Graph

MODES = ("inference",)

_DROPOUT_TYPES: tuple[type, ...] = (nn.modules.dropout._DropoutNd,)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class PassReport:
    """What ``optimize`` did: folded (producer, batch norm) path pairs, dropped dropout paths,
    the fx nodes made in-place, and whether the model was converted to channels_last."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    channels_last: bool = False
    prepacked: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"folded {len(self.folded)} batch norm(s), dropped {len(self.dropped)} dropout(s), "
                f"{len(self.in_place)} op(s) in place, channels_last {'on' if self.channels_last else 'off'}, "
                f"{len(self.prepacked)} conv(s) prepacked ({sum(p.endswith('+relu') for p in self.prepacked)} with ReLU fused)")


def optimize(model: Union[nn.Module, Graph, str, Any], mode: str = "inference", *, graph: Graph | None = None,
             channels_last: bool | None = None, prepack: bool | None = None, **params: Any) -> fx.GraphModule:
    """An optimised copy of ``model`` for ``mode`` (only "inference" so far); ``model`` is left as is.

    ``model``: a module from :func:`specgraph.build`, or a spec (path, text, Spec or Graph) that
    is built first (``params`` override its params).  ``graph``: the spec's Graph, for the tensor
    ranks some folds need (found automatically when a spec is given).  ``channels_last``: None
    chooses (on when the model has a 4-D convolution), True or False forces it.  ``prepack``:
    None prepacks the convs for oneDNN where this torch has it; False keeps plain ``nn.Conv2d``
    modules (for export, TorchScript or a GPU; :func:`specgraph.export` does so).  The passes run
    are recorded in the result's ``meta["specgraph_passes"]`` (a :class:`PassReport`).
    """
    if mode not in MODES:
        raise ValueError(f"unknown optimisation mode {mode!r}; expected one of {', '.join(MODES)}")
    if not isinstance(model, nn.Module):
        from ...api import check
        from ..build import build_module

        graph = model if isinstance(model, Graph) else check(model, **params)
        model = build_module(graph)
    gm = copy.deepcopy(inference_graph_module(model)).eval()
    report = PassReport()
    report.folded = fold_batchnorm(gm, graph)
    report.dropped = drop_dropout(gm)
    report.in_place = in_place(gm, graph)
    use_cl = has_conv_4d(gm) if channels_last is None else channels_last
    if use_cl:
        to_channels_last(gm)
    report.channels_last = use_cl
    from . import prepack as _prepack

    if _prepack.available() if prepack is None else prepack:
        report.prepacked = _prepack.prepack_convs(gm)
    gm.meta["specgraph_passes"] = report
    return gm


def inference_graph_module(model: nn.Module) -> fx.GraphModule:
    """The GraphModule that runs in eval mode: ``model`` itself, or a TrainEvalModule's eval graph."""
    eval_gm = model.__dict__.get("eval_graph_module")
    if isinstance(eval_gm, fx.GraphModule):
        return eval_gm
    if isinstance(model, fx.GraphModule):
        return model
    raise TypeError(f"expected a module built by specgraph (a torch.fx.GraphModule), found {type(model).__name__}")


def _module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    return gm.get_submodule(node.target)


def fold_batchnorm(gm: fx.GraphModule, graph: Graph | None = None) -> list[tuple[str, str]]:
    """Fold each eval-mode batch norm into the conv / linear whose only user it is, in place.

    Returns the (producer, batch norm) paths folded.  The producer's submodule is replaced by
    the fused one (same path), the batch norm's node and submodule are removed.
    """
    folded = []
    for node in list(gm.graph.nodes):
        bn = _module_of(gm, node)
        if not isinstance(bn, _BN_TYPES) or len(node.args) != 1 or node.kwargs:
            continue
        producer = node.args[0]
        prev = _module_of(gm, producer) if isinstance(producer, fx.Node) else None
        if prev is None or len(producer.users) != 1 or not _foldable_stats(bn):
            continue
        if isinstance(prev, _CONV_TYPES + _CONV_TRANSPOSE_TYPES):
            if _spatial_dims(prev) != _spatial_dims(bn) or prev.out_channels != bn.num_features:
                continue
            fused = fuse_conv_bn_eval(prev.eval(), bn.eval(), transpose=isinstance(prev, _CONV_TRANSPOSE_TYPES))
        elif isinstance(prev, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            if not _linear_output_is_2d(graph, producer.target) or prev.out_features != bn.num_features:
                continue
            fused = fuse_linear_bn_eval(prev.eval(), bn.eval())
        else:
            continue
        _replace_submodule(gm, producer.target, fused)
        node.replace_all_uses_with(producer)
        gm.graph.erase_node(node)
        folded.append((producer.target, node.target))
    _finish(gm)
    return folded


def _spatial_dims(module: nn.Module) -> int:
    for dims, types in enumerate(((nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d),
                                  (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d),
                                  (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d)), start=1):
        if isinstance(module, types):
            return dims
    return 0


def _foldable_stats(bn: nn.Module) -> bool:
    # Without running statistics, eval-mode batch norm normalises with the batch's own
    # statistics: not an affine map that can be folded.
    return bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None


def _linear_output_is_2d(graph: Graph | None, path: str) -> bool:
    if graph is None or path not in graph:
        return False
    return graph.node(path).out.rank == 2


def drop_dropout(gm: fx.GraphModule) -> list[str]:
    """Remove every dropout node (the identity in eval mode), in place; returns their paths."""
    from ...ops.seqdropout import VariationalDropout

    dropout_types = _DROPOUT_TYPES + (VariationalDropout,)
    dropped = []
    for node in list(gm.graph.nodes):
        module = _module_of(gm, node)
        if isinstance(module, dropout_types) and len(node.args) == 1 and isinstance(node.args[0], fx.Node):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            dropped.append(node.target)
    _finish(gm)
    return dropped


# Producers whose output is a fresh tensor (never a view of another value), so that an op
# that is its only user may overwrite it.
_FRESH_MODULES = _CONV_TYPES + _CONV_TRANSPOSE_TYPES + _BN_TYPES + (nn.Linear,)


def in_place(gm: fx.GraphModule, graph: Graph | None = None) -> list[str]:
    """Run ReLU and residual adds in place where nothing else reads their input; returns the fx nodes.

    As torchvision's hand-written models do (``nn.ReLU(inplace=True)``, ``out += identity``):
    each saves allocating, and on CPU first touching, one activation-sized buffer.  Only when
    the overwritten input is a fresh tensor (the output of a conv, linear, batch norm, or of an
    op this pass made in place) that has no other user; an add only when the spec's Graph shows
    both operands have the result's shape (no broadcasting into the overwritten one).
    """
    shapes = _add_shapes_equal(graph)
    fresh = {n for n in gm.graph.nodes if isinstance(_module_of(gm, n), _FRESH_MODULES)}
    changed = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.kwargs or not node.args:
            continue
        first = node.args[0]
        if not isinstance(first, fx.Node) or first not in fresh or len(first.users) != 1:
            continue
        if node.target in (torch.relu, torch.nn.functional.relu) and len(node.args) == 1:
            node.target = torch.relu_
        elif node.target is operator.add and len(node.args) == 2 and isinstance(node.args[1], fx.Node) \
                and shapes.get(node.name):
            node.op, node.target = "call_method", "add_"
        else:
            continue
        fresh.add(node)
        changed.append(node.name)
    _finish(gm)
    return changed


def _add_shapes_equal(graph: Graph | None) -> dict[str, bool]:
    """{fx node name of an add: whether its inputs and output all have one shape} from the Graph."""
    if graph is None:
        return {}
    from ..build import _identifier  # the builder names an op's fx node after its path so

    result = {}
    for node in graph.op_nodes():
        if node.op == "add" and len(node.inputs) == 2:
            result[_identifier(node.path.replace(".", "_"))] = all(v.type.shape == node.out.shape and v.type.dtype == node.out.dtype for v in node.inputs)
    return result


def has_conv_4d(gm: nn.Module) -> bool:
    """Whether the model has a 2-D convolution (4-D tensors), where channels_last pays."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in gm.modules())


def to_channels_last(gm: fx.GraphModule) -> None:
    """Store 4-D weights channels_last; convert inputs once at the start, outputs back at the end.

    The fx graph carries no ranks, and ``contiguous(memory_format=channels_last)`` raises for
    tensors that are not 4-D, so the conversions are small helpers that check the rank.
    """
    gm.to(memory_format=torch.channels_last)
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for ph in placeholders:
        users = list(ph.users)
        with graph.inserting_after(placeholders[-1]):
            converted = graph.call_function(nhwc, (ph,))
        converted._rename(f"{ph.name}_channels_last")  # `nhwc` stays free for the function's name
        for user in users:
            user.replace_input_with(ph, converted)
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        result = fx.map_arg(output.args[0], lambda v: _named(graph.call_function(nchw, (v,)), f"{v.name}_contiguous"))
    output.args = (result,)
    _finish(gm)


def _named(node: fx.Node, name: str) -> fx.Node:
    node._rename(name)
    return node


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last layout when it is a 4-D float tensor, else ``x``."""
    if x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the default (contiguous) layout when it is 4-D, else ``x``."""
    if x.dim() == 4:
        return x.contiguous()
    return x


def _replace_submodule(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, name, module)


def _finish(gm: fx.GraphModule) -> None:
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
