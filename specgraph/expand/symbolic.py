"""A symbolic dim where a number is needed (E406): which input it comes from, and the fix.

A size such as ``⌈H/2⌉`` is exact but unknown until a tensor arrives, so a value that must be
known before (a layer's width, a repeat count, a `when:`) cannot be one.  The fix is either a
concrete size for the input the symbol comes from, or an op that takes the tensor to size
against at run time (an op names the params such an input replaces: ``Op.sizes_like``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..ir.dims import Sym
from ..ir.tensor_type import TensorType
from ..lang.expr.values import NEEDS_A_NUMBER


def first_symbolic(value: Any) -> Sym | None:
    """The first symbolic dim in a value (lists, tuples and dict values searched)."""
    if isinstance(value, Sym):
        return value
    items: Iterable[Any] = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = first_symbolic(item)
        if found is not None:
            return found
    return None


def concrete_size_fix(dim: Sym, inputs: Mapping[str, TensorType]) -> str:
    """"give input 'x' [N, 3, H, W] a concrete H" for the spec input the dim's symbols come from."""
    symbols = sorted(dim.symbols)
    for name, t in inputs.items():
        shown = {str(d) for d in t.shape}
        have = [s for s in symbols if s in shown]
        if have:
            return f"give input '{name}' {t} a concrete {' and '.join(have)}"
    return "give the input a concrete size"


def needs_a_number_hint(hint: str | None, dim: Sym | None, inputs: Mapping[str, TensorType]) -> str | None:
    """An expression's E406 hint with the input named (the evaluator does not know the inputs)."""
    if hint is None or dim is None:
        return hint
    return hint.replace(NEEDS_A_NUMBER, f"{concrete_size_fix(dim, inputs)}, or decide it with a param")


def op_param_fix(op: Any, key: str, dim: Sym, inputs: Mapping[str, TensorType]) -> str:
    """The hint for an op param given a symbolic dim: the op's own way to size against a tensor
    (interpolate's second input replaces `size`), else a concrete input size."""
    if key in getattr(op, "sizes_like", ()):
        return (f"{op.name} sizes against a tensor at run time: leave `{key}` out and give that tensor as its "
                f"second input (from: [<input>, <tensor>]); or {concrete_size_fix(dim, inputs)}")
    return f"`{key}` is fixed before any tensor exists: {concrete_size_fix(dim, inputs)}"


__all__ = ["first_symbolic", "concrete_size_fix", "needs_a_number_hint", "op_param_fix"]
