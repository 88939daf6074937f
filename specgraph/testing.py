"""The op harness: an op's declared shape rule against what torch really computes.

For authors of ops (built-in or their own)::

    from specgraph.testing import assert_op_matches_torch
    assert_op_matches_torch("scale_by", {"factor": 0.5}, [(2, 3, 4, 4)])

``assert_op_matches_torch`` (1) validates the op's params, (2) infers its output types, (3)
runs the real torch computation (the built module, or the emitted fx call) in eval mode, and
asserts that the inferred shapes and dtypes are torch's, that (4) the parameter count is the
module's, that (5) the output sizes the op writes as code (``Op.out_size_text``, the Python
export's) are torch's, and that (6) inference over symbolic dims gives the same sizes.  Imports torch.
"""

from __future__ import annotations

import operator

import torch

from .ir import dims
from .ir.dims import symbol
from .ir.tensor_type import TensorType
from .ops import Op, OpParams, ShapeError, get_op
from .ops.base import ARG_TYPE, value_text

SYMBOL_LETTERS = {0: "N", 2: "H", 3: "W"}  # which (right-aligned) dims become symbols


# ---- the harness ---------------------------------------------------------------------------

def dim_value(d: dims.Dim, sizes: dict[str, int]) -> int:
    """The value of a dim at ``sizes`` (opaque dims such as H*W too: they keep how they were made)."""
    return dims.evaluate(d, sizes)


def _dtypes(dtype, count: int) -> list[str]:
    """One dtype per input: ``dtype`` for all, or a list of them (a bool condition, float values)."""
    return list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * count


def _types(shapes, dtype) -> list[TensorType]:
    return [TensorType(tuple(symbol(d) if isinstance(d, str) else d for d in s), dt)
            for s, dt in zip(shapes, _dtypes(dtype, len(shapes)))]


def _symbolize(shapes) -> tuple[list[tuple], dict[str, int]]:
    """Dims 0, 2, 3 (aligned on the right, as broadcasting does) become symbols named by
    position and value, so equal sizes stay equal (H8 and H8) and unequal ones differ.
    Dims of size 1 stay concrete: they are what broadcasting stretches."""
    rank = max(len(s) for s in shapes)
    out, sizes = [], {}
    for s in shapes:
        new = []
        for i, d in enumerate(s):
            letter = SYMBOL_LETTERS.get(i + rank - len(s))
            if letter and isinstance(d, int) and d > 1:
                sizes[f"{letter}{d}"] = d
                d = f"{letter}{d}"
            new.append(d)
        out.append(tuple(new))
    return out, sizes


def run_op(op: Op, p: OpParams, types: list[TensorType], arrays: list[torch.Tensor]):
    """Build (or emit into a one-op fx graph) and run in eval mode; returns (module, outputs)."""
    ports = op.output_ports(p)
    module = op.build(p, types)
    if isinstance(module, (torch.nn.Parameter, torch.nn.Buffer)):  # a tensor the model holds (parameter, buffer)
        holder = torch.nn.Module()
        if isinstance(module, torch.nn.Parameter):
            holder.register_parameter("tensor", module)
        else:
            holder.register_buffer("tensor", module.data)
        return holder, [holder.tensor.detach()]
    if module is None:
        graph = torch.fx.Graph()
        args = [graph.placeholder(f"x{i}") for i in range(len(types))]
        for arg, t in zip(args, types):
            arg.meta[ARG_TYPE] = t
        node = op.emit(p, graph, args)
        if len(ports) > 1:  # the compiler adds one getitem per port the same way
            node = tuple(graph.call_function(operator.getitem, (node, i))
                         for i in range(len(ports)))
        graph.output(node)
        graph.lint()
        module = torch.fx.GraphModule(torch.nn.Module(), graph)
    floats = [a for a in arrays if a.is_floating_point()]
    if floats:  # nn.Module.to refuses integer dtypes (token ids)
        module = module.to(floats[0].dtype)
    module = module.eval()
    with torch.no_grad():
        result = module(*arrays)
    results = list(result) if len(ports) > 1 else [result]
    return module, results


