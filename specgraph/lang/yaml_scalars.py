"""One text, one value: plain scalars where YAML 1.1 (what PyYAML resolves) and YAML 1.2's
core schema disagree.

PyYAML reads `1:30` as 90 (base 60), `yes`/`on`/`off` as booleans, `0755` as octal 493 and
`1_000` as 1000, where YAML 1.2 (and most other tools) read strings or 755: those are refused
with the value to write. And it leaves `1e-3` and `08` strings, which YAML 1.2 reads as
numbers: those are read as numbers.
"""

from __future__ import annotations

import re
from typing import Callable

_OLD_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")  # YAML 1.1's octal int: 0755
_CORE_INT = re.compile(r"^[-+]?[0-9]+$")
_CORE_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def is_core_number(raw: str) -> bool:
    """Whether YAML 1.2's core schema reads ``raw`` (which PyYAML left a string) as a number."""
    return bool(_CORE_NUMBER.match(raw))


def core_number(raw: str) -> int | float | None:
    """The number YAML 1.2 reads in ``raw``; None past the digits Python converts."""
    try:
        return int(raw) if _CORE_INT.match(raw) else float(raw)
    except (ValueError, OverflowError):
        return None


def yaml11_ambiguity(kind: str, raw: str, value: Callable[[], object]) -> tuple[str, str] | None:
    """(message, hint) when the plain scalar ``raw``, resolved by YAML 1.1 as ``kind`` (bool,
    int, float) to ``value()``, reads otherwise in YAML 1.2; None when both agree."""
    if kind == "bool" and raw.lower() not in ("true", "false"):
        plain = str(raw.lower() in ("yes", "on")).lower()
        old, new = f"the boolean {plain}", "a string"
    elif kind in ("int", "float") and (":" in raw or "_" in raw or _OLD_OCTAL.match(raw)
                                       or raw.lstrip("+-").lower().startswith("0b")):
        plain = old = str(value())
        new = str(int(raw)) if _OLD_OCTAL.match(raw) and "_" not in raw else "a string"
    else:
        return None
    return (f"'{raw}' is {old} in YAML 1.1 but {new} in YAML 1.2",
            f'write {plain} if that is meant, or quote it: "{raw}"')


__all__ = ["is_core_number", "core_number", "yaml11_ambiguity"]
