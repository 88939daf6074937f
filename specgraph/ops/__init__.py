"""Built-in ops. Importing this package registers them all (see registry.py)."""

from .base import Op, OpParams, ShapeError
from .registry import REGISTRY, Registry, all_ops, get_op, op_names, register_op

# Each module registers its ops on import. Keep the list sorted.
from . import (activation, attention, contraction, conv, dropout, elementwise, indexing, layout, linear,  # noqa: E402,F401
               merge, norm, pool, recurrent, reduce, resample, scan, seqdropout, shape, tensors,
               windows)

__all__ = ["Op", "OpParams", "ShapeError", "register_op", "get_op", "op_names", "all_ops", "Registry", "REGISTRY"]