def assert_op_matches_torch(op_name: str, params: dict, input_shapes: list[tuple],
                            dtype: str = "float32", *, sizes: dict[str, int] | None = None,
                            symbolic: bool = True, high: int = 2):
    """Check op ``op_name`` against torch on inputs of ``input_shapes``.

    Shapes hold ints, or symbol names whose values come from ``sizes``. ``symbolic=False``
    skips the symbolic re-inference, for cases whose params hard-code the sizes being
    replaced (a concrete reshape target). Inputs of an integer ``dtype`` (token ids) are
    drawn from 0..high-1. Returns the built module.
    """
    sizes = dict(sizes or {})
    op = get_op(op_name)
    assert op is not None, f"op {op_name} is not registered"
    p = op.Params.model_validate(params)                                            # (1)
    types = _types(input_shapes, dtype)
    outs = op.infer(p, types)                                                       # (2)
    ports = op.output_ports(p)
    assert len(outs) == len(ports), f"{len(outs)} output types for ports {ports}"
    concrete = [tuple(dim_value(d, sizes) for d in t.shape) for t in types]
    arrays = []
    for s, dt in zip(concrete, _dtypes(dtype, len(concrete))):
        torch_dtype = getattr(torch, dt)
        arrays.append(torch.randn(s, dtype=torch_dtype) if torch_dtype.is_floating_point
                      else torch.randint(0, 2, s).bool() if torch_dtype == torch.bool
                      else torch.randint(0, high, s, dtype=torch_dtype))
    module, results = run_op(op, p, types, arrays)                                  # (3)
    assert len(results) == len(ports)
    real = [tuple(r.shape) for r in results]
    inferred = [tuple(dim_value(d, sizes) for d in t.shape) for t in outs]
    assert inferred == real, f"{op_name}{params} {input_shapes}: inferred {inferred}, torch {real}"
    for t, r in zip(outs, results):
        assert t.dtype == str(r.dtype).removeprefix("torch.")
    count = sum(t.numel() for t in module.parameters())                             # (4)
    assert op.num_params(p, types) == count
    macs = op.macs(p, types, outs)
    assert macs is None or (isinstance(macs, int) and macs >= 0)
    assert isinstance(op.describe(p), str)
    if concrete:                                                                    # (5)
        _check_size_texts(op, p, concrete[0], real[0], f"{op_name}{params} {input_shapes}")
    if symbolic and input_shapes:                                                   # (6)
        sym_shapes, sym_sizes = _symbolize(input_shapes)
        sym_sizes.update(sizes)
        try:
            sym_outs = op.infer(p, _types(sym_shapes, dtype))
        except ShapeError as e:
            if e.code != "E406":  # only "this dim must be concrete" may refuse symbols
                raise
        else:
            got = [tuple(dim_value(d, sym_sizes) for d in t.shape) for t in sym_outs]
            shown = [str(t) for t in sym_outs]
            assert got == real, f"symbolic {sym_shapes}: {shown} -> {got}, torch {real}"
    return module


def _check_size_texts(op: Op, p: OpParams, shape: tuple, real: tuple, case: str) -> None:
    """``Op.out_size_text`` of each output dim, given the input's size and the params' numbers as
    texts (``kernel`` as ``3``, a per-dim list's entry), computes torch's output size."""

    for axis, want in enumerate(real):
        if axis >= len(shape):
            break
        text = op.out_size_text(p, axis, repr(shape[axis]), lambda name, i: value_text(p, name, i))
        if text is not None:
            got = eval(text, {"__builtins__": {}})  # noqa: S307 - numbers and operators only
            assert got == want, f"{case}: out_size_text {text} = {got} on dim {axis}, torch {want}"


__all__ = ["assert_op_matches_torch", "run_op", "dim_value"]
