"""The op interface: one small class per op, owning its params model, shape rule and builder.

An op subclass sets ``name``, ``category`` and ``Params`` and implements ``infer``; it
builds either a ``torch.nn.Module`` (``build``) or, for ops without weights, emits a
``torch.fx`` call (``emit``).  Nothing outside an op class knows anything about that op.

Shape rules raise :class:`ShapeError`; the compiler adds the node path and spec location.
torch is imported lazily inside ``build``/``emit`` so that checking a spec stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from ..ir.dims import Dim, TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import fx


FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
TOKEN_IDS_HINT = "integer token ids need an embedding first, e.g. {op: embedding, num: <vocabulary size>, dim: 64}"


class ShapeError(Exception):
    """An op's inputs do not fit it. ``code`` is a stable diagnostic code (E4xx)."""

    def __init__(self, message: str, *, code: str = "E401", hint: str | None = None,
                 details: tuple[str, ...] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details


class OpParams(BaseModel):
    """Base of every op's params model: unknown keys are errors, and no type is coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Types for op params. Strict: "64" is not an int, 1 is not a bool. A list from YAML
# stands for a tuple (strict pydantic would refuse a list for tuple fields).
Int = StrictInt
Float = Annotated[Union[StrictFloat, StrictInt], Field()]
Bool = StrictBool
Str = StrictStr
PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Probability = Annotated[Union[StrictFloat, StrictInt], Field(ge=0, le=1)]
IntPair = Union[PositiveInt, Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]]
NonNegativePair = Union[NonNegativeInt, Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]]


def pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    """(v, v) for an int, the two values of a 2-list otherwise."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def normalize_dim(dim: int, rank: int, who: str = "dim") -> int:
    """A possibly negative axis index as a non-negative one; ShapeError if out of range."""
    if not -rank <= dim < rank:
        raise ShapeError(f"{who} {dim} is out of range for a rank-{rank} input",
                         code="E405", hint=f"valid values are {-rank}..{rank - 1}")
    return dim % rank


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

    # ---- shape rule -------------------------------------------------------------------
    def check_dtypes(self, inputs: list[TensorType]) -> None:
        """Raises ShapeError (E409) when an input's dtype is not one of ``input_dtypes``."""
        for i, t in enumerate(inputs):
            if self.input_dtypes is not None and t.dtype not in self.input_dtypes:
                floating = self.input_dtypes == FLOAT_DTYPES
                want = "a floating-point input" if floating else f"a {' or '.join(self.input_dtypes)} input"
                raise ShapeError(f"{self.name} expects {want}, found {t.dtype} {t}", code="E409",
                                 details=(f"input {i} -> {t}",),
                                 hint=TOKEN_IDS_HINT if floating and t.dtype.startswith("int") else None)

    def output_ports(self, p: OpParams) -> tuple[str, ...]:
        """Names of the outputs; a single-output op has the one port 'out'."""
        return ("out",)

    def infer(self, p: OpParams, inputs: list[TensorType]) -> list[TensorType]:
        """Output types, one per port, from the input types. Raises ShapeError."""
        raise NotImplementedError

    # ---- torch --------------------------------------------------------------------------
    def build(self, p: OpParams, inputs: list[TensorType]) -> "torch.nn.Module | None":
        """The module computing this op, or None when the op is emitted as a function call."""
        return None

    def emit(self, p: OpParams, graph: "fx.Graph", args: list["fx.Node"]) -> "fx.Node":
        """For ops without a module: add the fx call computing the op and return its node."""
        raise NotImplementedError(f"op {self.name} has neither build nor emit")

    # ---- accounting ---------------------------------------------------------------------
    def num_params(self, p: OpParams, inputs: list[TensorType]) -> int:
        """Number of trainable parameters (default: build the module and count)."""
        module = self.build(p, inputs)
        return 0 if module is None else sum(t.numel() for t in module.parameters())

    def macs(self, p: OpParams, inputs: list[TensorType], outputs: list[TensorType]) -> int | None:
        """Multiply-accumulates of one forward pass at batch 1 (None when unknown)."""
        return 0

    def describe(self, p: OpParams) -> str:
        """A short label of the key params, for diagrams and summaries (e.g. '3×3 /2, 64')."""
        return ""

    # ---- memory (specgraph.memory: the summary's activation bytes and inference peak) ----------
    # Where the outputs live, in eval mode on CPU:
    #   "new":   each output gets memory of its own (most ops);
    #   "view":  each output views input 0's storage when torch can (see ``view_strides``);
    #   "input": the output is input 0 itself (identity, dropout in eval mode).
    storage: ClassVar[Literal["new", "view", "input"]] = "new"
    # False: the kernel allocates scratch that ``scratch_bytes`` does not count, so a predicted
    # peak through this op is a lower bound (the summary says so).
    scratch_modelled: ClassVar[bool] = True

    def view_strides(self, p: OpParams, shape: tuple[int, ...], strides: tuple[int, ...],
                     out_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """For ``storage = "view"``: the strides (in elements) of an output of shape ``out_shape``
        viewing input 0 (``shape``, ``strides``), or None when torch must copy.  Default:
        ``reshape``'s rule (a view when the strides allow it, torch's ``computeStride``)."""
        from ..analysis.memory.walk import reshape_strides

        return strides if out_shape == shape else reshape_strides(shape, strides, out_shape)

    def scratch_bytes(self, p: OpParams, inputs: list, outputs: list, ctx) -> int:
        """Bytes the torch kernel allocates and frees inside one eval-mode call, beyond its
        outputs (default 0).  ``inputs``/``outputs`` are :class:`specgraph.memory.Tensor` at
        concrete sizes (``.shape``, ``.strides``, ``.dtype``, ``.itemsize``, ``.nbytes``);
        ``ctx`` is a :class:`specgraph.memory.MemoryContext` (``.sizes``, ``.threads``, and
        ``.param_bytes`` of this node).  When the scratch comes and goes in several phases,
        return the largest of (live scratch + outputs allocated so far) − all outputs' bytes."""
        return 0


def params_dict(p: OpParams) -> dict[str, Any]:
    return p.model_dump()


__all__ = [
    "Op", "OpParams", "ShapeError", "FLOAT_DTYPES", "Int", "Float", "Bool", "Str", "PositiveInt",
    "NonNegativeInt", "Probability", "IntPair", "NonNegativePair", "pair", "normalize_dim",
    "Dim", "TensorType", "Literal", "Field",
]
