"""The small pieces that shape rules share: the error they raise, rank and dim checks, the
input lines of an error, batch-1 shapes.

Nothing here imports torch: checking a spec never needs it.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from ..ir.dims import Dim, is_concrete
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
TOKEN_IDS_HINT = "integer token ids need an embedding first, e.g. {op: embedding, num: <vocabulary size>, dim: 64}"


class InputDetail(NamedTuple):
    """A detail line about input ``index`` of the failing op; the compiler writes it with the
    producing node's name (``branch4 -> [N, 32, 27, 27]``)."""

    index: int
    text: str

    def __str__(self) -> str:
        return f"input {self.index} -> {self.text}"


class ShapeError(Exception):
    """An op's inputs do not fit it. ``code`` is a stable diagnostic code (E4xx).

    ``details``: extra lines; an :class:`InputDetail` names one of the op's inputs.
    """

    def __init__(self, message: str, *, code: str = "E401", hint: str | None = None,
                 details: Sequence[InputDetail | str] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.details = tuple(details)


def input_details(inputs: Sequence[TensorType]) -> tuple[InputDetail, ...]:
    """One detail line per input, with its full shape."""
    return tuple(InputDetail(i, str(t)) for i, t in enumerate(inputs))


def normalize_dim(dim: int, rank: int, who: str = "dim") -> int:
    """A possibly negative axis index as a non-negative one; ShapeError if out of range."""
    if not -rank <= dim < rank:
        raise ShapeError(f"{who} {dim} is out of range for a rank-{rank} input",
                         code="E405", hint=f"valid values are {-rank}..{rank - 1}")
    return dim % rank


def unless_along_batch(traits: frozenset[Trait], dims, rank: int) -> frozenset[Trait]:
    """``traits`` less ROW_WISE when one of ``dims`` (negative ones counted from the end) is the
    batch dim 0: an op along the batch mixes rows (a softmax over dim 0, a concat of batches)."""
    return traits - {Trait.ROW_WISE} if any(normalize_dim(d, rank) == 0 for d in dims) else traits


def expect_rank(op: str, t: TensorType, ranks: tuple[int, ...], layout: str) -> None:
    """ShapeError E410 unless ``t`` has one of ``ranks``; ``layout`` shows the expected form."""
    if t.rank not in ranks:
        raise ShapeError(f"{op} expects {layout}, found a rank-{t.rank} tensor {t}", code="E410")


def known_dim(op: str, t: TensorType, axis: int, what: str) -> int:
    """The concrete size of ``t.shape[axis]``; E406 when it is symbolic (a weight needs it)."""
    d = t.shape[axis]
    if not is_concrete(d):
        raise ShapeError(
            f"{op} needs a concrete {what} (dim {axis}), found symbolic '{d}' in {t}",
            code="E406",
            hint=f"the {what} sizes this op's weights; give that input dim a number, not a symbol")
    return d


def batch1(t: TensorType) -> tuple[int, ...] | None:
    """The shape at batch 1 (dim 0 is the batch), or None if any other dim is symbolic."""
    rest = t.shape[1:]
    if not all(is_concrete(d) for d in rest):
        return None
    return (1, *rest)


def check_positive(op: str, size: Dim, axis: int, t: TensorType, hint: str) -> None:
    """E404 when a concrete output dim is not positive (a window larger than its input)."""
    if is_concrete(size) and size <= 0:
        raise ShapeError(f"{op} would give output size {size} on dim {axis} of input {t}",
                         code="E404", hint=hint)


__all__ = ["FLOAT_DTYPES", "TOKEN_IDS_HINT", "InputDetail", "ShapeError", "input_details", "normalize_dim",
           "unless_along_batch", "expect_rank", "known_dim", "batch1", "check_positive"]
