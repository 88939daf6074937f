"""Types for op params, and the helpers that read them.

Strict: "64" is not an int, 1 is not a bool.  A list from YAML stands for a tuple (strict
pydantic would refuse a list for tuple fields), so pairs are ``int | [int, int]``, and in
general a size per spatial dim is ``int | [int] * rank`` (:func:`ints_per_dim`).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

Int = StrictInt
Float = Annotated[Union[StrictFloat, StrictInt], Field()]
Bool = StrictBool
Str = StrictStr
PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Probability = Annotated[Union[StrictFloat, StrictInt], Field(ge=0, le=1)]


def ints_per_dim(rank: int, item: Any = PositiveInt) -> Any:
    """The type of a size given per spatial dim: one ``item`` for all ``rank`` dims, or a list of
    exactly ``rank`` (a conv3d kernel is ``3`` or ``[3, 3, 1]``; ``[3, 3]`` is refused there)."""
    return Union[item, Annotated[list[item], Field(min_length=rank, max_length=rank)]]


IntPair = ints_per_dim(2)
NonNegativePair = ints_per_dim(2, NonNegativeInt)


def per_dim(value: int | list[int] | tuple[int, ...], rank: int) -> tuple[int, ...]:
    """``rank`` copies of an int, the values of a list (already of length ``rank``) otherwise."""
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    """(v, v) for an int, the two values of a 2-list otherwise."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def size_text(v: tuple[int, ...]) -> str:
    """Sizes as a label shows them: '3' for (3, 3) or (3, 3, 3), '(3,1)' otherwise."""
    return str(v[0]) if len(set(v)) == 1 else "(" + ",".join(map(str, v)) + ")"


__all__ = ["Int", "Float", "Bool", "Str", "PositiveInt", "NonNegativeInt", "Probability", "IntPair",
           "NonNegativePair", "ints_per_dim", "per_dim", "pair", "size_text"]
