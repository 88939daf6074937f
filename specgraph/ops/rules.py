"""The small pieces that shape rules share: the error they raise, rank and dim checks, the
input lines of an error, batch-1 shapes.

Nothing here imports torch: checking a spec never needs it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, NamedTuple, Sequence

from ..ir.dims import Dim, is_concrete
from ..ir.requirements import Requirement
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
    """E404 unless the output dim ``size`` is positive (a window larger than its input); for a
    symbolic size, a requirement checked at run time unless it holds for every size."""
    require(size, at_least=1, code="E404", hint=hint,
            message=f"{op} would give output size {size} on dim {axis} of input {t}")


# ---- conditions on sizes (see specgraph/ir/requirements.py) -------------------------------------

_COLLECTED: ContextVar[list[Requirement] | None] = ContextVar("specgraph_requirements", default=None)


def require(size: Dim, *, at_least: int | None = None, multiple_of: int | None = None, code: str, message: str,
            hint: str | None = None, details: Sequence[InputDetail | str] = (), training_only: bool = False) -> None:
    """What a shape rule needs of ``size``: ``size >= at_least`` or ``size % multiple_of == 0``.

    Decided now when it can be (ShapeError ``code`` with ``message`` when it fails for every
    size); otherwise recorded for the run-time input check, the message stating the rule.  A
    rule is never skipped because a size is symbolic.  A ``training_only`` rule that fails is
    no error of the spec (the model may serve in eval mode): it is checked when training."""
    req = Requirement(size, at_least=at_least if multiple_of is None else None, multiple_of=multiple_of,
                      code=code, message=message, hint=hint, training_only=training_only)
    verdict = req.decide()
    if verdict is False and not training_only:
        raise ShapeError(message, code=code, hint=hint, details=details)
    collected = _COLLECTED.get()
    if verdict is not True and collected is not None:  # undecided, or a training-only rule that fails
        collected.append(req)


@contextmanager
def collecting_requirements() -> Iterator[list[Requirement]]:
    """The requirements the shape rules run inside state (outside it, undecided ones are the
    caller's to ignore: a rule run directly, as the op harness does at sizes torch accepted)."""
    token = _COLLECTED.set([])
    try:
        yield _COLLECTED.get()
    finally:
        _COLLECTED.reset(token)


__all__ = ["FLOAT_DTYPES", "TOKEN_IDS_HINT", "InputDetail", "ShapeError", "input_details", "normalize_dim",
           "unless_along_batch", "expect_rank", "known_dim", "batch1", "check_positive", "require",
           "collecting_requirements"]
