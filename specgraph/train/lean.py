"""What Lightning does on every training step that a run does without, or does once.

Lightning calls some twenty hooks a step, each on the module, the strategy and every callback,
and wraps each call in its profiler's ``profile(name)``: with no profiler asked for, a
``PassThroughProfiler`` whose ``profile`` is a generator-based context manager, built and torn
down about ninety times a step, with a label formatted from the callback's ``state_key`` (for
ModelCheckpoint, the repr of five settings). On a small model that is a large share of the step
(benchmarks/bench_train.py measures what each saving buys against a plain loop):

* :class:`NoProfiler` hands back one shared, empty context;
* :class:`StateKeyOnce` works a callback's state key out once;
* :func:`skip_idle_step_hooks` takes the per-step hooks that a callback (or the module) leaves
  as Lightning's no-ops off the list: Lightning calls a hook only where it is ``callable``, so a
  hook set to ``None`` on the instance costs nothing.

Nothing else changes: the hooks that do something still run, in the same order.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()

# the hooks Lightning calls on every training step, on every callback and on the module, whose
# result it does not read (``on_train_batch_start`` may return -1 to end the epoch: None does not)
STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_before_zero_grad", "on_train_batch_end")


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


def hook_is_live(obj: Any, name: str, base: type) -> bool:
    """Whether Lightning would call ``obj``'s hook ``name`` and it would do something: callable,
    and not ``base``'s no-op (``base``: ``lightning.Callback`` or ``lightning.LightningModule``)."""
    if not callable(getattr(obj, name, None)):
        return False
    return name in vars(obj) or getattr(type(obj), name, None) is not getattr(base, name, None)


def skip_idle_step_hooks(obj: Any, base: type) -> list[str]:
    """Set to ``None``, on ``obj``, the per-step hooks its class leaves as ``base``'s no-ops
    (``base``: ``lightning.Callback`` or ``lightning.LightningModule``); the names set.

    Lightning's ``_call_callback_hooks`` and ``_call_lightning_module_hook`` skip a hook that is
    not callable. Each idle call cost a profiler context, a label formatted from the callback's
    state key and the call itself: six hooks a step on each callback and on the module."""
    idle = [name for name in STEP_HOOKS if callable(getattr(obj, name, None)) and not hook_is_live(obj, name, base)]
    for name in idle:
        setattr(obj, name, None)
    return idle


__all__ = ["NoProfiler", "StateKeyOnce", "STEP_HOOKS", "hook_is_live", "skip_idle_step_hooks"]
