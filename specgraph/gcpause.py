"""Pausing Python's cyclic garbage collector while a large graph is made.

Expansion, building and rendering allocate many small objects that stay alive; each full
collection walks all of them, so with the collector running a 40k-node spec takes three
times as long as a 20k-node one. Paused, the time grows linearly. Reference counting still
frees everything that is not in a cycle, and the collector runs again afterwards.
"""

from __future__ import annotations

import functools
import gc
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def gc_paused(fn: F) -> F:
    """Decorator: run ``fn`` with the cyclic collector off (restoring its previous state)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper  # type: ignore[return-value]
