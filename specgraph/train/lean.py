"""What Lightning does on every training step that a run does without, or does once.

Lightning calls some twenty hooks a step, each on the module, the strategy and every callback,
and wraps each call in its profiler's ``profile(name)``: with no profiler asked for, a
``PassThroughProfiler`` whose ``profile`` is a generator-based context manager, built and torn
down about ninety times a step, with a label formatted from the callback's ``state_key`` (for
ModelCheckpoint, the repr of five settings). On a small model that is a large share of the step
(benchmarks/bench_train.py measures what each saving buys against a plain loop):

* :class:`NoProfiler` hands back one shared, empty context;
* :class:`StateKeyOnce` works a callback's state key out once.

Nothing else changes: the hooks still run, in the same order.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()


class NoProfiler(PassThroughProfiler):
    """No profiling, at the cost of returning one shared ``nullcontext`` per hook call."""

    def profile(self, action_name: str):  # type: ignore[override]
        return _NOTHING


class StateKeyOnce:
    """A Lightning callback mixin whose ``state_key`` is worked out at its first use.

    The key is the one the Lightning class itself gives (``key_class``: its name, then its
    settings), so checkpoints written by a plain ModelCheckpoint or EarlyStopping still resume;
    the settings it is made of are fixed when the callback is made."""

    key_class = ""

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_state_key_once")
        if key is None:
            key = self.__dict__["_state_key_once"] = super().state_key  # type: ignore[misc]
        return key

    def _generate_state_key(self, **kwargs: Any) -> str:
        return f"{self.key_class or type(self).__qualname__}{kwargs!r}"


__all__ = ["NoProfiler", "StateKeyOnce"]
