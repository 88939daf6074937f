"""What expressions see and raise: :class:`ExprError`, and tensors as :class:`ShapeView`."""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import dims
from ...ir.tensor_type import TensorType

# The evaluator recurses about twice per AST level; this keeps it far inside Python's recursion
# limit even where max_expr_nodes is raised.  No real expression nests this deep.
MAX_DEPTH = 200

# The fix for a symbolic dim where a number is needed (E406); the compiler names the input.
NEEDS_A_NUMBER = "its value depends on the input size: give the input a concrete size, or decide it with a param"


class ExprError(Exception):
    """An expression that cannot be evaluated.

    ``code``: E501 syntax, E502 undefined name, E503 forbidden construct, E504 evaluation error,
    E505 limit exceeded, E406 a symbolic dim where a number is needed (``dim``: that dim, so the
    compiler can name the input it comes from).  ``offset``: 0-based index within the value string
    (its ``$`` is 0) of the sub-expression at fault, or None.  ``value``: the string that failed.
    """

    def __init__(self, code: str, message: str, hint: str | None = None, offset: int | None = None,
                 dim: "dims.Sym | None" = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.offset, self.dim = code, message, hint, offset, dim
        self.value: str | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


@dataclass(frozen=True)
class ShapeView:
    """A tensor as an expression sees it: read-only facts about its type, nothing else.

    ``shape`` (tuple), ``rank``, ``dtype`` (str), ``batch`` = shape[0], ``channels`` = shape[1]
    (rank >= 2), ``height`` = shape[-2] (rank >= 4), ``width`` = shape[-1] (rank >= 3),
    ``features`` = shape[-1].  Dims are ints or :class:`~specgraph.ir.dims.Sym`.
    """

    type: TensorType
    ATTRIBUTES = ("shape", "rank", "dtype", "batch", "channels", "height", "width", "features")

    shape = property(lambda self: tuple(self.type.shape))
    rank = property(lambda self: len(self.type.shape))
    dtype = property(lambda self: self.type.dtype)
    batch = property(lambda self: self._dim(0, 1, "batch"))
    channels = property(lambda self: self._dim(1, 2, "channels"))
    height = property(lambda self: self._dim(-2, 4, "height"))
    width = property(lambda self: self._dim(-1, 3, "width"))
    features = property(lambda self: self._dim(-1, 1, "features"))

    def __repr__(self) -> str:  # what a message shows: "found the tensor [N, 3, H, W]"
        return f"the tensor {self.type}"

    def _dim(self, index: int, min_rank: int, what: str) -> dims.Dim:
        # Refuse rather than guess: the "height" of a [N, C, L] tensor would silently be C.
        if self.rank < min_rank:
            raise ExprError("E504", f"tensor {self.type} has no {what}: that needs rank >= {min_rank}",
                            hint="read a specific dim as x.shape[i]")
        return self.type.shape[index]
