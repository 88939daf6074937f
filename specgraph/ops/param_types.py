"""Types for op params, and the helpers that read them.

Strict: "64" is not an int, 1 is not a bool.  A list from YAML stands for a tuple (strict
pydantic would refuse a list for tuple fields), so pairs are ``int | [int, int]``.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

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


def size_text(v: tuple[int, int]) -> str:
    """A pair as a label shows it: '3' for (3, 3), '(3,1)' otherwise."""
    return str(v[0]) if v[0] == v[1] else f"({v[0]},{v[1]})"


__all__ = ["Int", "Float", "Bool", "Str", "PositiveInt", "NonNegativeInt", "Probability", "IntPair",
           "NonNegativePair", "pair", "size_text"]
