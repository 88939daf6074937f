"""Traits: what an op promises about itself, for the consumers that need to know.

A consumer asks the op (``Trait.ROW_WISE in node.traits``), never its name: the scan asks
which cell nodes it may hoist, the memory walk which outputs share storage, the passes which
nodes they may drop or run in place.  A user's op gets every one of these behaviours by
declaring the trait on its class, as torch.fx marks a function ``has_side_effect`` and Keras
a layer ``supports_masking``.
"""

from __future__ import annotations

from enum import Enum


class Trait(Enum):
    """A property of an op (``Op.traits``), possibly depending on its params (``Op.node_traits``)."""

    #: Row i of the output (dim 0, the batch) depends on row i of the inputs alone, so a scan
    #: may compute it for all time steps at once, before its loop (specgraph.ops.scan).
    ROW_WISE = "row_wise"
    #: Loops over a time dim (``Op.time_axis``): an export unrolls that loop, fixing the dim.
    LOOPS_OVER_TIME = "loops_over_time"
    #: Returns its first input in eval mode (dropout, identity): inference passes drop it and
    #: the memory walk counts no new storage for it.  In training it returns its input or a new
    #: tensor its backward does not read (a dropout's backward reads its mask), so that an
    #: in-place reader may overwrite it wherever it could overwrite its input (``ir/in_place.py``).
    IDENTITY_IN_EVAL = "identity_in_eval"
    #: Its outputs view input 0's storage where the strides allow (``Op.view_strides``).
    VIEW = "view"
    #: May overwrite its first input when nothing else reads it (``Op.make_in_place``).
    INPLACE_SAFE = "inplace_safe"
    #: Its output is a new tensor (never a view of an input) that its own backward does not
    #: read (a convolution, linear, batch norm, add, mul): an ``INPLACE_SAFE`` op that is the
    #: output's only reader may overwrite it, in training too (``ir/in_place.py``).
    OVERWRITABLE_OUTPUT = "overwritable_output"
    #: Made by the compiler (a `scan:` node), never written as `op:` in a spec.
    COMPILER_MADE = "compiler_made"
    #: Joins several inputs that must agree on their other dims (add, mul, concat): a mismatch
    #: is explained by the last size change upstream (``Op.resize_reason``).
    MERGE = "merge"
    #: Outputs probabilities along a dim (softmax): a classification loss reads their log.
    PROBABILITIES = "probabilities"
    #: Outputs log-probabilities along a dim (log_softmax).
    LOG_PROBABILITIES = "log_probabilities"
    #: Looks its integer input up in a learnt table, the module's ``weight`` [num, dim]
    #: (word2vec's word vectors).
    EMBEDDING = "embedding"
    #: Its output is a tensor the module holds (a learnable parameter, a buffer), read with no
    #: input: resident like the weights, so the memory walk counts no activation for it.
    RESIDENT = "resident"


__all__ = ["Trait"]
