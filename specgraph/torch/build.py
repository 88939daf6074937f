"""Build: Graph -> torch.fx.GraphModule with a generated straight-line forward.

Submodules sit at their node paths (``layer1.0.conv1``), so the state_dict keys are the
spec's names and weights of a hand-written model with the same names load strictly.  Every
fx node computing a spec node carries that node in ``fx_node.meta["specgraph"]`` (its op,
params, types and traits), which is what the passes read; fx values are named after the spec
(``layer1_0_relu``, not ``relu_17``), so that ``model.code`` reads like the spec.

Training-only outputs (GoogLeNet's auxiliary heads) need a forward that differs between
train and eval.  fx graphs are straight-line, so such a spec gets two graphs over the same
submodules, and :class:`TrainEvalModule` calls the one that fits ``self.training``; the
eval graph does not compute the auxiliary heads at all.

Activations and adds whose input nothing else reads run in place (``torch.relu_``,
``a.add_(b)``), as in torchvision's models, in training as in eval: ``ir/in_place.py`` says
which, and the memory walk follows the same rule.  The fx nodes made so carry
``meta[IN_PLACE_KEY]``.

The generated forward lets go of each value when the block it was passed into returns, as the
nested ``nn.Module`` calls of a hand-written model do (``ir/lifetimes.py``, torch/lifetimes.py):
the built module allocates and frees as torchvision's does.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Iterator, Mapping

import torch
from torch import fx, nn

from ..ir.graph import Graph, OutputInfo, Value
from ..ir.in_place import in_place_nodes
from ..ops.base import ARG_TYPE, FLOAT_DTYPES
from ..ops.gather_dot_function import gather_dot
from ..ops.gather_dot_kernel import unavailable as kernel_unavailable
from ..ops.gather_dot_match import GatherDotFusion, gather_dots
from ..ops.runtime_sizes import SIZE_SOURCE, reading_sizes_from, source_values
from .input_check import CHECK_NAME, InputCheck
from .lifetimes import hold_like_modules
from .names import class_name, identifier, value_name

META_KEY = "specgraph"  # fx_node.meta[META_KEY]: the spec Node the fx node computes
PART_KEY = "specgraph_part_of"  # fx_node.meta[PART_KEY]: the spec Node whose code the fx node is part of
IN_PLACE_KEY = "specgraph_in_place"  # fx_node.meta[IN_PLACE_KEY]: True when built in place


def build_module(graph: Graph, modules: nn.Module | None = None, *, check_inputs: bool = True,
                 in_place: bool = True, fuse: bool = True) -> nn.Module:
    """A trainable module computing ``graph``; inputs in declaration order, as positional args.

    Returns a tensor for one output, else a tuple in declaration order (in eval mode,
    training-only outputs are left out). ``modules``: take the submodules from this module
    instead of building them.  ``check_inputs``: check each call's inputs against the spec
    first (torch/input_check.py); off for the graphs an op runs inside (a scan's cell).
    ``in_place``: run the nodes ``ir/in_place.py`` allows in place.  ``fuse``: run each gather-dot
    (ops/gather_dot_match.py) as one ``gather_dot`` call; off, the spec's ops one by one.
    """
    root = modules if modules is not None else nn.Module()
    with_module: set[str] = set()
    held: set[str] = set()  # parameters and buffers registered at a node's path
    for node in graph.op_nodes():
        if modules is not None:  # reuse modules built before (a scan's split cell graphs)
            if _has_submodule(root, node.path):
                with_module.add(node.path)
            elif _holds(root, node.path):
                held.add(node.path)
            continue
        module = _build_node(node)
        if isinstance(module, (nn.Parameter, nn.Buffer)):  # a tensor the model holds, at the path itself
            _set_tensor(root, node.path, module)
            held.add(node.path)
        elif module is not None:
            _set_submodule(root, node.path, module)
            with_module.add(node.path)
    if check_inputs:
        root.add_module(CHECK_NAME, InputCheck(graph))
    name = class_name(graph.name)
    eval_gm = _tables_kept(fx.GraphModule(root, _fx_graph(graph, graph.eval_outputs, with_module, held, check_inputs,
                                                          in_place, fuse), name), root)
    model = eval_gm
    if graph.has_train_only_outputs:
        train_gm = _tables_kept(fx.GraphModule(root, _fx_graph(graph, graph.outputs, with_module, held, check_inputs,
                                                               in_place, fuse), name + "Train"), root)
        model = TrainEvalModule(root, train_gm, eval_gm)
    # Weights in the floating dtype the inputs declare (a float64 spec computes in float64, as
    # its inferred types say), where they declare one; float32 otherwise.
    floats = {t.dtype for t in graph.inputs.values() if t.dtype in FLOAT_DTYPES}
    return model.to(getattr(torch, floats.pop())) if len(floats) == 1 and floats != {"float32"} else model


class Built(Mapping[str, "nn.Module | None"]):
    """An op's subgraphs, built: ``modules`` holds the modules of the first (built once),
    and each name maps to a GraphModule over those modules (None where the op gave None)."""

    def __init__(self, modules: nn.Module, graphs: dict[str, "nn.Module | None"]):
        self.modules = modules
        self._graphs = graphs

    def __getitem__(self, key: str) -> "nn.Module | None":
        return self._graphs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._graphs)

    def __len__(self) -> int:
        return len(self._graphs)


def _build_node(node) -> nn.Module | None:
    inputs = [v.type for v in node.inputs]
    subgraphs = node.op.subgraphs(node.params)
    if not subgraphs:
        return node.op.build(node.params, inputs)
    graphs = list(subgraphs.values())
    # Out of place: a scan runs its cell's nodes on slices of values computed before its loop.
    # builds every module once; the other graphs reuse them
    full = build_module(graphs[0], check_inputs=False, in_place=False)
    modules = nn.Module()
    for name, child in full.named_children():
        modules.add_module(name, child)
    built = {name: None if g is None else build_module(g, modules=modules, check_inputs=False, in_place=False)
             for name, g in subgraphs.items()}
    return node.op.build(node.params, inputs, subgraphs=Built(modules, built))


class TrainEvalModule(nn.Module):
    """Runs the training graph in train mode and the eval graph in eval mode (shared weights)."""

    def __init__(self, root: nn.Module, train_gm: fx.GraphModule, eval_gm: fx.GraphModule):
        super().__init__()
        for name, child in root.named_children():
            self.add_module(name, child)
        # Held outside the module tree so that state_dict and parameters() list each weight once.
        self.__dict__["train_graph_module"] = train_gm
        self.__dict__["eval_graph_module"] = eval_gm

    def forward(self, *args: torch.Tensor) -> Any:
        if self.training:
            return self.train_graph_module(*args)
        return self.eval_graph_module(*args)

    @property
    def code(self) -> str:
        return ("# train mode\n" + self.train_graph_module.code + "\n# eval mode\n" + self.eval_graph_module.code)


def readable_code(model: nn.Module) -> str:
    """The forward code of a built model (``model.code``) as a reader wants it: without fx's
    ``;  x = None`` early releases (noise to a reader; Python frees the tensors at return) and
    the blank lines fx puts before it."""
    return drop_releases(model.code).strip("\n") + "\n"


def drop_releases(src: str) -> str:
    """``src`` without fx's ``;  a = b = None`` line endings."""
    return re.sub(r";  (?:[A-Za-z_]\w* = )+None$", "", src, flags=re.MULTILINE)


def graph_modules(model: nn.Module) -> tuple[fx.GraphModule, fx.GraphModule | None]:
    """(the eval-mode GraphModule, the train-mode one or None) of a built model: the one way
    the passes and exports reach a :class:`TrainEvalModule`'s graphs."""
    if isinstance(model, TrainEvalModule):
        return model.eval_graph_module, model.train_graph_module
    return model, None


def spec_node(fx_node: fx.Node):
    """The spec Node an fx node computes (None for placeholders, getitems, outputs)."""
    return fx_node.meta.get(META_KEY)


def _fx_graph(graph: Graph, outputs: tuple[OutputInfo, ...], with_module: set[str], held: set[str],
              check_inputs: bool = False, in_place: bool = False, fuse: bool = False) -> fx.Graph:
    """The straight-line fx graph computing ``outputs`` (nodes they do not need are left out),
    first checking its inputs (``self.input_check(...)``) with ``check_inputs``, the nodes
    ``ir/in_place.py`` allows run in place with ``in_place``, gather-dots fused with ``fuse``."""
    needed = graph.needed_by(outputs)
    fusions = {f.scores.path: f for f in gather_dots(graph, outputs, kernel_unavailable)[0]} if fuse else {}
    inside = {path for f in fusions.values() for path in f.paths[:-1]}
    overwriting = in_place_nodes(graph, outputs) if in_place else frozenset()
    g = fx.Graph()
    values: dict[tuple[str, str], fx.Node] = {}
    steps: list = []  # the spec nodes emitted, in order
    after: dict[str, fx.Node] = {}  # a step's path -> the last fx node once it was emitted
    for name in graph.inputs:
        values[(name, "out")] = g.placeholder(identifier(name))
    if check_inputs:
        g.call_module(CHECK_NAME, tuple(values.values()))
    for node in graph.op_nodes():
        if node.path not in needed or node.path in inside:
            continue
        steps.append(node)
        if node.path in fusions:
            result = _emit_gather_dot(g, fusions[node.path], values)
            values[(node.path, next(iter(node.outputs)))] = result
            after[node.path] = result
            continue
        args = [values[(v.node, v.port)] for v in node.inputs]
        if node.path in with_module or node.path in held:  # named as emitted values are: never `self`
            kind, call_args = ("call_module", tuple(args)) if node.path in with_module else ("get_attr", ())
            result = g.create_node(kind, node.path, call_args, name=value_name(node.path))
            result.meta[META_KEY] = result.meta[PART_KEY] = node
        else:
            spec_inputs = [Value(name, "out", t) for name, t in graph.inputs.items()]
            sources = [(values[(v.node, v.port)], v.type) for v in source_values(graph.scopes, node.scope, spec_inputs)
                       if (v.node, v.port) in values]
            result = _emit(g, node, args, sources)
            if node.path in overwriting and result.meta.get(META_KEY) is node and node.op.make_in_place(result):
                result.meta[IN_PLACE_KEY] = True
        ports = list(node.outputs)
        if len(ports) == 1:
            values[(node.path, ports[0])] = result
        else:
            for i, port in enumerate(ports):
                values[(node.path, port)] = g.create_node("call_function", operator.getitem, (result, i),
                                                          name=value_name(node.path, port))
                values[(node.path, port)].meta[PART_KEY] = node
        after[node.path] = next(reversed(g.nodes))
    outs = [values[(o.value.node, o.value.port)] for o in outputs]
    g.output(outs[0] if len(outs) == 1 else tuple(outs))
    g.lint()
    hold_like_modules(g, steps, after, values)
    return g


def _emit(g: fx.Graph, node, args: list[fx.Node], sources: list[tuple[fx.Node, Any]]) -> fx.Node:
    """The fx value of an op that emits function calls (``Op.emit``).

    The op emits into a scratch graph; its nodes are copied into ``g``, the last one under the
    spec node's name (``layer1_0_relu``, not ``relu_17``) and carrying the spec node in its
    meta.  An op that hands its input back (identity) adds nothing.  ``sources`` are the
    graph's inputs (placeholder, type), which a size the op's own inputs do not show is read
    from (ops/runtime_sizes.py).
    """
    scratch = fx.Graph()
    stand_ins = [scratch.placeholder(f"input{i}") for i in range(len(args))]
    for stand_in, value in zip(stand_ins, node.inputs):
        stand_in.meta[ARG_TYPE] = value.type
    source_stand_ins = []
    for k, (_, t) in enumerate(sources):
        stand_in = scratch.placeholder(f"source{k}")
        stand_in.meta.update({ARG_TYPE: t, SIZE_SOURCE: k})
        source_stand_ins.append(stand_in)
    with reading_sizes_from(t.shape for _, t in sources):
        result = node.op.emit(node.params, scratch, stand_ins)
    if result in stand_ins:
        return args[stand_ins.index(result)]
    copies: dict[fx.Node, fx.Node] = dict(zip(stand_ins, args))
    copies.update(zip(source_stand_ins, (placeholder for placeholder, _ in sources)))
    for made in scratch.nodes:
        if made.op == "placeholder":
            continue
        copy = g.create_node(made.op, made.target, fx.map_arg(made.args, copies.__getitem__),
                             fx.map_arg(made.kwargs, copies.__getitem__),
                             name=value_name(node.path) if made is result else made.name)
        copy.meta.update(made.meta)
        copy.meta[PART_KEY] = node
        copies[made] = copy
    copies[result].meta[META_KEY] = node
    return copies[result]


def _emit_gather_dot(g: fx.Graph, fusion: GatherDotFusion, values: dict[tuple[str, str], fx.Node]) -> fx.Node:
    """``scores = gather_dot(a, b, self.A.weight, self.B.weight)``: the fused nodes as one call,
    reading the embeddings' own parameters (their modules stay, so the state_dict is the spec's)."""
    indices = [values[(t.inputs[0].node, t.inputs[0].port)] for t in (fusion.query_table, fusion.key_table)]
    weights = []
    for table in (fusion.query_table, fusion.key_table):
        weight = g.get_attr(f"{table.path}.weight")
        weight.meta[PART_KEY] = table
        weights.append(weight)
    result = g.call_function(gather_dot, (*indices, *weights), name=value_name(fusion.scores.path))
    result.meta[META_KEY] = result.meta[PART_KEY] = fusion.scores
    return result


def _tables_kept(gm: fx.GraphModule, root: nn.Module) -> fx.GraphModule:
    """``gm`` with a fused gather-dot's embeddings the modules they are (``model.embed(ids)`` still
    works): fx copies a parameter read by get_attr into a bare container module."""
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is gather_dot:
            for weight in node.args[2:]:
                path = weight.target.rpartition(".")[0]
                _set_submodule(gm, path, root.get_submodule(path))
    return gm


def _has_submodule(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
    except AttributeError:
        return False
    return True


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding ``path``'s last part (middle levels made as empty containers), and that part."""
    parent = root
    *parents, leaf = path.split(".")
    for part in parents:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    return parent, leaf


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, leaf = _parent(root, path)
    parent.add_module(leaf, module)


def _set_tensor(root: nn.Module, path: str, tensor) -> None:
    parent, leaf = _parent(root, path)
    if isinstance(tensor, nn.Parameter):
        parent.register_parameter(leaf, tensor)
    else:
        parent.register_buffer(leaf, tensor.data)


def _holds(root: nn.Module, path: str) -> bool:
    parent_path, _, leaf = path.rpartition(".")
    try:
        parent = root.get_submodule(parent_path) if parent_path else root
    except AttributeError:
        return False
    return leaf in parent._parameters or leaf in parent._buffers


__all__ = ["build_module", "Built", "TrainEvalModule", "graph_modules", "readable_code", "drop_releases", "spec_node",
           "META_KEY", "PART_KEY", "IN_PLACE_KEY"]
