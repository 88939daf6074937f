"""The op interface: one small class per op, owning its params, shape rule, lowering and cost.

An op subclass sets ``name``, ``category`` and ``Params`` and implements ``infer``; it lowers
either to a ``torch.nn.Module`` (``build``) or, for ops without weights, to a ``torch.fx``
call (``emit``); it counts its parameters and MACs and describes itself for labels; and it
declares its :class:`~specgraph.ir.traits.Trait` s, which the consumers ask instead of its
name.  Nothing outside an op class knows anything about that op.

Shape rules raise :class:`ShapeError`; the compiler adds the node path and spec location.
torch is imported lazily inside ``build``/``emit`` so that checking a spec stays fast.
How an op's kernel uses memory on a given machine is not the op's business: see
specgraph/analysis/memory/kernels/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..ir.dims import Dim, is_concrete
from ..ir.requirements import Requirement, bounds, merged
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .param_types import (Bool, Float, Int, IntPair, NonNegativeInt, NonNegativePair, PositiveInt, Probability,
                          Str, pair, size_text)
from .rules import (FLOAT_DTYPES, TOKEN_IDS_HINT, InputDetail, ShapeError, collecting_requirements, input_details,
                    normalize_dim, require)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import fx

    from ..ir.graph import Graph


class OpParams(BaseModel):
    """Base of every op's params model: unknown keys are errors, and no type is coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Op:
    """Base class of all ops. Subclasses are registered with ``@register_op``."""

    name: ClassVar[str]
    category: ClassVar[str] = "other"  # conv, pool, norm, activation, dropout, merge, reshape, ...
    Params: ClassVar[type[OpParams]] = OpParams
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1  # None: any number
    # The dtypes every input may have (None: any). Ops computing in floating point say
    # FLOAT_DTYPES, so that token ids fed to a linear fail at check time, not at forward time.
    input_dtypes: ClassVar[tuple[str, ...] | None] = None
    traits: ClassVar[frozenset[Trait]] = frozenset()
    # Inputs (by index) of which only the shape is read (a `like` tensor giving a target size):
    # a diagram draws them as size references, never as data paths (no encoder-decoder bridge).
    size_only_inputs: ClassVar[frozenset[int]] = frozenset()
    # What other libraries call this op (Keras' Dense, torch's bmm): an unknown op written so is
    # answered "did you mean" by meaning, not only by spelling.
    aliases: ClassVar[tuple[str, ...]] = ()
    # Params that a further input can replace, the tensor to size against at run time
    # (interpolate's `size`): the fix named when such a param is given a symbolic dim (E406).
    sizes_like: ClassVar[tuple[str, ...]] = ()

    # ---- shape rule -------------------------------------------------------------------
    def check_dtypes(self, inputs: list[TensorType]) -> None:
        """Raises ShapeError (E409) when an input's dtype is not one of ``input_dtypes``."""
        for i, t in enumerate(inputs):
            if self.input_dtypes is not None and t.dtype not in self.input_dtypes:
                floating = self.input_dtypes == FLOAT_DTYPES
                want = "a floating-point input" if floating else f"a {' or '.join(self.input_dtypes)} input"
                raise ShapeError(f"{self.name} expects {want}, found {t.dtype} {t}", code="E409",
                                 details=(InputDetail(i, str(t)),),
                                 hint=TOKEN_IDS_HINT if floating and t.dtype.startswith("int") else None)

    def input_range(self, p: OpParams) -> tuple[int, int | None]:
        """How many inputs these params take: (at least, at most or None); default the class's
        ``min_inputs``/``max_inputs`` (an add with a scalar ``by:`` takes one)."""
        return self.min_inputs, self.max_inputs

    def output_ports(self, p: OpParams) -> tuple[str, ...]:
        """Names of the outputs; a single-output op has the one port 'out'."""
        return ("out",)

    def infer(self, p: OpParams, inputs: list[TensorType]) -> list[TensorType]:
        """Output types, one per port, from the input types. Raises ShapeError; states what it
        needs of symbolic sizes with :func:`~specgraph.ops.rules.require`."""
        raise NotImplementedError

    def infer_with_requirements(self, p: OpParams, inputs: list[TensorType]
                                ) -> tuple[list[TensorType], tuple[Requirement, ...]]:
        """:meth:`infer`, and the conditions on symbolic sizes it holds under (what the compiler
        calls): those the rule states, and that every symbolic output dim is positive — a
        size like (H - 7) // 2 + 1 is one for H >= 7 only, whichever op computed it."""
        with collecting_requirements() as collected:
            outputs = self.infer(p, inputs)
            for t in outputs:
                for axis, d in enumerate(t.shape):
                    if not is_concrete(d) and bounds(d)[0] < 1:  # (most symbolic sizes are >= 1 for any input)
                        require(d, at_least=1, code="E404", message=f"{self.name} would give output size {d} "
                                f"on dim {axis} of {t}", hint="choose input sizes that fit the window, or pad")
        return outputs, merged(collected)

    # ---- traits -----------------------------------------------------------------------
    def node_traits(self, p: OpParams, inputs: list[TensorType]) -> frozenset[Trait]:
        """The traits of one application (default: the class's ``traits``); an op whose promise
        depends on its params narrows it here (a softmax over dim 0 is not row-wise)."""
        return self.traits

    def time_axis(self, p: OpParams) -> int:
        """For ``Trait.LOOPS_OVER_TIME``: the axis of input 0 it loops over."""
        return 1

    def view_strides(self, p: OpParams, shape: tuple[int, ...], strides: tuple[int, ...],
                     out_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """For ``Trait.VIEW``: the strides (in elements) of an output of shape ``out_shape``
        viewing input 0 (``shape``, ``strides``), or None when torch must copy.  Default:
        ``reshape``'s rule (a view when the strides allow it, torch's ``computeStride``)."""
        from ..ir.strides import reshape_strides

        return strides if out_shape == shape else reshape_strides(shape, strides, out_shape)

    def resize_reason(self, p: OpParams) -> str | None:
        """Which of its params change the spatial size, for the hint under a merge whose inputs
        disagree (``uses ceil_mode: false and padding: 0``); None for ops that keep it."""
        return None

    def resize_fixes(self, p: OpParams) -> list[tuple[str, OpParams]]:
        """Other params that would change the spatial size, each with the text that names the
        change (``ceil_mode: true``): the merge hint tries each and names the one that gives the
        size the siblings have, so it names the cause, not every param that could be one."""
        return []

    def out_size_text(self, p: OpParams, axis: int, size: str, param: Callable[[str, int], str]) -> str | None:
        """Dim ``axis`` of the output as Python text, for code that computes it as torch does (the
        Python export's constructor arguments): ``size`` is the text of the same dim of input 0,
        ``param(name, i)`` the text of param ``name`` for spatial dim ``i`` (a name or a number).
        None (the default): the op does not compute this dim from that input dim and its params."""
        return None

    # ---- torch --------------------------------------------------------------------------
    def build(self, p: OpParams, inputs: list[TensorType]) -> "torch.nn.Module | None":
        """The module computing this op, or None when the op is emitted as a function call.

        An op with :meth:`subgraphs` is called with ``subgraphs=``: those graphs built."""
        return None

    def emit(self, p: OpParams, graph: "fx.Graph", args: list["fx.Node"]) -> "fx.Node":
        """For ops without a module: add the fx call computing the op and return its node.

        Each of ``args`` carries its input's TensorType (:func:`arg_type`), for ops whose call
        depends on the shapes (a reshape computing a symbolic size from the input's dims)."""
        raise NotImplementedError(f"op {self.name} has neither build nor emit")

    def subgraphs(self, p: OpParams) -> dict[str, "Graph | None"]:
        """Graphs the op's module runs (a scan's cell); the builder builds them over one set of
        submodules, those of the first, and passes them to :meth:`build`.  Default: none."""
        return {}

    def recurrence(self, p: OpParams) -> "tuple[Graph, tuple[str, ...]] | None":
        """For an op that runs a cell graph once per time step: that cell, and its states (each
        a cell output fed back, at the next step, as the cell input of the same name), for the
        diagrams that open the op into its cell.  Default: None (no cell)."""
        return None

    def make_in_place(self, fx_node: "fx.Node") -> bool:
        """For ``Trait.INPLACE_SAFE``: turn ``fx_node`` (this op's call) into its in-place form,
        overwriting its first input; False when this call has no such form."""
        return False

    # ---- accounting ---------------------------------------------------------------------
    def num_params(self, p: OpParams, inputs: list[TensorType]) -> int:
        """Number of trainable parameters (default: build the module and count)."""
        module = self.build(p, inputs)
        return 0 if module is None else sum(t.numel() for t in module.parameters())

    def num_buffers(self, p: OpParams, inputs: list[TensorType]) -> int:
        """Elements of the state the op's module holds but does not learn: its buffers (batch
        norm's running mean and variance and its step counter), what Keras' summary calls
        non-trainable parameters.  Default: none."""
        return 0

    def macs(self, p: OpParams, inputs: list[TensorType], outputs: list[TensorType]) -> int | None:
        """Multiply-accumulates of one forward pass at batch 1 (None when unknown)."""
        return 0

    def meaning(self) -> str:
        """What the op computes, and its shape rule: the first paragraph of its class docstring,
        on one line (``specgraph ops`` and the editor schema show it)."""
        import inspect

        return " ".join((inspect.getdoc(type(self)) or self.name).split("\n\n")[0].split())

    def describe(self, p: OpParams) -> str:
        """A short label of the key params, for diagrams and summaries (e.g. '3×3 /2, 64')."""
        return ""

    def runs_as(self, p: OpParams) -> str | None:
        """How this node runs where the compiler chose between ways (a scan fused into torch's
        layer kernel, or not and why), for the summary's notes; None: nothing to say."""
        return None


# What torch, Keras and ONNX call params, and the name here: an unknown `kernel_size: 3` is
# answered "did you mean 'kernel'?" whatever the spelling distance. A name maps to every param
# it may mean; the hint names the one the op has.
PARAM_MEANINGS: dict[str, tuple[str, ...]] = {
    "kernel_size": ("kernel",), "filters": ("out",), "out_channels": ("out",), "out_features": ("out",),
    "units": ("out", "hidden"), "hidden_size": ("hidden",), "num_embeddings": ("num",), "input_dim": ("num",),
    "embedding_dim": ("dim",), "output_dim": ("dim",), "strides": ("stride",), "dilation_rate": ("dilation",),
    "scale_factor": ("scale",), "num_heads": ("heads",), "nhead": ("heads",), "n_heads": ("heads",),
    "rate": ("p",), "drop_prob": ("p",), "epsilon": ("eps",), "use_bias": ("bias",), "axis": ("dim", "dims"),
    "axes": ("dims", "dim"), "perm": ("dims",), "shifts": ("shift", "shifts"), "negative_slope": ("alpha",),
    "num_groups": ("groups",), "upscale_factor": ("factor",), "downscale_factor": ("factor",),
    "keepdims": ("keepdim",), "target_shape": ("shape",), "output_size": ("size",), "pool_size": ("kernel",),
    "min_value": ("min", "min_val"), "max_value": ("max", "max_val"), "normalized_shape": ("dims",),
    "is_causal": ("causal",), "dropout_p": ("dropout", "p"), "layers": ("num_layers",),
    "init": ("init_slope",),
}
# Params never written here, because ops read them from the input's shape.
READ_FROM_INPUT = frozenset({"in_channels", "in_features", "num_features", "input_size", "embed_dim", "d_model",
                             "normalized_shape_in", "input_shape"})


def param_meaning(name: str, fields) -> tuple[str | None, str] | None:
    """For an unknown param ``name``, by meaning: (the op's own param of that meaning, the hint),
    (None, the hint) for an input size, which is never written, or None."""
    key = name.lower()
    for candidate in PARAM_MEANINGS.get(key, ()):
        if candidate in fields and candidate != name:
            return candidate, f"did you mean '{candidate}'? (what '{name}' is called here)"
    if key in READ_FROM_INPUT:
        return None, f"'{name}' is read from the input's shape: leave it out"
    return None


ARG_TYPE = "specgraph.type"  # the fx meta key of an emit argument's TensorType


def arg_type(arg: "fx.Node") -> TensorType:
    """The TensorType of an argument :meth:`Op.emit` receives."""
    return arg.meta[ARG_TYPE]


def params_dict(p: OpParams) -> dict[str, Any]:
    return p.model_dump()


def value_text(p: OpParams, name: str, i: int) -> str:
    """Param ``name``'s value for spatial dim ``i`` as text (a number for every dim, or a per-dim
    list's entry): what ``out_size_text``'s ``param`` gives for a param not written as a name."""
    value = getattr(p, name)
    return repr(value if isinstance(value, int) else tuple(value)[i])


__all__ = ["value_text", "ARG_TYPE", "arg_type", "PARAM_MEANINGS", "param_meaning", 
    "Op", "OpParams", "ShapeError", "InputDetail", "input_details", "FLOAT_DTYPES", "TOKEN_IDS_HINT", "Int",
    "Float", "Bool", "Str", "PositiveInt", "NonNegativeInt", "Probability", "IntPair", "NonNegativePair", "pair",
    "size_text", "normalize_dim", "Dim", "TensorType", "Trait", "Literal", "Field",
]
